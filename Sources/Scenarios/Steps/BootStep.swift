import Foundation
import Testbed

/// `boot`: starts the machine and, by default, waits for its agent.
struct BootStep: StepKind {
    var waitForAgent: Bool
    var keyword: String { "boot" }
    var machineEffect: MachineEffect { .starts }

    static let keys: [String: Set<String>] = ["boot": lifecycleModifiers.union(["wait"])]
    static let bareKeywords: Set<String> = ["boot"]
    static let documentation = [
        StepDocumentation(usage: "`boot` / `boot: NAME`",
                          meaning: "start the machine and wait for its agent (`wait: console` waits for nothing); a stopped machine can boot again, with the same volumes"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: BootStep, described: String?) {
        var wait = true
        if let w = input.keys["wait"] {
            switch try reader.string(w) {
            case "agent": wait = true
            case "console": wait = false
            case let other: throw reader.error(w, "'agent' (the default: wait until the agent is ready) or 'console' (start it, wait for nothing), not '\(other)'")
            }
        }
        return (BootStep(waitForAgent: wait), nil)
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let state = try execution.state(step)
        if let current = state.current, !(await current.isStopped) {
            throw StepFailure(summary: "machine '\(state.definition.name)' is already running", machine: current)
        }
        guard var spec = state.spec else { throw StepFailure(summary: "machine '\(state.definition.name)' was not set up", kind: .error) }
        state.boots += 1
        if state.boots > 1 { spec.name += "-boot\(state.boots)" }
        let machine = try await Machine.start(spec, in: execution.testbed)
        state.current = machine
        execution.booted.append(machine)
        state.forwards = [:]
        for forward in state.definition.forwards {
            state.forwards[forward.guestPort] = try machine.forward(guestPort: forward.guestPort, hostPort: forward.hostPort)
        }
        if waitForAgent { try await machine.waitForAgent(timeout: step.timeout) }
    }
}
