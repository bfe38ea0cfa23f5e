import Foundation
import NpmRegistry
import Synchronization
import Testbed

/// What the runner reports while it works (the CLI prints these).
public enum RunEvent: Sendable {
    case scenarioStarted(name: String, file: String, uri: String)
    case stepStarted(scenario: String, step: Int, label: String)
    case stepFinished(scenario: String, StepResult)
    case scenarioFinished(ScenarioResult)
}

/// How to run scenarios.
public struct RunOptions: Sendable {
    /// Scenarios at once (bounded by ``MachineLimiter``'s machine bound).
    public var parallel: Int = 1
    /// Leave the failing machine running (see ``ScenarioResult/kept``).
    public var keepOnFailure = false
    /// Called for every ``RunEvent``, from any task.
    public var onEvent: @Sendable (RunEvent) -> Void = { _ in }

    public init(parallel: Int = 1, keepOnFailure: Bool = false, onEvent: @escaping @Sendable (RunEvent) -> Void = { _ in }) {
        self.parallel = parallel
        self.keepOnFailure = keepOnFailure
        self.onEvent = onEvent
    }
}

/// Runs scenarios on testbeds: machines, home volumes, config volumes and an
/// npm registry are made for each scenario, its steps run in order, and
/// everything is torn down on every path (but a machine kept on failure).
///
/// ```swift
/// let testbed = try await Testbed.shared()
/// let results = await ScenarioRunner.run(scenarios, on: [testbed], options: RunOptions())
/// ```
public enum ScenarioRunner {
    /// Runs every scenario; results come back in the order given. With several
    /// testbeds (libvirt URIs), workers take scenarios from one queue and
    /// worker `i` uses testbed `i % count`, so scenarios spread over the hosts.
    public static func run(_ scenarios: [Scenario], on testbeds: [Testbed], options: RunOptions) async -> [ScenarioResult] {
        precondition(!testbeds.isEmpty, "run scenarios on at least one testbed")
        let bound = await MachineLimiter.shared.limit
        let budget = MachineBudget(capacity: bound)
        let queue = WorkQueue(count: scenarios.count)
        let workers = max(1, min(options.parallel, bound * testbeds.count, scenarios.count))
        let collected = await withTaskGroup(of: [(Int, ScenarioResult)].self) { group in
            for worker in 0..<workers {
                let testbed = testbeds[worker % testbeds.count]
                group.addTask {
                    var mine: [(Int, ScenarioResult)] = []
                    while let index = await queue.next() {
                        let scenario = scenarios[index]
                        let need = min(max(1, scenario.machines.count), bound)
                        await budget.acquire(need)
                        let result = await run(scenario, on: testbed, options: options)
                        await budget.release(need)
                        mine.append((index, result))
                    }
                    return mine
                }
            }
            var all: [(Int, ScenarioResult)] = []
            for await part in group { all += part }
            return all
        }
        return collected.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// Runs one scenario.
    public static func run(_ scenario: Scenario, on testbed: Testbed, options: RunOptions) async -> ScenarioResult {
        options.onEvent(.scenarioStarted(name: scenario.name, file: scenario.file, uri: testbed.uri))
        let execution = Execution(scenario: scenario, testbed: testbed, options: options)
        let result = await execution.run()
        options.onEvent(.scenarioFinished(result))
        return result
    }
}

/// Machines a scenario may hold at once, so parallel scenarios never wait on
/// each other's second machine.
actor MachineBudget {
    let capacity: Int
    private var used = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(capacity: Int) { self.capacity = max(1, capacity) }

    func acquire(_ n: Int) async {
        while used + n > capacity && used > 0 {
            await withCheckedContinuation { waiters.append($0) }
        }
        used += n
    }

    func release(_ n: Int) {
        used = max(0, used - n)
        let all = waiters
        waiters = []
        for waiter in all { waiter.resume() }
    }
}

actor WorkQueue {
    private var nextIndex = 0
    let count: Int
    init(count: Int) { self.count = count }
    func next() -> Int? {
        guard nextIndex < count else { return nil }
        defer { nextIndex += 1 }
        return nextIndex
    }
}

/// A step that did not hold: what, and on which machine.
struct StepFailure: Error {
    var summary: String
    var details: String = ""
    var machine: Machine?
    var kind: ScenarioFailure.Kind = .failure
}

/// One scenario's run. Used by one task at a time: the scenario's own, or
/// the child task a deadline wraps a step in while that task waits.
final class Execution: @unchecked Sendable {
    final class MachineState {
        let definition: MachineDefinition
        var spec: MachineSpec?
        var homes: [String: HomeVolume] = [:]
        var current: Machine?
        var boots = 0
        init(definition: MachineDefinition) { self.definition = definition }
    }

