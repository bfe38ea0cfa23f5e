import Foundation
import Testbed

/// `expect`: waits on the console for a pattern.
enum ExpectStep: StepKind {
    static let keys: [String: Set<String>] = ["expect": lifecycleModifiers.union(["failure"])]
    static let documentation = [
        StepDocumentation(usage: "`expect: TEXT`",
                          meaning: "wait on the console for TEXT (after the previous match); `{regex: …}` for a regular expression, a list for any of several; `failure: [TEXT, …]` fails at once when one of those comes first"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: Step.Action, described: String?) {
        let success = try reader.patterns(input.value)
        let failure = try input.keys["failure"].map { try reader.patterns($0) } ?? []
        return (.expect(success: success, failure: failure), "expect " + success.map(\.description).joined(separator: " or "))
    }

    static func run(_ step: Step, in execution: Execution) async throws {
        guard case .expect(let success, let failure) = step.action else { Step.Action.mismatch("expect", step.action) }
        // A stopped machine's console can still be searched (e.g. for `nodeos: halted`).
        let state = try execution.state(step)
        guard let machine = state.current else { throw StepFailure(summary: "machine '\(state.definition.name)' has not booted yet: add a 'boot' step first") }
        let expand = { (pattern: ConsolePattern) -> ConsolePattern in
            if case .text(let text) = pattern { return .text(execution.expand(text)) }
            return pattern
        }
        try await machine.console.expect(success: success.map(expand), failure: failure.map(expand), timeout: step.timeout)
    }
}

/// `send` and `type`: type on the console.
enum SendStep: StepKind {
    static let keys: [String: Set<String>] = ["send": ["machine", "name"], "type": ["machine", "name"]]
    static let documentation = [
        StepDocumentation(usage: "`send: TEXT` / `type: TEXT`", meaning: "type on the console; `type` adds a newline"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: Step.Action, described: String?) {
        var text = try reader.string(input.value)
        if input.keyword == "type" { text += "\n" }
        return (.send(text), "\(input.keyword) \(OutputMatcher.quote(input.keyword == "type" ? String(text.dropLast()) : text))")
    }

    static func run(_ step: Step, in execution: Execution) async throws {
        guard case .send(let text) = step.action else { Step.Action.mismatch("send", step.action) }
        let machine = try await execution.running(step)
        try await machine.console.send(execution.expand(text))
    }
}
