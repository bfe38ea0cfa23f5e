import Foundation

/// `sleep`: waits; the one step that acts on no machine.
enum SleepStep: StepKind {
    static let keys: [String: Set<String>] = ["sleep": ["name"]]
    static let needsMachine = false
    static let documentation = [StepDocumentation(usage: "`sleep: DURATION`", meaning: "wait")]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: Step.Action, described: String?) {
        let pause = try reader.duration(input.value)
        return (.sleep(pause), "sleep \(pause.scenarioText)")
    }

    static func run(_ step: Step, in execution: Execution) async throws {
        guard case .sleep(let pause) = step.action else { Step.Action.mismatch("sleep", step.action) }
        try await Task.sleep(for: pause)
    }
}