    let scenario: Scenario
    let testbed: Testbed
    let options: RunOptions
    let folder: URL
    var registry: Registry?
    var states: [String: MachineState] = [:]
    /// Every machine started, in boot order.
    var booted: [Machine] = []
    var lastMemory: [String: MemoryReport] = [:]
    /// Registry requests already counted by an earlier `traffic` step.
    var requestMark = 0
    let clock = ContinuousClock()
    let start: ContinuousClock.Instant

    init(scenario: Scenario, testbed: Testbed, options: RunOptions) {
        self.scenario = scenario
        self.testbed = testbed
        self.options = options
        folder = testbed.artifacts.root.appendingPathComponent(scenario.slug)
        start = clock.now
        for definition in scenario.machines { states[definition.name] = MachineState(definition: definition) }
    }

    func elapsed(since instant: ContinuousClock.Instant) -> Double { (clock.now - instant).milliseconds / 1000 }

    func run() async -> ScenarioResult {
        let startedAt = Date()
        var steps: [StepResult] = []
        var failure: ScenarioFailure?
        var failingMachine: Machine?

        do {
            try await prepare()
        } catch {
            let converted = convert(error)
            failure = ScenarioFailure(kind: .error, step: nil, summary: "setting up: \(converted.summary)", message: converted.details,
                                      consoleTail: [], artifacts: folder.path)
        }

        let deadline = scenario.timeout.map { start + $0 }
        for step in scenario.steps {
            let stepStart = clock.now
            guard failure == nil else {
                steps.append(StepResult(index: step.index, label: step.label, keyword: step.keyword, machine: step.machine, location: step.location,
                                        status: .skipped, startedAfter: elapsed(since: start), seconds: 0, message: nil))
                continue
            }
            options.onEvent(.stepStarted(scenario: scenario.name, step: step.index, label: step.label))
            var message: String?
            do {
                // A watchdog over the step's own deadlines: a testbed call that never
                // returns fails the step instead of hanging the whole run.
                var limit = step.timeout.map { $0 + Self.watchdogGrace } ?? Self.watchdogDefault
                if let deadline {
                    let remaining = deadline - clock.now
                    guard remaining > .zero else { throw StepFailure(summary: "the scenario's timeout of \(scenario.timeout!.scenarioText) has passed") }
                    limit = min(limit, remaining)
                }
                let finished: Void? = try await abandoning(after: limit) { [self] in try await perform(step) }
                if finished == nil {
                    throw StepFailure(summary: deadline != nil && limit < (step.timeout.map { $0 + Self.watchdogGrace } ?? Self.watchdogDefault)
                                          ? "the scenario's timeout of \(scenario.timeout!.scenarioText) passed during this step"
                                          : "the step did not finish within \(limit.scenarioText) (the testbed stopped waiting for it)")
                }
            } catch {
                var converted = convert(error)
                if converted.machine == nil, let name = step.machine { converted.machine = states[name]?.current }
                failingMachine = converted.machine
                let tail: [String] = if let machine = converted.machine { machine.console.lastLines(20) } else { [] }
                let artifacts = converted.machine?.artifacts.path ?? folder.path
                let details = converted.details.trimmingCharacters(in: .whitespacesAndNewlines)
                message = details.isEmpty ? converted.summary : converted.summary + "\n" + String(details.prefix(1500))
                failure = ScenarioFailure(kind: converted.kind, step: step.index, summary: "step \(step.index) (\(step.label)): \(converted.summary)",
                                          message: converted.details.isEmpty ? converted.summary : converted.summary + "\n" + converted.details,
                                          consoleTail: tail, artifacts: artifacts)
            }
            let result = StepResult(index: step.index, label: step.label, keyword: step.keyword, machine: step.machine, location: step.location,
                                    status: message == nil ? .passed : .failed, startedAfter: (stepStart - start).milliseconds / 1000,
                                    seconds: elapsed(since: stepStart), message: message)
            steps.append(result)
            options.onEvent(.stepFinished(scenario: scenario.name, result))
        }

        // Like kola: trouble on a console fails the scenario even when every step held.
        if failure == nil {
            for machine in booted {
                let problems = await machine.problems
                guard !problems.isEmpty else { continue }
                failingMachine = machine
                failure = ScenarioFailure(kind: .failure, step: nil, summary: "machine '\(machine.name)' showed trouble on its console: \(problems[0])",
                                          message: problems.joined(separator: "\n"), consoleTail: machine.console.lastLines(20),
                                          artifacts: machine.artifacts.path)
                break
            }
        }

        // Tear down; keep the failing machine when asked to.
        var kept: [KeptMachine] = []
        var reports: [BootReport] = []
        for machine in booted {
            reports.append(await machine.bootReport(memory: lastMemory[machine.name]))
            if options.keepOnFailure, failure != nil, let failingMachine, failingMachine === machine, !(await machine.isStopped) {
                kept.append(KeptMachine(machine: machine, uri: testbed.uri, domain: machine.name))
                continue
            }
            // Bounded: a machine that cannot be torn down is left to the exit-time cleanup.
            _ = try? await abandoning(after: Self.teardownLimit) { await machine.finish(destroy: true) }
        }
        if kept.isEmpty { await registry?.stop() }

        return ScenarioResult(name: scenario.name, file: scenario.file, status: failure == nil ? .passed : .failed,
                              seconds: elapsed(since: start), startedAt: startedAt, steps: steps, failure: failure,
                              bootReports: reports, artifacts: folder.path, libvirtURI: testbed.uri, kept: kept)
    }

