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
    /// Scenarios at once (bounded by ``Slots/machines``'s machine bound).
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
        let bound = Slots.machines.limit
        // Machines a scenario may hold at once, so parallel scenarios never
        // wait on each other's second machine. At worst the scenarios run one
        // after another, each within its own watchdog.
        let budget = Slots(limit: bound)
        let longestQueue = scenarios.reduce(Duration.zero) { $0 + $1.longestRun }
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
                        let result: ScenarioResult
                        do {
                            result = try await budget.withSlots(need, timeout: longestQueue, what: "waiting for \(need) machine slot(s) for \(scenario.name)") {
                                await run(scenario, on: testbed, options: options)
                            }
                        } catch {
                            result = ScenarioResult.notRun(scenario, on: testbed.uri, because: "\(error)")
                        }
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
    final class MachineRecord {
        let definition: MachineDefinition
        var spec: MachineSpec?
        var homes: [String: HomeVolume] = [:]
        var current: Machine?
        var boots = 0
        /// The current boot's forwarded ports, by guest port.
        var forwards: [Int: PortForward] = [:]
        init(definition: MachineDefinition) { self.definition = definition }
    }

    let scenario: Scenario
    let testbed: Testbed
    let options: RunOptions
    let folder: URL
    var registry: Registry?
    var states: [String: MachineRecord] = [:]
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
        for definition in scenario.machines { states[definition.name] = MachineRecord(definition: definition) }
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
    /// How long the machines' teardown may take at the end of a scenario.
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

    // MARK: Steps

    func expand(_ text: String) -> String {
        guard text.contains("${"), let registry else { return text }
        return text.replacingOccurrences(of: "${registry}", with: Self.registryGuestURL)
            .replacingOccurrences(of: "${registry-host-port}", with: String(registry.port))
    }

    func state(_ step: Step) throws -> MachineRecord {
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

    /// Each step kind runs its own steps (see ``StepRegistry``).
    func perform(_ step: Step) async throws {
        try await step.action.run(step, in: self)
    }

    func check(_ matchers: [OutputMatcher], _ text: String, _ what: String, _ machine: Machine, _ output: String) throws {
        for matcher in matchers where !matcher.check(text) {
            throw StepFailure(summary: "\(what) does not hold: expected it to \(matcher.description.replacingOccurrences(of: "does not contain", with: "not contain").replacingOccurrences(of: "equals", with: "equal").replacingOccurrences(of: "contains", with: "contain").replacingOccurrences(of: "matches", with: "match")), got \(OutputMatcher.quote(String(text.prefix(300))))",
                              details: output, machine: machine)
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

extension Scenario {
    /// The longest a run of it can take: its timeout, else every step's
    /// watchdog; teardown included.
    var longestRun: Duration {
        let steps = self.steps.reduce(Duration.zero) { $0 + ($1.timeout.map { $0 + Execution.watchdogGrace } ?? Execution.watchdogDefault) }
        return (timeout.map { min($0, steps) } ?? steps) + Execution.teardownLimit * max(1, machines.count)
    }
}
