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
    private nonisolated let startedAt: Date
    private nonisolated let testbed: Testbed
    private nonisolated let domain: Domain
    private nonisolated let agent: AgentClient
    private nonisolated let shared: Shared
    private nonisolated let context: FailureContext
    /// The machine's volumes in the libvirt host's storage pool, when they were uploaded.
    private nonisolated let staged: StagedVolumes?
    private var hello: JSONValue?
    private var finished = false

    /// State the libvirt callbacks update (off the actor).
    final class Shared: Sendable {
        let timeline = Mutex(BootTimeline())
        let problems = Mutex<[String]>([])
        /// Console lines that looked like init's but carried no valid seal.
        let forgedLines = Mutex(0)
        let stopped = Mutex<String?>(nil)
        let notifier = ChangeNotifier()
    }

    private init(
        name: String, spec: MachineSpec, console: Console, artifacts: URL, accelerator: Accelerator, hostStart: ContinuousClock.Instant,
        startedAt: Date, testbed: Testbed, domain: Domain, agent: AgentClient, shared: Shared, context: FailureContext, staged: StagedVolumes?
    ) {
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

    // MARK: Starting

    /// Starts a machine: writes its domain XML, starts the domain paused,
    /// attaches the console and agent channel, then lets it run.
    ///
    /// Waits for a free slot under the process-wide ``MachineLimiter`` first.
    public static func start(_ spec: MachineSpec, in testbed: Testbed) async throws -> Machine {
        let accelerator: Accelerator
        if let chosen = spec.accelerator { accelerator = chosen } else { accelerator = try await testbed.accelerator(for: spec.image) }
        try await MachineLimiter.shared.acquire()
        let name = testbed.reserveName(spec.name)
        var staged: StagedVolumes?
        do {
            // On a remote URI the volumes travel through libvirt's storage API first.
            staged = try await testbed.stageVolumes(of: spec, machine: name)
            // A caller that gave up while this one waited (a step's watchdog) gets no machine.
            try Task.checkCancellation()
            return try await start(spec, name: name, accelerator: accelerator, staged: staged, in: testbed)
        } catch {
            _ = await staged?.finish(download: false)
            testbed.releaseName(name)
            await MachineLimiter.shared.release()
            throw error
        }
    }

    private static func start(_ spec: MachineSpec, name: String, accelerator: Accelerator, staged: StagedVolumes?, in testbed: Testbed) async throws -> Machine {
        var booted = staged?.spec ?? spec
        // init seals its console lines with this key, so nothing else printed there passes for them.
        let sealKey = SealedLineReader.newKeyHex()
        booted.kernelParameters.append("nodeos.seal=\(sealKey)")
        let folder = try testbed.artifacts.folder(for: name)
        let context = FailureContext(machine: name, artifacts: folder.path)
        let capture = spec.capture ? folder.appendingPathComponent("capture.pcap").path : nil
        let xml = booted.domainSpec(name: name, accelerator: accelerator, capturePath: capture).xml
        try xml.write(to: folder.appendingPathComponent("domain.xml"), atomically: true, encoding: .utf8)

        let deadlines = Deadlines(accelerator: accelerator)
        let failures = spec.checks.filter { $0.source == .kernel }.map(\.pattern)
        let console = Console(logPath: folder.appendingPathComponent("console.log").path, context: context,
                              defaultFailures: failures, defaultTimeout: deadlines.console)
        context.bind(console.log)
        let shared = Shared()
        let hostStart = ContinuousClock.now
        let startedAt = Date()
        let agent = AgentClient(transcriptPath: folder.appendingPathComponent("agent.jsonl").path, hostStart: hostStart)

        let checks = CompiledChecks(spec.checks)
        let allowedGuestErrors = spec.allowedGuestErrors
        let seal = Mutex(SealedLineReader(key: Digest.bytes(hex: sealKey) ?? []))
        console.log.onLine { line, _, at in
            for name in checks.firing(on: line, from: .kernel) {
                shared.problems.withLock { $0.append("\(name): \(line)") }
            }
            switch seal.withLock({ $0.read(line) }) {
            case .trusted(let initLine):
                let ms = (at - hostStart).milliseconds
                shared.timeline.withLock { $0.consume(line: initLine, hostMilliseconds: ms) }
                for name in checks.firing(on: initLine, from: .initLines) {
                    shared.problems.withLock { $0.append("\(name): \(initLine)") }
                }
                if case .error(let step, let message)? = GuestLine.parse(initLine), !allowedGuestErrors.contains(step) {
                    shared.problems.withLock { $0.append("nodeos error \(step): \(message)") }
                }
            case .forged(let why):
                shared.forgedLines.withLock { $0 += 1 }
                LibvirtLog.append("machine '\(name)': ignored a console line that is not init's (\(why)): \(line.prefix(200))")
            case .other:
                break
            }
            shared.notifier.notify()
        }
        agent.onEvent { event, body in
            switch event {
            case "kmsg":
                guard let text = body["text"]?.stringValue else { return }
                for name in checks.firing(on: text, from: .kernel) {
                    shared.problems.withLock { $0.append("\(name) (kernel log): \(text)") }
                }
            case "kmsg-dropped":
                let count = body["count"]?.doubleValue.map { Int($0) } ?? 0
                LibvirtLog.append("machine '\(name)': the guest dropped \(count) kernel log records (over its rate bound)")
            default:
                return
            }
            shared.notifier.notify()
        }
        testbed.onLifecycle(of: name) { [weak console, weak agent] event in
            LibvirtLog.append("lifecycle \(event)")
            guard event.isStopped else { return }
            shared.stopped.withLock { if $0 == nil { $0 = "the domain stopped (\(event))" } }
            console?.log.close(reason: "the machine stopped")
            agent?.fail("the machine stopped")
            shared.notifier.notify()
            // The console stream normally ends by itself once drained; make sure
            // it does not keep the pty's lock file past the machine's end.
            let stoppedConsole = console
            DispatchQueue.global().asyncAfter(deadline: .now() + 1) { stoppedConsole?.closeStream() }
        }
        let notifyOnAgent = agent.notifier
        _ = notifyOnAgent

        let connection = testbed.connection
        let domain: Domain
        do {
            domain = try await Blocking.run { () throws -> Domain in
                let domain = try connection.createDomain(xml: xml, name: name, startPaused: true)
                let created = ContinuousClock.now
                Cleanup.register(domain: domain)
                do {
                    let consoleStream = try openConsole(domain, connection)
                    try console.attach(consoleStream)
                    if spec.domainSpec(name: name, accelerator: accelerator, capturePath: nil).agentChannel {
                        let channel = try connection.newStream()
                        try domain.openChannel(AgentProtocol.channelName, channel)
                        try agent.attach(channel)
                    }
                    let attached = ContinuousClock.now
                    if !spec.startsPaused { try domain.resume() }
                    LibvirtLog.append(String(format: "machine '%@': domain created %.0f ms after host start, console and agent attached in %.0f ms, resumed in %.0f ms",
                                             name, (created - hostStart).milliseconds, (attached - created).milliseconds, (ContinuousClock.now - attached).milliseconds))
                } catch {
                    try? domain.destroy()
                    Cleanup.unregister(domain: domain)
                    throw error
                }
                return domain
            }
        } catch let error as LibvirtError {
            testbed.onLifecycle(of: name, nil)
            console.detach(reason: "the machine did not start")
            agent.close()
            if let root = testbed.embedRoot { copyIfPresent(root.qemuLog(domain: name), to: folder.appendingPathComponent("qemu.log")) }
            throw context.failure(.testbed, error.description)
        }
        return Machine(name: name, spec: spec, console: console, artifacts: folder, accelerator: accelerator, hostStart: hostStart,
                       startedAt: startedAt, testbed: testbed, domain: domain, agent: agent, shared: shared, context: context, staged: staged)
    }

    /// Opens the serial console, retrying while another machine's console
    /// stream still holds the lock file of the pty number this one got.
    private static func openConsole(_ domain: Domain, _ connection: Connection) throws -> DomainStream {
        for attempt in 1...50 {
            let stream = try connection.newStream()
            let failure: LibvirtError
            do {
                try domain.openConsole(stream)
                return stream
            } catch {
                failure = error
            }
            stream.close()
            guard failure.message.contains("locked by lock file"), attempt < 50 else { throw failure }
            LibvirtLog.append("machine '\(domain.name)': console busy (\(failure.message)); retrying")
            if let stale = StalePtyLock(message: failure.message), stale.isStale {
                LibvirtLog.append("machine '\(domain.name)': removing \(stale.lockFile): process \(stale.pid) no longer has \(stale.device) open")
                try? FileManager.default.removeItem(atPath: stale.lockFile)
                continue
            }
            usleep(100_000)
        }
        throw TestbedError.setup("opening the console of '\(domain.name)': gave up")
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
    private func waitUntil(timeout: Duration, _ what: String, failOnProblems: Bool = true, _ condition: @escaping @Sendable () -> Bool) async throws {
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
                    if let stopped = shared.stopped.withLock({ $0 }) {
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

    // MARK: Commands

    /// Runs `argv` in the guest through the agent. Output streams stay apart.
    ///
    /// - Parameters:
    ///   - user: run as this user (name); `nil` runs as root.
    ///   - timeout: host-side deadline; the guest kills the command a little earlier.
    public func execute(
        _ argv: [String], env: [String: String] = [:], cwd: String? = nil, user: String? = nil,
        stdin: String? = nil, timeout: Duration? = nil
    ) async throws -> ExecResult {
        let timeout = timeout ?? deadlines.command
        var fields: [String: JSONValue] = ["argv": .array(argv.map(JSONValue.string))]
        if !env.isEmpty { fields["env"] = .object(env.mapValues(JSONValue.string)) }
        if let cwd { fields["cwd"] = .string(cwd) }
        if let user { fields["user"] = .string(user) }
        if let stdin { fields["stdin"] = .string(stdin) }
        fields["timeoutMs"] = .number(max(100, timeout.milliseconds * 0.9).rounded())
        let answer = try await request("exec", fields, timeout: timeout, what: "running \(Self.quote(argv))")
        do {
            return try ExecResult(agentResult: answer)
        } catch {
            throw context.failure(.agent, "running \(Self.quote(argv)): \(error)")
        }
    }

    /// Runs a command line, split into words as a shell would (quotes and
    /// backslashes respected). No shell runs in the guest: NodeOS has none.
    public func execute(_ command: String, user: String? = nil, timeout: Duration? = nil) async throws -> ExecResult {
        try await execute(CommandWords.split(command), user: user, timeout: timeout)
    }

    /// Runs a command that must succeed; returns its stdout. Throws with the
    /// status, stdout and stderr otherwise.
    @discardableResult
    public func succeed(_ command: String, user: String? = nil, timeout: Duration? = nil) async throws -> String {
        try await succeed(CommandWords.split(command), user: user, timeout: timeout)
    }

    /// Runs `argv`, which must succeed; returns its stdout.
    @discardableResult
    public func succeed(_ argv: [String], user: String? = nil, timeout: Duration? = nil) async throws -> String {
        let result = try await execute(argv, user: user, timeout: timeout)
        guard result.succeeded else {
            throw context.failure(.commandFailed, "\(Self.quote(argv)) failed: \(result)\n--- stdout ---\n\(result.stdout)--- stderr ---\n\(result.stderr)")
        }
        return result.stdout
    }

    /// Runs a command that must fail (non-zero status or a signal); returns the result.
    @discardableResult
    public func fail(_ command: String, user: String? = nil, timeout: Duration? = nil) async throws -> ExecResult {
        try await fail(CommandWords.split(command), user: user, timeout: timeout)
    }

    /// Runs `argv`, which must fail (non-zero status or a signal); returns the result.
    @discardableResult
    public func fail(_ argv: [String], user: String? = nil, timeout: Duration? = nil) async throws -> ExecResult {
        let result = try await execute(argv, user: user, timeout: timeout)
        if result.succeeded {
            throw context.failure(.commandSucceeded, "\(Self.quote(argv)) succeeded but should have failed\n--- stdout ---\n\(result.stdout)--- stderr ---\n\(result.stderr)")
        }
        return result
    }

    /// Retries a command about once a second until it succeeds; returns its stdout.
    @discardableResult
    public func waitUntilSucceeds(_ command: String, user: String? = nil, timeout: Duration? = nil) async throws -> String {
        try await waitUntilSucceeds(CommandWords.split(command), user: user, timeout: timeout)
    }

    /// Retries `argv` about once a second until it succeeds; returns its stdout.
    @discardableResult
    public func waitUntilSucceeds(_ argv: [String], user: String? = nil, timeout: Duration? = nil) async throws -> String {
        let timeout = timeout ?? deadlines.command
        let deadline = ContinuousClock.now + timeout
        var last: ExecResult?
        while ContinuousClock.now < deadline {
            let remaining = deadline - ContinuousClock.now
            if let result = try? await execute(argv, user: user, timeout: remaining) {
                if result.succeeded { return result.stdout }
                last = result
            }
            try await Task.sleep(for: .seconds(1))
        }
        throw context.failure(.timeout, "\(Self.quote(argv)) did not succeed within \(timeout.formattedSeconds); last: \(last.map { "\($0)\n--- stdout ---\n\($0.stdout)--- stderr ---\n\($0.stderr)" } ?? "no answer")")
    }

    /// Reads a file from the guest.
    public func readFile(_ path: String, timeout: Duration? = nil) async throws -> Data {
        let answer = try await request("readFile", ["path": .string(path)], timeout: timeout ?? deadlines.command)
        guard let data = answer["data"]?.stringValue.flatMap({ Data(base64Encoded: $0) }) else {
            throw context.failure(.agent, "reading \(path): the agent sent no base64 data")
        }
        return data
    }

    /// Writes a file in the guest.
    public func writeFile(_ path: String, _ data: Data, mode: Int = 0o644, timeout: Duration? = nil) async throws {
        _ = try await request("writeFile", ["path": .string(path), "data": .string(data.base64EncodedString()), "mode": .number(Double(mode))],
                              timeout: timeout ?? deadlines.command)
    }

    /// Sends one agent request with a deadline; maps failures to ``MachineError``.
    ///
    /// While it waits, it also watches the agent's port: when the guest closes
    /// it (the agent died), the request fails then, not at the deadline.
    public func request(_ op: String, _ fields: [String: JSONValue] = [:], timeout: Duration? = nil, what: String? = nil) async throws -> JSONValue {
        let what = what ?? "agent '\(op)'"
        let agent = self.agent
        let domain = self.domain
        let timeout = timeout ?? deadlines.command
        let sent = ContinuousClock.now
        do {
            return try await withDeadline(timeout, what) {
                try await withThrowingTaskGroup(of: JSONValue.self) { group in
                    group.addTask { try await agent.request(op, fields) }
                    group.addTask {
                        try await AgentPortWatch.untilClosed(domain, channel: AgentProtocol.channelName)
                        throw AgentChannelClosed(reason: "the guest closed the agent port (\(AgentProtocol.channelName)) while the request was waiting: the agent is gone")
                    }
                    defer { group.cancelAll() }
                    guard let first = try await group.next() else { throw CancellationError() }
                    return first
                }
            }
        } catch let error as AgentError {
            var failure = context.failure(.agent, "\(what): the agent answered \(error)")
            failure.agentCode = error.code
            throw failure
        } catch let error as AgentProtocolFailure {
            throw context.failure(.agent, "\(what): \(error.reason)")
        } catch let error as AgentChannelClosed {
            throw context.failure(.machineStopped, "\(what): \(error.reason)")
        } catch let error as TimeoutError {
            throw context.failure(.timeout, error.description + (await silenceNote(since: sent, timeout: timeout)))
        }
    }

    /// Why a wait may have seen nothing: a console that never printed, or a
    /// guest that went quiet on both channels (init hung).
    private func silenceNote(since: ContinuousClock.Instant, timeout: Duration) async -> String {
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

    // MARK: Lifecycle

    /// Reboots cleanly through init and waits for the agent of the new boot.
    public func reboot(timeout: Duration? = nil) async throws {
        let before = agent.ready.count
        agent.expectNewBoot()
        _ = try await request("reboot", [:], timeout: deadlines.command)
        try await waitUntil(timeout: timeout ?? deadlines.agent, "waiting for the agent after a reboot") { [agent] in
            agent.ready.count > before
        }
    }

    /// Shuts down cleanly through init (the agent's `shutdown`) and waits for
    /// the domain to stop; then saves the artifacts and frees the slot.
    public func shutdown(timeout: Duration? = nil) async throws {
        guard !finished else { return }
        let timeout = timeout ?? deadlines.shutdown
        do {
            _ = try await request("shutdown", [:], timeout: timeout)
        } catch let error as MachineError where error.kind == .machineStopped {
            // The channel may close before the answer arrives: the machine is going down.
        }
        do {
            try await waitUntil(timeout: timeout, "waiting for the machine to power off", failOnProblems: false) { [shared] in
                shared.stopped.withLock { $0 != nil }
            }
        } catch {
            await finish(destroy: true)
            throw error
        }
        await finish(destroy: false)
    }

    /// Lets a machine started with ``MachineSpec/startsPaused`` run.
    public func resume() async throws {
        let domain = self.domain
        do {
            try await Blocking.run { try domain.resume() }
        } catch let error as LibvirtError {
            throw context.failure(.testbed, error.description)
        }
    }

    /// Pulls the plug: destroys the domain at once (no guest shutdown).
    public func crash() async {
        await finish(destroy: true)
    }

    /// Whether the domain has stopped.
    public var isStopped: Bool { shared.stopped.withLock { $0 != nil } }

    /// Stops the machine if it still runs (destroying it), then saves artifacts.
    /// Called by `withMachine` on every exit path.
    public func finish(destroy: Bool = true) async {
        guard !finished else { return }
        finished = true
        let domain = self.domain
        // A stopped event means QEMU is gone (and the transient domain with it).
        if shared.stopped.withLock({ $0 }) == nil {
            _ = try? await Blocking.run {
                if domain.isActive() { try domain.destroy() }
            }
        }
        Cleanup.unregister(domain: domain)
        shared.stopped.withLock { if $0 == nil { $0 = "the machine was destroyed" } }
        testbed.onLifecycle(of: name, nil)
        // The report first: whatever happens next, the artifacts say how it went.
        let report = bootReport(memory: nil)
        try? report.json.write(to: artifacts.appendingPathComponent("report.json"), atomically: true, encoding: .utf8)
        await Self.closeStreams(console, agent, machine: name)
        if let root = testbed.embedRoot {
            Self.copyIfPresent(root.qemuLog(domain: name), to: artifacts.appendingPathComponent("qemu.log"))
        }
        if let log = LibvirtLog.file {
            Self.copyIfPresent(log, to: artifacts.appendingPathComponent("libvirt.log"))
        }
        // Uploaded volumes: written back into the local files, so the host reads what the guest wrote.
        for problem in await staged?.finish(download: true) ?? [] {
            shared.problems.withLock { $0.append("volumes: \(problem)") }
        }
        testbed.releaseName(name)
        await MachineLimiter.shared.release()
    }

    /// Closes the console and agent streams off the cooperative pool, waiting
    /// at most 10 s: a stuck libvirt stream must not keep a test from ending.
    private static func closeStreams(_ console: Console, _ agent: AgentClient, machine: String) async {
        final class Once: Sendable {
            private let done = Atomic<Bool>(false)
            func claim() -> Bool { !done.exchange(true, ordering: .acquiringAndReleasing) }
        }
        let once = Once()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                console.detach(reason: "the machine stopped")
                agent.close()
                if once.claim() { continuation.resume() }
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + 10) {
                if once.claim() {
                    LibvirtLog.append("machine '\(machine)': closing its console and agent streams took over 10 s; going on")
                    continuation.resume()
                }
            }
        }
    }

    private static func copyIfPresent(_ source: String, to target: URL) {
        guard FileManager.default.fileExists(atPath: source) else { return }
        try? FileManager.default.removeItem(at: target)
        try? FileManager.default.copyItem(atPath: source, toPath: target.path)
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

/// libvirt's lock on a pty (`/var/lock/LCK.._pts_N`), read from its error
/// message: "Requested device '/dev/pts/1' is locked by lock file
/// '/var/lock/LCK.._pts_1' held by process 22495".
///
/// Stale when the holding process keeps no descriptor on that pty: its
/// console stream is gone (a process that did not close it, or leaked it),
/// and with it any reason for the lock.
struct StalePtyLock: Equatable {
    var device: String
    var lockFile: String
    var pid: Int32

    init(device: String, lockFile: String, pid: Int32) {
        self.device = device
        self.lockFile = lockFile
        self.pid = pid
    }

    init?(message: String) {
        let quoted = message.split(separator: "'", omittingEmptySubsequences: false).map(String.init)
        guard quoted.count >= 5, quoted[1].hasPrefix("/dev/pts/"), quoted[3].hasPrefix("/var/lock/"),
              let pidText = quoted[4].split(separator: " ").last(where: { Int32($0) != nil }), let pid = Int32(pidText) else { return nil }
        device = quoted[1]
        lockFile = quoted[3]
        self.pid = pid
    }

    var isStale: Bool {
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { return true }
        return !fds.contains { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) == device }
    }
}

/// Shell-like word splitting for command strings (no expansion).
public enum CommandWords {
    /// Splits on unquoted whitespace; single quotes keep everything, double
    /// quotes and backslashes work as in `sh`.
    public static func split(_ command: String) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for character in command {
            if escaped {
                // Inside double quotes a backslash escapes only $ ` " \ (as in
                // sh); before anything else it stays, so "a\nb" keeps its \n.
                if quote == "\"" && !"$`\"\\".contains(character) { current.append("\\") }
                current.append(character)
                escaped = false
                continue
            }
            if let open = quote {
                if character == open { quote = nil }
                else if character == "\\" && open == "\"" { escaped = true }
                else { current.append(character) }
                continue
            }
            switch character {
            case "'", "\"":
                quote = character
                inWord = true
            case "\\":
                escaped = true
                inWord = true
            case " ", "\t", "\n":
                if inWord { words.append(current); current = ""; inWord = false }
            default:
                current.append(character)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }
}
