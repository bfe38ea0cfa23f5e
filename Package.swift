// swift-tools-version:6.0
// The NodeOS testbed: boots NodeOS images under QEMU through libvirt and
// drives them from Swift tests, scenario files and the `testbed` CLI.
import PackageDescription

let package = Package(
    name: "nodeos-testbed",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Libvirt", targets: ["Libvirt"]),
        .library(name: "TestbedCore", targets: ["TestbedCore"]),
        .library(name: "Testbed", targets: ["Testbed"]),
        .library(name: "TestbedTesting", targets: ["TestbedTesting"]),
        .library(name: "NpmRegistry", targets: ["NpmRegistry"]),
        .library(name: "Scenarios", targets: ["Scenarios"]),
        .library(name: "TestbedBench", targets: ["TestbedBench"]),
        .executable(name: "testbed", targets: ["testbed"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // C shims: libvirt (+ libvirt-qemu for the qemu namespace API) and libpcap.
        .systemLibrary(
            name: "CLibvirt",
            pkgConfig: "libvirt-qemu",
            providers: [.apt(["libvirt-dev"]), .brew(["libvirt"])]
        ),
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"]), .brew(["libpcap"])]
        ),
        // Pure logic shared by the harness and the registry: no C, no libvirt.
        .target(name: "TestbedCore"),
        // The one way host programs are started: posix_spawn, a process group
        // of their own, deadlines that kill the group. Foundation only.
        .target(name: "HostProcess"),
        // The thin, safe Swift layer over libvirt's C API.
        .target(name: "Libvirt", dependencies: ["CLibvirt"]),
        // The harness: specs, machines, console, agent, reports, artifacts.
        .target(name: "Testbed", dependencies: ["TestbedCore", "HostProcess", "Libvirt", "CPcap"]),
        // Swift Testing support: `withMachine { machine in ... }`.
        .target(name: "TestbedTesting", dependencies: ["Testbed", "HostProcess"]),
        // The npm registry the testbed serves to guests (and to the host's npm).
        .target(
            name: "NpmRegistry",
            dependencies: [
                "TestbedCore",
                "HostProcess",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Boot and npm benchmarks, their history and regression verdicts: `testbed bench`.
        .target(name: "TestbedBench", dependencies: ["Testbed", "NpmRegistry"]),
        // Scenario files (YAML) and their runner: what `testbed run` executes.
        .target(
            name: "Scenarios",
            dependencies: ["Testbed", "NpmRegistry", .product(name: "Yams", package: "Yams")]
        ),
        // The CLI: `testbed boot`, `run`, `bench` (its folder's name cannot
        // collide with the library's on a case-insensitive file system).
        .executableTarget(
            name: "testbed",
            dependencies: [
                "Testbed",
                "TestbedBench",
                "Scenarios",
                "NpmRegistry",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/TestbedCLI"
        ),
        // Pure logic, no virtual machine: fast.
        .testTarget(
            name: "TestbedUnitTests",
            dependencies: ["Testbed", "TestbedCore", "TestbedBench", "HostProcess", "Libvirt"],
            resources: [.copy("Golden")]
        ),
        // The registry against the host's real npm client: no virtual machine.
        .testTarget(name: "RegistryTests", dependencies: ["NpmRegistry", "TestbedCore", "TestbedTesting", "HostProcess"]),
        // Scenario parsing, validation and reports (no VM); the CLI end to end (boots).
        .testTarget(
            name: "ScenarioTests",
            dependencies: ["Scenarios", "Testbed", "TestbedTesting", "HostProcess"]
        ),
        // Real machines (slow): skipped until `make image` has run, unless CI=true.
        .testTarget(
            name: "TestbedIntegrationTests",
            dependencies: ["Testbed", "TestbedTesting", "NpmRegistry", "HostProcess"]
        ),
        // `make reliability`: injected faults, fuzzing and the soak, with a ledger.
        .testTarget(
            name: "ReliabilityTests",
            dependencies: [
                "Testbed", "TestbedTesting", "NpmRegistry", "Scenarios", "HostProcess",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
