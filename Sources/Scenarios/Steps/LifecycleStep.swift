import Foundation
import Testbed

/// `reboot`, `shutdown`, `crash`: stop (and for `reboot`, restart) a running machine.
enum LifecycleStep: StepKind {
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

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: Step.Action, described: String?) {
        switch input.keyword {
        case "reboot": (.reboot, nil)
        case "shutdown": (.shutdown, nil)
        default: (.crash, nil)
        }
    }

    static func run(_ step: Step, in execution: Execution) async throws {
        let machine = try await execution.running(step)
        switch step.action {
        case .reboot: try await machine.reboot(timeout: step.timeout)
        case .shutdown: try await machine.shutdown(timeout: step.timeout)
        case .crash: await machine.crash()
        default: Step.Action.mismatch("reboot/shutdown/crash", step.action)
        }
    }
}
