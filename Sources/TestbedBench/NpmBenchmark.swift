import Foundation
import NpmRegistry
import Testbed

/// Times `npm install -g PACKAGE` as a user in a fresh guest home, against the
/// host's npm (the pinned node, same version as the guest's) installing from
/// the same registry into a fresh prefix and cache; rounds interleaved.
public struct NpmBenchmark: Sendable {
    public var image: NodeOSImage
    public var packages: URL
    public var package: String
    public var installs: Int
    public var hostNode: String
    public var hostNpmCLI: String

    public init(image: NodeOSImage, packages: URL, package: String, installs: Int, hostNode: String, hostNpmCLI: String) {
        self.image = image
        self.packages = packages
        self.package = package
        self.installs = installs
        self.hostNode = hostNode
        self.hostNpmCLI = hostNpmCLI
    }

    public func run(progress: @Sendable (String) -> Void) async throws -> NpmInstallBench {
        for path in [hostNode, hostNpmCLI] where !FileManager.default.fileExists(atPath: path) {
            throw TestbedError.setup("npm benchmark: \(path) is missing (make image fetches the pinned node)")
        }
        let testbed = try await Testbed.shared()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("nodeos-npm-bench-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: work) }
        return try await withRegistry(packages: packages) { registry in
            var guest: [Double] = []
            var host: [Double] = []
            for round in 0..<installs {
                let folder = work.appendingPathComponent("round-\(round)")
                guest.append(try await guestInstall(registry, testbed: testbed, in: folder))
                progress(String(format: "bench: npm install %d/%d guest: %.1f s", round + 1, installs, guest.last! / 1000))
                host.append(try hostInstall(registry, in: folder))
                progress(String(format: "bench: npm install %d/%d host: %.1f s", round + 1, installs, host.last! / 1000))
            }
            return NpmInstallBench(package: package, guestMs: guest, hostMs: host)
        }
    }

    private func guestInstall(_ registry: Registry, testbed: Testbed, in folder: URL) async throws -> Double {
        let home = try HomeVolume.create(user: "alice", uid: 1000, sizeMiB: 128, in: folder)
        var config = BootConfig(hostname: "bench-npm", registry: registry.guestURL.absoluteString)
        config.users["alice"] = .init(uid: 1000)
        var spec = MachineSpec(name: "bench-npm", image: image)
        spec.memoryMiB = 384
        spec.attach(home)
        try spec.configure(config, in: folder)
        return try await Machine.with(spec, in: testbed) { machine in
            let clock = ContinuousClock()
            let started = clock.now
            let result = try await machine.execute(["npm", "install", "-g", package], user: "alice", timeout: .seconds(900))
            let took = (clock.now - started).milliseconds
            guard result.succeeded else {
                throw TestbedError.setup("npm benchmark: npm install -g \(package) in the guest failed: \(result)\n\(result.stderr.suffix(2000))")
            }
            try await machine.shutdown()
            return took
        }
    }

    private func hostInstall(_ registry: Registry, in folder: URL) throws -> Double {
        let clock = ContinuousClock()
        let started = clock.now
        try HostCommand(hostNode, [
            hostNpmCLI, "install", "-g", "--prefix", folder.appendingPathComponent("host-prefix").path,
            "--cache", folder.appendingPathComponent("host-cache").path, "--userconfig", "/dev/null",
            "--registry", registry.url.absoluteString, "--no-audit", "--no-fund", package,
        ], step: "npm benchmark: installing \(package) with the host's npm").run(timeout: .seconds(300))
        return (clock.now - started).milliseconds
    }
}
