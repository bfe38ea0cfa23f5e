import Foundation
import Testbed

/// `expect`: waits on the console for a pattern.
struct ExpectStep: StepKind {
    var success: [ConsolePattern]
    var failure: [ConsolePattern]
    var keyword: String { "expect" }

    static let keys: [String: Set<String>] = ["expect": lifecycleModifiers.union(["failure"])]
    static let documentation = [
        StepDocumentation(usage: "`expect: TEXT`",
                          meaning: "wait on the console for TEXT (after the previous match); `{regex: …}` for a regular expression, a list for any of several; `failure: [TEXT, …]` fails at once when one of those comes first"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: ExpectStep, described: String?) {
        let success = try reader.patterns(input.value)
        let failure = try input.keys["failure"].map { try reader.patterns($0) } ?? []
        return (ExpectStep(success: success, failure: failure), "expect " + success.map(\.description).joined(separator: " or "))
    }

    func run(_ step: Step, in execution: Execution) async throws {
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
struct SendStep: StepKind {
    /// What is typed, newline included for `type`.
    var text: String
    // `type` is `send` with a newline: reports call both `send`.
    var keyword: String { "send" }

    static let keys: [String: Set<String>] = ["send": ["machine", "name"], "type": ["machine", "name"]]
    static let documentation = [
        StepDocumentation(usage: "`send: TEXT` / `type: TEXT`", meaning: "type on the console; `type` adds a newline"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: SendStep, described: String?) {
        var text = try reader.string(input.value)
        if input.keyword == "type" { text += "\n" }
        return (SendStep(text: text), "\(input.keyword) \(OutputMatcher.quote(input.keyword == "type" ? String(text.dropLast()) : text))")
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let machine = try await execution.running(step)
        try await machine.console.send(execution.expand(text))
    }
}
