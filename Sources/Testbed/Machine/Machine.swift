import Foundation
import Libvirt
import Synchronization
import TestbedCore

/// One running NodeOS machine, driven the way a person would describe it.
///
/// ```swift
/// let machine = try await Machine.start(MachineSpec(image: image), in: testbed)
/// try await machine.waitForAgent()
/// let kernel = try await machine.succeed("node -p process.version")
/// try await machine.shutdown()
/// ```
///
/// Every wait takes a `Duration` with a host-side deadline on
/// `ContinuousClock`; defaults scale with the accelerator (see ``Deadlines``).
/// Failures are ``MachineError``s ending with the last 20 console lines and
/// the artifacts folder.
public actor Machine {
    /// The machine's (libvirt domain) name.
    public nonisolated let name: String
    public nonisolated let spec: MachineSpec
    /// The serial console.
    public nonisolated let console: Console
    /// This machine's artifacts folder.
    public nonisolated let artifacts: URL
    public nonisolated let accelerator: Accelerator
    public nonisolated let deadlines: Deadlines
    /// When the host started the machine: time zero of the boot report.
    public nonisolated let hostStart: ContinuousClock.Instant
    nonisolated let startedAt: Date
    nonisolated let testbed: Testbed
    nonisolated let domain: Domain
    nonisolated let agent: AgentClient
    /// The tunnel's host end, when the spec asked for one.
    nonisolated let tunnel: Tunnel?
    nonisolated let shared: Shared
    nonisolated let context: FailureContext
    /// The machine's volumes in the libvirt host's storage pool, when they were uploaded.
    nonisolated let staged: StagedVolumes?
    var hello: JSONValue?

    /// State the libvirt callbacks update (off the actor).
    final class Shared: Sendable {
        let timeline = Mutex(BootTimeline())
        let problems = Mutex<[String]>([])
        /// Console lines that looked like init's but carried no valid seal.
        let forgedLines = Mutex(0)
        /// Its lifecycle: libvirt's stop event and ``Machine/finish(destroy:)`` move it.
        let state = Mutex(MachineState.running)
        let notifier = ChangeNotifier()
        let forwards = Mutex<[PortForward]>([])
    }

    init(
        name: String, spec: MachineSpec, console: Console, artifacts: URL, accelerator: Accelerator, hostStart: ContinuousClock.Instant,
        startedAt: Date, testbed: Testbed, domain: Domain, agent: AgentClient, tunnel: Tunnel?, shared: Shared, context: FailureContext,
        staged: StagedVolumes?
    ) {
        self.tunnel = tunnel
        self.staged = staged
        self.name = name
        self.spec = spec
        self.console = console
        self.artifacts = artifacts
        self.accelerator = accelerator
        self.deadlines = Deadlines(accelerator: accelerator)
        self.hostStart = hostStart
        self.startedAt = startedAt
        self.testbed = testbed
        self.domain = domain
        self.agent = agent
        self.shared = shared
        self.context = context
    }

    // MARK: Waiting

    /// Waits until the guest agent has said `ready`, then asks it `hello`.
    ///
    /// Fails fast when a default check fires on the console (a kernel panic,
    /// say) or the machine stops.
    public func waitForAgent(timeout: Duration? = nil) async throws {
        let timeout = timeout ?? deadlines.agent
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        try await waitUntil(timeout: timeout, "waiting for the agent to be ready") { [agent] in
            agent.ready.count > 0
        }
        let remaining = max(deadline - clock.now, .seconds(1))
        hello = try await request("hello", [:], timeout: remaining)
        if let at = agent.ready.at {
            shared.timeline.withLock { $0.record("agentReady", hostMilliseconds: (at - hostStart).milliseconds) }
        }
    }

    /// Waits until `condition` holds, re-checking whenever the console, the
    /// agent or the domain changes. Throws on a default check, a stopped
    /// machine, or the deadline.
    func waitUntil(timeout: Duration, _ what: String, failOnProblems: Bool = true, _ condition: @escaping @Sendable () -> Bool) async throws {
        let shared = self.shared
        let agent = self.agent
        let context = self.context
        do {
            try await withDeadline(timeout, what) {
                while true {
                    let seenMachine = shared.notifier.version
                    let seenAgent = agent.notifier.version
                    if condition() { return }
                    if failOnProblems, let problem = shared.problems.withLock({ $0.first }) {
                        throw context.failure(.failurePattern, "\(what): \(problem)")
                    }
                    if let stopped = shared.state.withLock({ $0.reason }) {
                        throw context.failure(.machineStopped, "\(what): \(stopped)")
                    }
                    await withTaskGroup(of: Void.self) { group in
                        group.addTask { await shared.notifier.wait(after: seenMachine) }
                        group.addTask { await agent.notifier.wait(after: seenAgent) }
                        await group.next()
                        group.cancelAll()
                    }
                    try Task.checkCancellation()
                }
            }
        } catch let error as TimeoutError {
            throw context.failure(.timeout, error.description + (await silenceNote(since: hostStart, timeout: timeout)))
        }
    }

    /// Why a wait may have seen nothing: a console that never printed, or a
    /// guest that went quiet on both channels (init hung).
    func silenceNote(since: ContinuousClock.Instant, timeout: Duration) async -> String {
        let domain = self.domain
        let state = (try? await Blocking.run { try domain.state() }).map { "\($0)" } ?? "unknown"
        if console.log.count == 0 {
            return "; the console printed nothing at all since the machine started (\((ContinuousClock.now - hostStart).formattedSeconds)): the firmware or kernel never ran, or the console goes elsewhere; libvirt says the domain is \(state)"
        }
        // The console may still print what the guest did just before it
        // stopped: quiet means nothing for the second half of the wait.
        let quietSince = ContinuousClock.now - min(timeout / 2, .seconds(30))
        let agentQuiet = agent.lastInput.map { $0 < since } ?? true
        let consoleQuiet = (console.log.lastByteAt ?? hostStart) < quietSince
        if agentQuiet && consoleQuiet {
            let consoleAge = console.log.lastByteAt.map { (ContinuousClock.now - $0).formattedSeconds } ?? "ever"
            return "; the agent sent nothing since the request (\((ContinuousClock.now - since).formattedSeconds)) and the console nothing for \(consoleAge): init looks hung; libvirt says the domain is \(state)"
        }
        return ""
    }

    // MARK: Metrics

    /// Guest memory (through the agent's `meminfo`) and QEMU's RSS (through libvirt).
    public func memory() async throws -> MemoryReport {
        let info = try await request("meminfo", [:], timeout: deadlines.command)
        let domain = self.domain
        let stats = try? await Blocking.run { try domain.memoryStats() }
        func kib(_ key: String) -> UInt64? { info[key]?.doubleValue.map { UInt64($0) } }
        return MemoryReport(guestTotalKiB: kib("memTotalKiB"), guestAvailableKiB: kib("memAvailableKiB"),
                            initRssKiB: kib("initRssKiB"), qemuRssKiB: stats?.rssKiB)
    }

    /// CPU time the machine has used so far (all vCPUs and QEMU's own threads).
    public func cpuTime() async throws -> Duration {
        let domain = self.domain
        do {
            return try await Blocking.run { try domain.cpuTime() }
        } catch let error as LibvirtError {
            throw context.failure(.testbed, error.description)
        }
    }

    /// The boot report so far; pass `memory` to include a measurement.
    public func bootReport(memory: MemoryReport? = nil) -> BootReport {
        let timeline = shared.timeline.withLock { $0 }
        var phases: [(name: String, milliseconds: Double)] = [("hostStart", 0)]
        if let first = console.log.firstByteAt { phases.append(("firstConsoleByte", (first - hostStart).milliseconds)) }
        phases += timeline.hostPhases
        phases.sort { $0.milliseconds < $1.milliseconds }
        let guest = timeline.phases.compactMap { phase in phase.guestMilliseconds.map { (name: phase.name, milliseconds: $0) } }
        let manifest = spec.image.manifest
        return BootReport(
            machine: name, phases: phases, guestPhases: guest, memory: memory, accelerator: accelerator,
            imageHash: manifest.imageHash, kernelVersion: hello?["kernel"]?.stringValue ?? manifest.kernelVersion,
            nodeVersion: hello?["nodeVersion"]?.stringValue ?? manifest.nodeVersion,
            bootID: hello?["bootId"]?.stringValue ?? timeline.bootID ?? agent.ready.bootID,
            libvirtURI: testbed.uri, startedAt: ISO8601DateFormatter().string(from: startedAt), artifacts: artifacts.path,
            problems: shared.problems.withLock { $0 },
            processToHostStartMs: ProcessAge.milliseconds(at: hostStart))
    }

    /// Default checks that fired and `nodeos: error` lines, so far.
    public var problems: [String] { shared.problems.withLock { $0 } }

    /// How many console lines looked like init's (`nodeos: …`) without its
    /// seal: printed by someone else, and ignored.
    public nonisolated var forgedConsoleLines: Int { shared.forgedLines.withLock { $0 } }

    /// The agent's `hello` answer (after ``waitForAgent(timeout:)``).
    public var agentHello: JSONValue? { hello }

    static func quote(_ argv: [String]) -> String {
        "'" + argv.joined(separator: " ") + "'"
    }
}
