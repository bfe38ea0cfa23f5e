import Foundation
import NpmRegistry
import Testbed
import TestbedTesting
import Testing

/// The real npm client in the guest against the testbed's registry: installs
/// land in the user's home, survive reboots, stay private, and fail cleanly.
@Suite("Package installs", .requiresNodeOSImage, .serialized)
struct PackageInstallTests {
    static let packages = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scenarios/packages")
    static let npmTimeout: Duration = .seconds(900)
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("nodeos-pkg-\(UUID().uuidString.prefix(8))")

    func config(_ registry: Registry, packages: [String]? = nil) -> BootConfig {
        var config = BootConfig(hostname: "pkg", registry: registry.guestURL.absoluteString)
        config.users["alice"] = .init(uid: 1000, packages: packages)
        config.users["bob"] = .init(uid: 1001)
        return config
    }

    @Test("install with dependencies, run the bin, persist across a reboot, stay private, reinstall from a warm cache")
    func installPersistIsolate() async throws {
        defer { try? FileManager.default.removeItem(at: work) }
        try await withRegistry(packages: Self.packages) { registry in
            let alice = try HomeVolume.create(user: "alice", uid: 1000, sizeMiB: 128, in: work)
            let bob = try HomeVolume.create(user: "bob", uid: 1001, in: work)
            let registryEndpoint = Capture.Endpoint(address: "10.0.2.2", port: registry.url.port ?? 0)
            var artifacts: URL?
            var guestInstall: Duration = .zero
            try await withMachine({ spec in
                spec.attach(alice)
                spec.attach(bob)
                spec.capture = true
                try? spec.configure(config(registry), in: work)
            }) { machine in
                artifacts = machine.artifacts
                let clock = ContinuousClock()
                let started = clock.now
                let install = try await machine.execute(["npm", "install", "-g", "@nodeos/hello-cli"], user: "alice", timeout: Self.npmTimeout)
                guestInstall = clock.now - started
                #expect(install.status == 0, "npm install failed: \(install.stderr)")
                #expect(try await machine.succeed("hello", user: "alice") .contains("hello-cli 1.0.0"))
                // Global installs nest the dependencies under the package.
                let tree = try await machine.succeed(["npm", "ls", "-g", "--all", "--parseable"], user: "alice", timeout: Self.npmTimeout)
                #expect(tree.split(separator: "\n").count >= 21, "installed: \(tree)")
                // Another user does not see it.
                #expect(try await machine.fail("sh -c hello", user: "bob").status == 127)
                #expect(try await machine.fail("ls /home/alice/lib", user: "bob").stderr.contains("EACCES"))

                try await machine.reboot()
                #expect(try await machine.succeed("hello", user: "alice").contains("hello-cli 1.0.0"))

                // Warm cache: uninstall, reinstall; the tarballs come from ~/.npm.
                let tarballsBefore = registry.tarballRequests.count
                #expect(tarballsBefore >= 20)
                try await machine.succeed(["npm", "uninstall", "-g", "@nodeos/hello-cli"], user: "alice", timeout: Self.npmTimeout)
                #expect(try await machine.fail("sh -c hello", user: "alice").status == 127)
                try await machine.succeed(["npm", "install", "-g", "--prefer-offline", "@nodeos/hello-cli"], user: "alice", timeout: Self.npmTimeout)
                #expect(try await machine.succeed("hello", user: "alice").contains("hello-cli 1.0.0"))
                #expect(registry.tarballRequests.count == tarballsBefore, "a warm reinstall fetched tarballs")
                try await machine.shutdown()
            }
            // The capture agrees with the registry's log, and shows nothing else.
            let capture = try Capture(contentsOf: try #require(artifacts).appendingPathComponent("capture.pcap").path)
            #expect(capture.httpRequests.filter(\.isTarball).count == registry.tarballRequests.count)
            try capture.expectOnlyContacted([registryEndpoint])
            #expect(try alice.check().clean)

            // The same install by the host's npm from the same registry, for the ratio.
            let hostPrefix = work.appendingPathComponent("host-prefix")
            let clock = ContinuousClock()
            let started = clock.now
            try HostCommand(Self.hostNode, [Self.hostNpm, "install", "-g", "--prefix", hostPrefix.path, "--cache", work.appendingPathComponent("host-cache").path,
                                           "--registry", registry.url.absoluteString, "--no-audit", "--no-fund", "@nodeos/hello-cli"], step: "installing the tree with the host's npm").run(timeout: .seconds(300))
            let hostInstall = clock.now - started
            print("package-install: guest \(guestInstall), host \(hostInstall), ratio \(String(format: "%.1f", guestInstall / hostInstall))")
        }
    }

    @Test("registry down, HTTP 500 and a corrupt tarball fail with npm's own error and leave nothing half-installed")
    func failures() async throws {
        defer { try? FileManager.default.removeItem(at: work) }
        try await withRegistry(packages: Self.packages) { registry in
            let alice = try HomeVolume.create(user: "alice", uid: 1000, sizeMiB: 128, in: work)
            try await withMachine({ spec in
                spec.attach(alice)
                try? spec.configure(config(registry), in: work)
            }) { machine in
                let install = ["npm", "install", "-g", "--fetch-retries=0", "@nodeos/hello-cli"]
                for (fault, expected) in [(Fault.down, "ECONNREFUSED"), (.httpError(500), "E500"), (.corruptTarball, "EINTEGRITY")] {
                    try await registry.inject(fault)
                    let result = try await machine.fail(install, user: "alice", timeout: Self.npmTimeout)
                    #expect(result.status != 0)
                    #expect((result.stdout + result.stderr).contains(expected), "\(fault): npm said \(result.stderr)")
                    #expect(try await machine.fail("sh -c hello", user: "alice").status == 127, "\(fault) left hello on the PATH")
                    try await registry.clearFaults()
                    // The next attempt starts from an empty cache, so every fault is met fresh.
                    try await machine.succeed("rm -rf /home/alice/.npm", user: "alice")
                }
                try await machine.shutdown()
            }
            #expect(try alice.check().clean)
        }
    }

    @Test("packages listed in the configuration are installed when the machine comes up")
    func bootTimeProvisioning() async throws {
        defer { try? FileManager.default.removeItem(at: work) }
        try await withRegistry(packages: Self.packages) { registry in
            let alice = try HomeVolume.create(user: "alice", uid: 1000, sizeMiB: 128, in: work)
            try await withMachine({ spec in
                spec.attach(alice)
                try? spec.configure(config(registry, packages: ["@nodeos/hello-cli"]), in: work)
            }, waitForAgent: false) { machine in
                _ = try await machine.console.expect(.regex(#"nodeos: packages alice ok [0-9]+ms"#), timeout: Self.npmTimeout)
                try await machine.waitForAgent(timeout: Self.npmTimeout)
                // The install time is a boot phase of its own, before ready.
                let report = await machine.bootReport()
                let phases = report.guestPhases.map(\.name)
                #expect(phases.suffix(2) == ["packages", "ready"], "phases: \(phases)")
                #expect(try await machine.succeed("hello", user: "alice").contains("hello-cli 1.0.0"))
                let result = try await machine.readFile("/run/nodeos/config-result.json")
                #expect(String(decoding: result, as: UTF8.self).contains("\"applied\": true"))
                try await machine.shutdown()
            }
        }
    }

    static let hostNode = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("build/node/bin/node").path
    static let hostNpm = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("build/node/lib/node_modules/npm/bin/npm-cli.js").path
}
