// swift-tools-version:6.0
// The NodeOS testbed: boots NodeOS images under QEMU through libvirt and
// drives them from Swift tests, scenario files and the `testbed` CLI.
import PackageDescription

let package = Package(
    name: "nodeos-testbed",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Libvirt", targets: ["Libvirt"]),
        .library(name: "Testbed", targets: ["Testbed"]),
        .library(name: "TestbedTesting", targets: ["TestbedTesting"]),
        .executable(name: "testbed", targets: ["testbed"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
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
        // The thin, safe Swift layer over libvirt's C API.
        .target(name: "Libvirt", dependencies: ["CLibvirt"]),
        // The harness: specs, machines, console, agent, reports, artifacts.
        .target(name: "Testbed", dependencies: ["Libvirt", "CPcap"]),
        // Swift Testing support: `withMachine { machine in ... }`.
        .target(name: "TestbedTesting", dependencies: ["Testbed"]),
        .executableTarget(
            name: "testbed",
            dependencies: [
                "Testbed",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Pure logic, no virtual machine: fast.
        .testTarget(
            name: "TestbedUnitTests",
            dependencies: ["Testbed", "Libvirt"],
            resources: [.copy("Golden")]
        ),
        // Real machines (slow): skipped until `make image` has run, unless CI=true.
        .testTarget(
            name: "TestbedIntegrationTests",
            dependencies: ["Testbed", "TestbedTesting"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
