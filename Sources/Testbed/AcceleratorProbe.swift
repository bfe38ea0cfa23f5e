import Foundation
import Libvirt

/// Decides between KVM and TCG: KVM only after a probe boot showed a guest
/// reaching init under it. (On nested hosts `/dev/kvm` can exist while guests
/// hang.) The verdict is cached per host and host kernel in
/// `~/.cache/nodeos/accelerator.json`; `NODEOS_ACCEL=kvm|tcg` overrides it.
public enum AcceleratorProbe {
    /// How long the probe boot may take to reach init under KVM.
    public static let probeDeadline: Duration = .seconds(20)

    struct Verdict: Codable {
        var accelerator: Accelerator
        var host: String
        var hostKernel: String
        var checkedAt: String
        var reason: String
    }

    static var cacheFile: String {
        let base = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")
        return base + "/nodeos/accelerator.json"
    }

    static var hostIdentity: (host: String, kernel: String) {
        var name = utsname()
        uname(&name)
        let host = withUnsafeBytes(of: name.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let kernel = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return (host, kernel)
    }

    /// The accelerator to use for machines of `image` on `testbed`.
    public static func decide(image: NodeOSImage, testbed: Testbed) async throws -> Accelerator {
        if let forced = ProcessInfo.processInfo.environment["NODEOS_ACCEL"], let accelerator = Accelerator(rawValue: forced) {
            return accelerator
        }
        guard access("/dev/kvm", R_OK | W_OK) == 0 else { return .tcg }
        let identity = hostIdentity
        if let data = FileManager.default.contents(atPath: cacheFile),
           let verdict = try? JSONDecoder().decode(Verdict.self, from: data),
           verdict.host == identity.host, verdict.hostKernel == identity.kernel {
            return verdict.accelerator
        }
        let (accelerator, reason, conclusive) = await probe(image: image, testbed: testbed)
        LibvirtLog.append("accelerator probe: \(accelerator) (\(reason))")
        guard conclusive else { return accelerator }
        let verdict = Verdict(accelerator: accelerator, host: identity.host, hostKernel: identity.kernel,
                              checkedAt: ISO8601DateFormatter().string(from: Date()), reason: reason)
        try? FileManager.default.createDirectory(atPath: (cacheFile as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if let data = try? JSONEncoder().encode(verdict) { _ = FileManager.default.createFile(atPath: cacheFile, contents: data) }
        return accelerator
    }

    /// Boots the image under KVM (no agent, no shell) and waits for init's
    /// first phase line or the kernel's `Run /sbin/init`.
    static func probe(image: NodeOSImage, testbed: Testbed) async -> (Accelerator, String, conclusive: Bool) {
        var spec = MachineSpec(name: "kvm-probe", image: image)
        spec.accelerator = .kvm
        spec.memoryMiB = 256
        spec.network = false
        spec.kernelParameters = ["nodeos.shell=0", "nodeos.agent=0"]
        spec.checks = []
        do {
            let machine = try await Machine.start(spec, in: testbed)
            do {
                let match = try await machine.console.expect(
                    success: ["Run /sbin/init", "nodeos: phase"], failure: ["Kernel panic"], timeout: probeDeadline)
                await machine.finish(destroy: true)
                return (.kvm, "a KVM guest reached init: \(match.line)", true)
            } catch {
                await machine.finish(destroy: true)
                return (.tcg, "a KVM guest did not reach init within \(probeDeadline.formattedSeconds)", true)
            }
        } catch {
            return (.tcg, "a KVM guest could not start: \(error)", false)
        }
    }
}
