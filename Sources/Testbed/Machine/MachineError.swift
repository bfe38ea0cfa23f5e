import Synchronization

/// A failure a test can act on: what happened, then the last console lines
/// and where the artifacts are.
public struct MachineError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure (so callers can tell a failed assertion from a broken machine).
    public enum Kind: String, Sendable {
        /// A command exited non-zero where success was required.
        case commandFailed
        /// A command succeeded where failure was required.
        case commandSucceeded
        /// A failure pattern matched on the console.
        case failurePattern
        /// A deadline passed.
        case timeout
        /// The machine stopped or its console/agent closed.
        case machineStopped
        /// The agent answered with an error.
        case agent
        /// The testbed could not do what was asked (libvirt, files, …).
        case testbed
    }

    public var kind: Kind
    public var machine: String
    public var message: String
    /// The agent's errno name (`ENOENT`, `ELOOP`, …) when the agent answered with an error.
    public var agentCode: String?
    public var consoleTail: [String]
    public var artifacts: String

    public var description: String {
        "machine '\(machine)': \(message)" + ConsoleLog.failureBlocks(consoleTail: consoleTail, artifacts: artifacts)
    }
}

/// What a failure message needs: the machine's name, console and artifacts folder.
final class FailureContext: Sendable {
    let machine: String
    let artifacts: String
    private let consoleLog = Mutex<ConsoleLog?>(nil)

    init(machine: String, artifacts: String) {
        self.machine = machine
        self.artifacts = artifacts
    }

    func bind(_ log: ConsoleLog) { consoleLog.withLock { $0 = log } }

    func failure(_ kind: MachineError.Kind, _ message: String) -> MachineError {
        MachineError(kind: kind, machine: machine, message: message,
                     consoleTail: consoleLog.withLock { $0 }?.lastLines(20) ?? [], artifacts: artifacts)
    }
}
