import Foundation
import Testbed

/// `reboot`, `shutdown`, `crash`: stop (and for `reboot`, restart) a running machine.
struct LifecycleStep: StepKind {
    enum Change: String, Sendable { case reboot, shutdown, crash }
    var change: Change
    var keyword: String { change.rawValue }
    var machineEffect: MachineEffect { change == .reboot ? .none : .stops }

    static let keys: [String: Set<String>] = [
        "reboot": lifecycleModifiers,
        "shutdown": lifecycleModifiers,
        // Destroying the machine is immediate: there is nothing to wait for.
        "crash": ["machine", "name"],
    ]
    static let bareKeywords: Set<String> = ["reboot", "shutdown", "crash"]
    static let documentation = [
        StepDocumentation(usage: "`reboot`, `shutdown`, `crash` (or `…: NAME`)",
                          meaning: "reboot cleanly and wait for the new boot's agent; shut down cleanly and wait for power-off; destroy at once"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: LifecycleStep, described: String?) {
        (LifecycleStep(change: Change(rawValue: input.keyword)!), nil)
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let machine = try await execution.running(step)
        switch change {
        case .reboot: try await machine.reboot(timeout: step.timeout)
        case .shutdown: try await machine.shutdown(timeout: step.timeout)
        case .crash: await machine.crash()
        }
    }
}
