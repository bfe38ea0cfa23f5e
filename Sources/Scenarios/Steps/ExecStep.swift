import Foundation
import Testbed

/// `exec`, `succeed`, `fail`: run a command through the agent and check what it did.
enum ExecStep: StepKind {
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

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: Step.Action, described: String?) {
        let keys = input.keys
        let command = try reader.string(input.value)
        guard !command.trimmingCharacters(in: .whitespaces).isEmpty else { throw reader.error(input.value, "the command is empty") }
        let status = try keys["status"].map { try reader.int($0) }
        if input.keyword == "fail", status == 0, let s = keys["status"] { throw reader.error(s, "a 'fail' step expects a non-zero status") }
        let stdout = try keys["stdout"].map { try reader.matchers($0) } ?? []
        let stderr = try keys["stderr"].map { try reader.matchers($0) } ?? []
        return (.exec(Step.ExecMode(rawValue: input.keyword)!, command: command, user: input.user, status: status, stdout: stdout, stderr: stderr),
                "\(input.keyword) '\(command)'\(input.user.map { " as \($0)" } ?? "")")
    }

    static func run(_ step: Step, in execution: Execution) async throws {
        guard case .exec(let mode, let command, let user, let status, let stdout, let stderr) = step.action else { Step.Action.mismatch("exec", step.action) }
        let machine = try await execution.running(step)
        let argv = CommandWords.split(execution.expand(command))
        let result: ExecResult
        do {
            result = try await machine.execute(argv, user: execution.user(user), timeout: step.timeout)
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
        try execution.check(stdout, result.stdout, "stdout of '\(command)'", machine, output)
        try execution.check(stderr, result.stderr, "stderr of '\(command)'", machine, output)
    }
}

/// `wait-until-succeeds`: retries a command until it succeeds.
enum WaitUntilSucceedsStep: StepKind {
    static let keys: [String: Set<String>] = ["wait-until-succeeds": lifecycleModifiers.union(["as", "stdout"])]
    static let documentation = [
        StepDocumentation(usage: "`wait-until-succeeds: COMMAND`", meaning: "retry about once a second until it succeeds (and `stdout:` holds)"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: Step.Action, described: String?) {
        let command = try reader.string(input.value)
        let stdout = try input.keys["stdout"].map { try reader.matchers($0) } ?? []
        return (.waitUntilSucceeds(command: command, user: input.user, stdout: stdout),
                "wait until '\(command)' succeeds\(input.user.map { " as \($0)" } ?? "")")
    }

    static func run(_ step: Step, in execution: Execution) async throws {
        guard case .waitUntilSucceeds(let command, let user, let stdout) = step.action else { Step.Action.mismatch("wait-until-succeeds", step.action) }
        let machine = try await execution.running(step)
        let clock = execution.clock
        let timeout = step.timeout ?? machine.deadlines.command
        let argv = CommandWords.split(execution.expand(command))
        let until = clock.now + timeout
        var last = "no answer"
        while clock.now < until {
            do {
                let result = try await machine.execute(argv, user: execution.user(user), timeout: until - clock.now)
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
    }
}
