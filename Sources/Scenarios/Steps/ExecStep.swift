import Foundation
import Testbed

/// `exec`, `succeed`, `fail`: run a command through the agent and check what it did.
struct ExecStep: StepKind {
    var mode: Step.ExecMode
    var command: String
    var user: String?
    var status: Int?
    var stdout: [OutputMatcher]
    var stderr: [OutputMatcher]
    var keyword: String { mode.rawValue }

    static let keys: [String: Set<String>] = [
        "exec": lifecycleModifiers.union(["as", "status", "stdout", "stderr"]),
        "succeed": lifecycleModifiers.union(["as", "stdout", "stderr"]),
        "fail": lifecycleModifiers.union(["as", "status", "stdout", "stderr"]),
    ]
    static let documentation = [
        StepDocumentation(usage: "`exec: COMMAND`", meaning: "run it; check `status: N`, `stdout:`, `stderr:` when given"),
        StepDocumentation(usage: "`succeed: COMMAND`", meaning: "run it; it must exit 0"),
        StepDocumentation(usage: "`fail: COMMAND`", meaning: "run it; it must fail (non-zero, a signal, or not found)"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: ExecStep, described: String?) {
        let keys = input.keys
        let command = try reader.string(input.value)
        guard !command.trimmingCharacters(in: .whitespaces).isEmpty else { throw reader.error(input.value, "the command is empty") }
        let status = try keys["status"].map { try reader.int($0) }
        if input.keyword == "fail", status == 0, let s = keys["status"] { throw reader.error(s, "a 'fail' step expects a non-zero status") }
        let stdout = try keys["stdout"].map { try reader.matchers($0) } ?? []
        let stderr = try keys["stderr"].map { try reader.matchers($0) } ?? []
        return (ExecStep(mode: Step.ExecMode(rawValue: input.keyword)!, command: command, user: input.user, status: status, stdout: stdout, stderr: stderr),
                "\(input.keyword) '\(command)'\(input.user.map { " as \($0)" } ?? "")")
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let machine = try await execution.running(step)
        let argv = CommandWords.split(execution.expand(command))
        let result: ExecResult
        do {
            result = try await machine.execute(argv, user: execution.user(user), timeout: step.timeout)
        } catch let error as MachineError where error.agentCode == "ENOENT" {
            // The command could not be started (not on PATH): it failed, as in a shell (127).
            result = ExecResult(status: 127, stderr: error.message)
        }
        let output = "\n" + result.transcript
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
        try execution.check(stdout, result.stdout, "stdout of '\(command)'", machine, output)
        try execution.check(stderr, result.stderr, "stderr of '\(command)'", machine, output)
    }
}

/// `wait-until-succeeds`: retries a command until it succeeds.
struct WaitUntilSucceedsStep: StepKind {
    var command: String
    var user: String?
    var stdout: [OutputMatcher]
    var keyword: String { "wait-until-succeeds" }

    static let keys: [String: Set<String>] = ["wait-until-succeeds": lifecycleModifiers.union(["as", "stdout"])]
    static let documentation = [
        StepDocumentation(usage: "`wait-until-succeeds: COMMAND`", meaning: "retry about once a second until it succeeds (and `stdout:` holds)"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: WaitUntilSucceedsStep, described: String?) {
        let command = try reader.string(input.value)
        let stdout = try input.keys["stdout"].map { try reader.matchers($0) } ?? []
        return (WaitUntilSucceedsStep(command: command, user: input.user, stdout: stdout),
                "wait until '\(command)' succeeds\(input.user.map { " as \($0)" } ?? "")")
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let machine = try await execution.running(step)
        let timeout = step.timeout ?? machine.deadlines.command
        let argv = CommandWords.split(execution.expand(command))
        let stdout = self.stdout
        do {
            _ = try await machine.waitUntilSucceeds(argv, user: execution.user(user), timeout: timeout) { result in
                stdout.allSatisfy { $0.check(result.stdout) }
            }
        } catch let error as MachineError where error.kind == .timeout {
            throw StepFailure(summary: "'\(command)' did not succeed\(stdout.isEmpty ? "" : " with the expected output") within \(timeout.scenarioText)",
                              details: error.message, machine: machine)
        }
    }
}
