import Foundation
import Testbed

/// How one step went.
public struct StepResult: Sendable {
    public enum Status: String, Sendable { case passed, failed, skipped }

    public var index: Int
    public var label: String
    public var keyword: String
    public var machine: String?
    public var location: SourceLocation
    public var status: Status
    /// Seconds from the scenario's start to the step's start.
    public var startedAfter: Double
    public var seconds: Double
    public var message: String?
}

/// Why a scenario failed: the step's message, the console's last lines, the artifacts.
public struct ScenarioFailure: Sendable {
    /// `failure`: an assertion or the machine misbehaved; `error`: the testbed itself could not do its job.
    public enum Kind: String, Sendable { case failure, error }

    public var kind: Kind
    /// The failing step (1-based), when a step failed.
    public var step: Int?
    /// One line: what failed.
    public var summary: String
    /// Everything known (command output, …).
    public var message: String
    public var consoleTail: [String]
    public var artifacts: String?
}

/// A machine left running by `--keep-on-failure`.
public struct KeptMachine: Sendable {
    public var machine: Machine
    public var uri: String
    public var domain: String
}

/// How one scenario went.
public struct ScenarioResult: Sendable {
    public enum Status: String, Sendable { case passed, failed }

    public var name: String
    public var file: String
    public var status: Status
    public var seconds: Double
    public var startedAt: Date
    public var steps: [StepResult]
    public var failure: ScenarioFailure?
    /// One per machine boot, in order.
    public var bootReports: [BootReport]
    /// The scenario's artifacts folder.
    public var artifacts: String
    public var libvirtURI: String
    public var kept: [KeptMachine] = []

    public var passed: Bool { status == .passed }

    /// A scenario that could not start (no machine slots in time): failed
    /// as the testbed's error, every step skipped.
    static func notRun(_ scenario: Scenario, on uri: String, because reason: String) -> ScenarioResult {
        let steps = scenario.steps.map {
            StepResult(index: $0.index, label: $0.label, keyword: $0.keyword, machine: $0.machine, location: $0.location,
                       status: .skipped, startedAfter: 0, seconds: 0, message: nil)
        }
        return ScenarioResult(name: scenario.name, file: scenario.file, status: .failed, seconds: 0, startedAt: Date(), steps: steps,
                              failure: ScenarioFailure(kind: .error, step: nil, summary: "not run: \(reason)", message: reason, consoleTail: [], artifacts: nil),
                              bootReports: [], artifacts: "", libvirtURI: uri)
    }
}
