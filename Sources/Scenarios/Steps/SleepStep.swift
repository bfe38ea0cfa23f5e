import Foundation

/// `sleep`: waits; the one step that acts on no machine.
struct SleepStep: StepKind {
    var pause: Duration
    var keyword: String { "sleep" }

    static let keys: [String: Set<String>] = ["sleep": ["name"]]
    static let needsMachine = false
    static let documentation = [StepDocumentation(usage: "`sleep: DURATION`", meaning: "wait")]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: SleepStep, described: String?) {
        let pause = try reader.duration(input.value)
        return (SleepStep(pause: pause), "sleep \(pause.scenarioText)")
    }

    func run(_ step: Step, in execution: Execution) async throws {
        try await Task.sleep(for: pause)
    }
}
