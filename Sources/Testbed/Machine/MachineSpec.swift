import Foundation

/// A trouble sign watched for on every machine, with a name to opt out by.
///
/// Like Fedora CoreOS's kola, the testbed fails a machine that shows one of
/// these even when the test's own assertions passed. Remove one from
/// ``MachineSpec/checks`` to opt out: `spec.checks.removeAll { $0.name == "kernel-warning" }`.
public struct ConsoleCheck: Sendable, Hashable {
    /// What a check reads.
    public enum Source: String, Sendable, Hashable {
        /// Every console line, and every kernel log record of warning level
        /// or worse (the agent forwards them: the image boots `quiet`, so
        /// the console shows only errors).
        case kernel
        /// init's own lines, told from anything a user prints by their seal
        /// (see `SealedLineReader`).
        case initLines
    }

    public var name: String
    public var pattern: ConsolePattern
    public var source: Source
    public init(name: String, pattern: ConsolePattern, source: Source = .kernel) {
        self.name = name
        self.pattern = pattern
        self.source = source
    }

    public static let kernelPanic = ConsoleCheck(name: "kernel-panic", pattern: "Kernel panic")
    public static let kernelOops = ConsoleCheck(name: "kernel-oops", pattern: .regex(#"\bOops: "#))
    public static let kernelBug = ConsoleCheck(name: "kernel-bug", pattern: .regex(#"\bBUG: "#))
    public static let kernelWarning = ConsoleCheck(name: "kernel-warning", pattern: .regex(#"\bWARNING: CPU: "#))
    public static let outOfMemory = ConsoleCheck(name: "oom-killer", pattern: .regex(#"Out of memory: |invoked oom-killer"#))
    /// init's own report of an uncaught exception or unhandled rejection.
    public static let initUncaught = ConsoleCheck(
        name: "init-uncaught-exception", pattern: .regex(#"^nodeos: error init: (uncaught exception|unhandled rejection)"#), source: .initLines)
    /// node's fatal-error banner: init died of an error it could not catch.
    public static let initDied = ConsoleCheck(name: "init-died", pattern: .regex(#"^Node\.js v[0-9]+\.[0-9]+\.[0-9]+\s*$"#))
    /// init gave up restarting a service (5 restarts in 60 s).
    public static let serviceCrashLoop = ConsoleCheck(
        name: "service-crash-loop", pattern: .regex(#"^nodeos: error service [^:]+: crash loop"#), source: .initLines)

    /// Every default check.
    public static let defaults: [ConsoleCheck] = [.kernelPanic, .kernelOops, .kernelBug, .kernelWarning, .outOfMemory, .initUncaught, .initDied, .serviceCrashLoop]
}

/// What machine to boot: the image, its size, extra kernel parameters and disks.
///
/// ```swift
/// var spec = MachineSpec(name: "web", image: image)
/// spec.memoryMiB = 256
/// spec.kernelParameters.append("nodeos.hostname=web")
/// ```
public struct MachineSpec: Sendable {
    /// The machine's name (also its libvirt domain name and artifacts folder).
    public var name: String
    public var image: NodeOSImage
    public var memoryMiB: Int = 256
    public var vcpus: Int = 1
    /// Appended to the image's default kernel command line.
    public var kernelParameters: [String] = []
    /// Extra disks (home volumes, the config volume), after the rootfs.
    public var disks: [DomainSpec.Disk] = []
    /// A user-mode NIC (QEMU slirp).
    public var network: Bool = true
    /// The NIC lets the guest open no connection (QEMU `restrict=on`): it
    /// reaches only what the tunnel offers (``tunnelTargets``). Scenarios set
    /// it by default; the Swift API leaves the NIC open unless asked.
    public var restrictEgress: Bool = false
    /// Capture the NIC's traffic into `capture.pcap` in the artifacts folder.
    public var capture: Bool = false
    /// The tunnel's channel (``Machine/forward(guestPort:hostPort:)``): host
    /// ports led to guest ports through libvirt, on any libvirt host.
    public var tunnel: Bool = false
    /// The services its boot configuration starts: their logs are saved in
    /// the artifacts (`services/NAME.log`) before the machine goes down.
    public var serviceNames: [String] = []
    /// Private point-to-point links to other machines (a scenario's `networks`).
    public var links: [DomainSpec.Link] = []
    /// Where the guest's tunnel listeners (its config's `tunnel.listen`) lead on this host, by name.
    public var tunnelTargets: [String: TunnelTarget] = [:]
    /// `nil`: decided by the testbed's probe (KVM only where it was shown to work).
    public var accelerator: Accelerator?
    /// Trouble signs watched for on the console.
    public var checks: [ConsoleCheck] = ConsoleCheck.defaults
    /// Steps whose `nodeos: error STEP: …` lines a test provokes on purpose
    /// (e.g. `homes` for a corrupt volume); any other guest error is a problem.
    public var allowedGuestErrors: Set<String> = []
    /// Create the domain but leave its vCPUs stopped until ``Machine/resume()``:
    /// a guest that never prints anything (tests of the testbed's own
    /// explanations use it), or one to attach a debugger to first.
    public var startsPaused = false
    /// The emulator binary.
    public var emulator: String = "/usr/bin/qemu-system-x86_64"
    /// Firmware ROM (`-bios`); default qboot where installed, as `images/qemu-boot` uses.
    public var firmware: String? = DomainSpec.qboot
    /// A virtio balloon reporting the guest's memory statistics to libvirt
    /// every this many seconds; `nil` (the default) for none. The testbed's
    /// own memory figures need no balloon (guest numbers come from the agent,
    /// QEMU's RSS from the host), and the device is boot work that the
    /// plain-QEMU baseline does not do.
    public var balloonStatsPeriod: Int?

    public init(name: String = "nodeos", image: NodeOSImage) {
        self.name = name
        self.image = image
    }

    /// The full kernel command line.
    public var commandLine: String {
        ([image.commandLine] + kernelParameters).filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// The domain this spec becomes.
    public func domainSpec(name: String, accelerator: Accelerator, capturePath: String?) -> DomainSpec {
        var spec = DomainSpec(
            name: name, accelerator: accelerator, memoryMiB: memoryMiB, vcpus: vcpus, emulator: emulator,
            kernel: image.kernelPath, commandLine: commandLine, rootfs: image.rootfsPath, disks: disks,
            network: network ? DomainSpec.Network(capturePath: capturePath, restricted: restrictEgress) : nil, tunnelChannel: tunnel,
            balloonStatsPeriod: balloonStatsPeriod, firmware: firmware)
        spec.links = links
        return spec
    }
}

/// Default deadlines, scaled by the accelerator (TCG is about ten times slower).
public struct Deadlines: Sendable, Equatable {
    public var accelerator: Accelerator

    public init(accelerator: Accelerator) {
        self.accelerator = accelerator
    }

    private func scaled(_ seconds: Double) -> Duration {
        .milliseconds(Int64(seconds * accelerator.deadlineScale * 1000))
    }

    /// Boot to the agent's `ready`: 15 s under KVM.
    public var agent: Duration { scaled(15) }
    /// One console expectation: 10 s under KVM.
    public var console: Duration { scaled(10) }
    /// One command: 30 s under KVM.
    public var command: Duration { scaled(30) }
    /// Clean shutdown: 10 s under KVM.
    public var shutdown: Duration { scaled(10) }
}

/// A machine's checks with their patterns compiled once, for the many
/// lines they read.
struct CompiledChecks: Sendable {
    private let checks: [(name: String, source: ConsoleCheck.Source, pattern: CompiledPattern)]

    init(_ checks: [ConsoleCheck]) {
        self.checks = checks.map { ($0.name, $0.source, CompiledPattern($0.pattern)) }
    }

    /// The names of the checks of `source` that `line` sets off.
    func firing(on line: String, from source: ConsoleCheck.Source) -> [String] {
        checks.filter { $0.source == source && $0.pattern.matches(line) }.map(\.name)
    }
}
