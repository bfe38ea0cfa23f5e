import Foundation

/// The machine an accelerator verdict is about: the libvirt host (the remote
/// one on a remote URI), its kernel and its QEMU. A verdict holds until one
/// of them changes.
public struct AcceleratorHost: Sendable, Codable, Hashable, CustomStringConvertible {
    public var host: String
    /// The host kernel's release; `remote` when libvirt cannot tell it.
    public var kernel: String
    public var qemu: String

    public init(host: String, kernel: String, qemu: String) {
        self.host = host
        self.kernel = kernel
        self.qemu = qemu
    }

    public var description: String { "\(host) (kernel \(kernel), QEMU \(qemu))" }

    /// This machine's name and kernel release, from `uname`.
    package static var local: (host: String, kernel: String) {
        var name = utsname()
        uname(&name)
        let host = withUnsafeBytes(of: name.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let kernel = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return (host, kernel)
    }
}

/// What a probe boot under KVM showed.
public enum ProbeOutcome: Sendable, Equatable {
    /// A KVM guest reached init: KVM works on this host.
    case reachedInit(String)
    /// A KVM guest started but did not reach init in time (nested hosts).
    case hung(String)
    /// QEMU refused to run the guest under KVM ("failed to set MSR 0x10a",
    /// "KVM internal error"): as much an answer as a guest that works.
    case refused(String)
    /// The probe failed for a reason that says nothing about KVM.
    case inconclusive(String)

    /// A start failure is a refusal when QEMU's own words blame KVM.
    public static func startFailed(_ message: String) -> ProbeOutcome {
        let lowered = message.lowercased()
        let blamesKVM = lowered.contains("kvm") || lowered.contains("failed to set msr") || lowered.contains("/dev/kvm")
        return blamesKVM ? .refused("QEMU refused KVM: \(message)") : .inconclusive("the probe could not start: \(message)")
    }

    var accelerator: Accelerator {
        if case .reachedInit = self { return .kvm }
        return .tcg
    }

    /// Whether the outcome is worth remembering for this host.
    var isVerdict: Bool {
        if case .inconclusive = self { return false }
        return true
    }

    var reason: String {
        switch self {
        case .reachedInit(let why), .hung(let why), .refused(let why), .inconclusive(let why): why
        }
    }
}

/// Remembered verdicts, one per ``AcceleratorHost``, in one JSON file
/// (default `~/.cache/nodeos/accelerator.json`).
public struct AcceleratorVerdicts: Sendable {
    public struct Verdict: Codable, Sendable, Equatable {
        public var accelerator: Accelerator
        public var host: AcceleratorHost
        public var checkedAt: String
        public var reason: String
    }

    public var path: String

    public init(path: String = AcceleratorVerdicts.defaultPath) {
        self.path = path
    }

    public static var defaultPath: String {
        let base = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")
        return base + "/nodeos/accelerator.json"
    }

    private func all() -> [Verdict] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return (try? JSONDecoder().decode([Verdict].self, from: data)) ?? []
    }

    public func verdict(for host: AcceleratorHost) -> Verdict? {
        all().first { $0.host == host }
    }

    /// Replaces the verdict for `verdict.host`, keeping every other host's.
    public func store(_ verdict: Verdict) {
        let kept = all().filter { $0.host != verdict.host } + [verdict]
        let folder = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(kept) else { return }
        // Written aside and renamed: a run killed mid-write leaves the old file.
        let temporary = path + ".\(getpid()).tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else { return }
        if rename(temporary, path) != 0 { unlink(temporary) }
    }
}

/// Decides between KVM and TCG: KVM only after a probe boot showed a guest
/// reaching init under it (on nested hosts `/dev/kvm` can exist while guests
/// hang, or QEMU refuses it). Every outcome but an inconclusive one is kept
/// per ``AcceleratorHost``; `NODEOS_ACCEL=kvm|tcg` overrides it all.
///
/// The probe boot itself is the caller's (`boot`), so this decision knows
/// nothing of machines and is tested without one.
public enum AcceleratorProbe {
    /// How long the probe boot may take to reach init under KVM.
    public static let probeDeadline: Duration = .seconds(20)

    public struct Decision: Sendable, Equatable {
        public var accelerator: Accelerator
        public var reason: String
        /// Whether a probe boot ran for this decision.
        public var probed: Bool
    }

    /// - Parameters:
    ///   - kvmOffered: whether the libvirt host offers KVM at all (its `/dev/kvm`,
    ///     or libvirt's domain capabilities on a remote host).
    ///   - boot: boots a probe guest under KVM and says what happened.
    public static func decide(
        host: AcceleratorHost, kvmOffered: Bool, forced: String? = ProcessInfo.processInfo.environment["NODEOS_ACCEL"],
        verdicts: AcceleratorVerdicts = AcceleratorVerdicts(), boot: @Sendable () async -> ProbeOutcome
    ) async -> Decision {
        if let forced, let accelerator = Accelerator(rawValue: forced) {
            return Decision(accelerator: accelerator, reason: "NODEOS_ACCEL=\(forced)", probed: false)
        }
        guard kvmOffered else { return Decision(accelerator: .tcg, reason: "\(host.host) offers no KVM", probed: false) }
        if let known = verdicts.verdict(for: host) {
            return Decision(accelerator: known.accelerator, reason: "remembered from \(known.checkedAt): \(known.reason)", probed: false)
        }
        let outcome = await boot()
        if outcome.isVerdict {
            verdicts.store(.init(accelerator: outcome.accelerator, host: host,
                                 checkedAt: ISO8601DateFormatter().string(from: Date()), reason: outcome.reason))
        }
        return Decision(accelerator: outcome.accelerator, reason: outcome.reason, probed: true)
    }
}