    /// How long past a step's own `timeout` the watchdog waits; and without one, in all.
    static let watchdogGrace: Duration = .seconds(60)
    static let watchdogDefault: Duration = .seconds(1200)
    static let teardownLimit: Duration = .seconds(90)

    func convert(_ error: any Error) -> StepFailure {
        switch error {
        case let failure as StepFailure: return failure
        case let error as MachineError:
            let machine = booted.last { $0.name == error.machine }
            return StepFailure(summary: error.message, details: "", machine: machine, kind: error.kind == .testbed ? .error : .failure)
        case let error as TimeoutError:
            return StepFailure(summary: error.description)
        case let error as TestbedError:
            return StepFailure(summary: error.description, kind: .error)
        default:
            return StepFailure(summary: "\(error)", kind: .error)
        }
    }

    // MARK: Setting up

    func prepare() async throws {
        if let problem = scenario.slotProblem(slots: await MachineLimiter.shared.limit) {
            throw StepFailure(summary: problem, kind: .error)
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        if let packages = scenario.registry {
            registry = try await Registry.start(packages: packages)
        }
        for definition in scenario.machines {
            let state = states[definition.name]!
            let image = try NodeOSImage(directory: definition.image)
            var spec = MachineSpec(name: "\(scenario.slug)-\(definition.name)", image: image)
            spec.memoryMiB = definition.memoryMiB
            spec.vcpus = definition.vcpus
            spec.kernelParameters = definition.kernelParameters
            spec.network = definition.network
            spec.capture = definition.capture
            spec.allowedGuestErrors = Set(definition.allowedGuestErrors)
            spec.checks.removeAll { definition.ignoredChecks.contains($0.name) }
            let volumes = folder.appendingPathComponent("volumes-\(definition.name)")
            for home in definition.homes {
                var files: [String: Data] = [:]
                for (path, source) in home.files {
                    switch source {
                    case .text(let text): files[path] = Data(text.utf8)
                    case .host(let url): files[path] = try Data(contentsOf: url)
                    }
                }
                let volume = try HomeVolume.create(user: home.user, uid: home.uid, sizeMiB: home.sizeMiB, files: files, in: volumes)
                spec.attach(volume)
                state.homes[home.user] = volume
            }
            var config = BootConfig(hostname: definition.hostname, registry: registry?.guestURL.absoluteString)
            for user in definition.users {
                let hash = try user.password.map { try BootConfig.hashPassword($0, cost: 1024) }
                config.users[user.name] = .init(uid: user.uid ?? definition.homes.first { $0.user == user.name }?.uid,
                                                password: hash, packages: user.packages.isEmpty ? nil : user.packages)
            }
            for home in definition.homes where config.users[home.user] == nil && home.user != "root" {
                config.users[home.user] = .init(uid: home.uid)
            }
            if config.hostname != nil || config.registry != nil || !config.users.isEmpty {
                try spec.configure(config, in: volumes)
            }
            state.spec = spec
        }
    }

    // MARK: Steps

    func expand(_ text: String) -> String {
        guard text.contains("${"), let registry else { return text }
        return text.replacingOccurrences(of: "${registry}", with: registry.guestURL.absoluteString)
    }

    func state(_ step: Step) throws -> MachineState {
        guard let name = step.machine, let state = states[name] else { throw StepFailure(summary: "the step names no machine", kind: .error) }
        return state
    }

    /// The step's machine, which must be running.
    func running(_ step: Step) async throws -> Machine {
        let state = try state(step)
        guard let machine = state.current, !(await machine.isStopped) else {
            throw StepFailure(summary: "machine '\(state.definition.name)' is not running: \(state.current == nil ? "add a 'boot' step before this one" : "it was stopped by an earlier step; 'boot' it again")")
        }
        return machine
    }

    func user(_ name: String?) -> String? { name == "root" ? nil : name }

    func perform(_ step: Step) async throws {
        switch step.action {
        case .boot(let waitForAgent):
            let state = try state(step)
            if let current = state.current, !(await current.isStopped) {
                throw StepFailure(summary: "machine '\(state.definition.name)' is already running", machine: current)
            }
            guard var spec = state.spec else { throw StepFailure(summary: "machine '\(state.definition.name)' was not set up", kind: .error) }
            state.boots += 1
            if state.boots > 1 { spec.name += "-boot\(state.boots)" }
            let machine = try await Machine.start(spec, in: testbed)
            state.current = machine
            booted.append(machine)
            if waitForAgent { try await machine.waitForAgent(timeout: step.timeout) }

        case .expect(let success, let failure):
            // A stopped machine's console can still be searched (e.g. for `nodeos: halted`).
            let state = try state(step)
            guard let machine = state.current else { throw StepFailure(summary: "machine '\(state.definition.name)' has not booted yet: add a 'boot' step first") }
            let expand = { (pattern: ConsolePattern) -> ConsolePattern in
                if case .text(let text) = pattern { return .text(self.expand(text)) }
                return pattern
            }
            try await machine.console.expect(success: success.map(expand), failure: failure.map(expand), timeout: step.timeout)

        case .send(let text):
            let machine = try await running(step)
            try await machine.console.send(expand(text))

        case .exec(let mode, let command, let user, let status, let stdout, let stderr):
            let machine = try await running(step)
            let argv = CommandWords.split(expand(command))
            let result: ExecResult
            do {
                result = try await machine.execute(argv, user: self.user(user), timeout: step.timeout)
            } catch let error as MachineError where error.agentCode == "ENOENT" {
                // The command could not be started (not on PATH): it failed, as in a shell (127).
                result = ExecResult(status: 127, stderr: error.message)
            }
            let output = "\n--- stdout ---\n\(result.stdout)\n--- stderr ---\n\(result.stderr)"
            switch mode {
            case .succeed where !result.succeeded:
                throw StepFailure(summary: "'\(command)' failed: \(result)", details: output, machine: machine)
            case .fail where result.succeeded:
                throw StepFailure(summary: "'\(command)' succeeded but should have failed", details: output, machine: machine)
            default: break
            }
            if let status, result.status != Int32(status) {
                throw StepFailure(summary: "'\(command)' exited with \(result.status.map(String.init) ?? "signal \(result.signal ?? "?")"), expected \(status)",
                                  details: output, machine: machine)
            }
            try check(stdout, result.stdout, "stdout of '\(command)'", machine, output)
            try check(stderr, result.stderr, "stderr of '\(command)'", machine, output)

        case .waitUntilSucceeds(let command, let user, let stdout):
            let machine = try await running(step)
            let timeout = step.timeout ?? machine.deadlines.command
            let argv = CommandWords.split(expand(command))
            let until = clock.now + timeout
            var last = "no answer"
            while clock.now < until {
                do {
                    let result = try await machine.execute(argv, user: self.user(user), timeout: until - clock.now)
                    if result.succeeded, stdout.allSatisfy({ $0.check(result.stdout) }) { return }
                    last = "\(result)\n--- stdout ---\n\(result.stdout)\n--- stderr ---\n\(result.stderr)"
                } catch let error as MachineError where error.kind == .machineStopped {
                    throw error
                } catch {
                    last = "\(error)"
                }
                try await Task.sleep(for: .seconds(1))
            }
            throw StepFailure(summary: "'\(command)' did not succeed\(stdout.isEmpty ? "" : " with the expected output") within \(timeout.scenarioText)",
                              details: "last: \(last)", machine: machine)

        case .reboot:
            let machine = try await running(step)
            try await machine.reboot(timeout: step.timeout)

        case .shutdown:
            let machine = try await running(step)
            try await machine.shutdown(timeout: step.timeout)

        case .crash:
            let machine = try await running(step)
            await machine.crash()

        case .install(let packages, let user):
            let machine = try await running(step)
            let argv = ["npm", "install", "--global"] + packages.map(expand)
            let result = try await machine.execute(argv, user: self.user(user), timeout: step.timeout ?? .seconds(600))
            guard result.succeeded else {
                throw StepFailure(summary: "npm install -g \(packages.joined(separator: " ")) as \(user) failed: \(result)",
                                  details: "--- stdout ---\n\(result.stdout)\n--- stderr ---\n\(result.stderr)", machine: machine)
            }

        case .file(let user, let path, let side, let exists, let matchers):
            try await checkFile(step, user: user, path: path, side: side, exists: exists, matchers: matchers)

        case .bootPhases(let ceilings):
            let state = try state(step)
            guard let machine = state.current else { throw StepFailure(summary: "machine '\(state.definition.name)' has not booted yet") }
            let report = await machine.bootReport()
            var over: [String] = []
            for (phase, ceiling) in ceilings {
                guard let ms = report[phase] else {
                    throw StepFailure(summary: "the boot report has no phase '\(phase)' (it has: \(report.phases.map(\.name).joined(separator: ", ")))", machine: machine)
                }
                if ms > ceiling.milliseconds {
                    over.append(String(format: "%@ at %.2f s, over its ceiling of %@", phase, ms / 1000, ceiling.scenarioText))
                }
            }
            if !over.isEmpty {
                throw StepFailure(summary: "boot phases over their ceilings: " + over.joined(separator: "; "),
                                  details: "phases (ms since host start): " + report.phases.map { "\($0.name) \(Int($0.milliseconds))" }.joined(separator: ", ")
                                      + " (accelerator: \(report.accelerator.rawValue))", machine: machine)
            }

        case .memory(let ceilings):
            let machine = try await running(step)
            let memory = try await machine.memory()
            lastMemory[machine.name] = memory
            var over: [String] = []
            for (metric, ceiling) in ceilings {
                let value: UInt64? = switch metric {
                case .guestUsed: memory.guestUsedKiB
                case .guestTotal: memory.guestTotalKiB
                case .initRSS: memory.initRssKiB
                case .qemuRSS: memory.qemuRssKiB
                }
                guard let value else { throw StepFailure(summary: "no measurement of \(metric.rawValue)", machine: machine) }
                if value > ceiling {
                    over.append("\(metric.rawValue) is \(value / 1024) MiB, over its ceiling of \(ceiling / 1024) MiB")
                }
            }
            if !over.isEmpty { throw StepFailure(summary: over.joined(separator: "; "), machine: machine) }

        case .traffic(let only, let tarballs, let requests):
            try await checkTraffic(step, only: only, tarballs: tarballs, requests: requests)

        case .sleep(let pause):
            try await Task.sleep(for: pause)

        case .fsck(let user, let needsRecovery):
            let state = try state(step)
            if let machine = state.current, !(await machine.isStopped) {
                throw StepFailure(summary: "machine '\(state.definition.name)' is running: shut it down (or crash it) before checking \(user)'s volume", machine: machine)
            }
            guard let volume = state.homes[user] else { throw StepFailure(summary: "no home volume for \(user)", kind: .error) }
            let (recovery, check) = try await Task.detached { (try volume.needsRecovery(), try volume.check()) }.value
            if let needsRecovery, recovery != needsRecovery {
                throw StepFailure(summary: "\(user)'s volume \(recovery ? "still has a journal to replay (it was not unmounted cleanly)" : "has nothing in its journal to replay")",
                                  details: "volume: \(volume.path.path)", machine: state.current)
            }
            guard check.clean else {
                throw StepFailure(summary: "e2fsck found problems on \(user)'s volume", details: check.output, machine: state.current)
            }
        }
    }

    func check(_ matchers: [OutputMatcher], _ text: String, _ what: String, _ machine: Machine, _ output: String) throws {
        for matcher in matchers where !matcher.check(text) {
            throw StepFailure(summary: "\(what) does not hold: expected it to \(matcher.description.replacingOccurrences(of: "does not contain", with: "not contain").replacingOccurrences(of: "equals", with: "equal").replacingOccurrences(of: "contains", with: "contain").replacingOccurrences(of: "matches", with: "match")), got \(OutputMatcher.quote(String(text.prefix(300))))",
                              details: output, machine: machine)
        }
    }

    func checkFile(_ step: Step, user: String, path: String, side: Step.FileSide, exists: Bool, matchers: [OutputMatcher]) async throws {
        let state = try state(step)
        let machine = state.current
        let isRunning: Bool = if let machine { !(await machine.isStopped) } else { false }
        let onGuest = side == .guest || (side == .auto && isRunning)
        let shown = "~\(user)/\(path)"
        var contents: Data?
        if onGuest {
            guard let machine, isRunning else { throw StepFailure(summary: "machine '\(state.definition.name)' is not running: read \(shown) with 'on: host' instead") }
            let full = (user == "root" ? "/root/" : "/home/\(user)/") + path
            do {
                contents = try await machine.readFile(full, timeout: step.timeout)
            } catch let error as MachineError where error.agentCode == "ENOENT" {
                contents = nil
            }
        } else {
            if isRunning {
                throw StepFailure(summary: "machine '\(state.definition.name)' is running: shut it down before reading \(shown) on the host (or use 'on: guest')", machine: machine)
            }
            guard let home = state.homes[user] else { throw StepFailure(summary: "no home volume for \(user)") }
            let volume = home
            contents = try await Task.detached {
                try volume.fileExists(path) ? try volume.readFile(path) : nil
            }.value
        }
        let where_ = onGuest ? "in the guest" : "on the host (\(state.homes[user]?.path.lastPathComponent ?? "volume"))"
        guard exists else {
            if contents != nil { throw StepFailure(summary: "\(shown) exists \(where_) but should not", machine: machine) }
            return
        }
        guard let contents else { throw StepFailure(summary: "\(shown) does not exist \(where_)", machine: machine) }
        let text = String(decoding: contents, as: UTF8.self)
        try check(matchers, text, "\(shown) \(where_)", machine ?? booted.last!, "\n--- \(shown) ---\n\(text.prefix(2000))")
    }

    func checkTraffic(_ step: Step, only: Step.TrafficScope?, tarballs: Step.CountBound?, requests: Step.CountBound?) async throws {
        let state = try state(step)
        let machine = state.current
        if let only {
            guard let machine else { throw StepFailure(summary: "machine '\(state.definition.name)' has not booted yet") }
            let pcap = machine.artifacts.appendingPathComponent("capture.pcap").path
            let capture = try Capture(contentsOf: pcap)
            let guestAddress = "10.0.2.15"
            var destinations: [String: Int] = [:]
            for packet in capture.packets {
                let bytes = packet.bytes
                guard let destination = packet.ipv4Destination, bytes.count >= 30 else { continue }
                let source = bytes[26..<30].map(String.init).joined(separator: ".")
                guard source == guestAddress else { continue }
                let key = packet.tcpDestinationPort.map { "\(destination):\($0)" } ?? "\(destination) (not TCP)"
                destinations[key, default: 0] += 1
            }
            let allowed: Set<String> = switch only {
            case .registry: registry.map { ["\(Registry.guestGatewayHost):\($0.port)"] } ?? []
            case .none: []
            }
            let unexpected = destinations.keys.filter { !allowed.contains($0) }.sorted()
            if !unexpected.isEmpty {
                throw StepFailure(summary: "the machine sent traffic \(only == .none ? "although it should send none" : "to more than the registry (\(allowed.sorted().joined()))"): "
                                      + unexpected.map { "\($0) (\(destinations[$0]!) packets)" }.joined(separator: ", "),
                                  details: "capture: \(pcap)", machine: machine)
            }
        }
        if tarballs != nil || requests != nil {
            guard let registry else { throw StepFailure(summary: "the scenario has no registry", kind: .error) }
            let all = registry.requests
            let recent = Array(all.dropFirst(min(requestMark, all.count)))
            requestMark = all.count
            let tarballCount = recent.filter(\.isTarball).count
            if let tarballs, !tarballs.check(tarballCount) {
                throw StepFailure(summary: "\(tarballCount) tarball\(tarballCount == 1 ? " was" : "s were") fetched from the registry since the last traffic check, expected \(tarballs)",
                                  details: recent.filter(\.isTarball).map(\.description).joined(separator: "\n"), machine: machine)
            }
            if let requests, !requests.check(recent.count) {
                throw StepFailure(summary: "the registry got \(recent.count) request\(recent.count == 1 ? "" : "s") since the last traffic check, expected \(requests)",
                                  details: recent.map(\.description).joined(separator: "\n"), machine: machine)
            }
        }
    }
}

/// Runs `body` in a task of its own and returns its result, or `nil` when
/// `limit` passes first: the task is then cancelled and left behind, so a call
/// that ignores cancellation cannot hold the caller.
func abandoning<T: Sendable>(after limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
    let work = Task { try await body() }
    let once = Once()
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T?, any Error>) in
        let timer = Task {
            try? await Task.sleep(for: limit)
            guard !Task.isCancelled, once.claim() else { return }
            work.cancel()
            continuation.resume(returning: nil)
        }
        Task {
            let result = await work.result
            timer.cancel()
            guard once.claim() else { return }
            continuation.resume(with: result.map { Optional($0) })
        }
    }
}

/// True for the first caller only.
final class Once: Sendable {
    private let done = Mutex(false)
    func claim() -> Bool { done.withLock { done in defer { done = true }; return !done } }
}
