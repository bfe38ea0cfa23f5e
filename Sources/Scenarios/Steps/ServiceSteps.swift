import Foundation
import Testbed

/// `service`: waits until a service runs (and listens), or checks its state and restarts.
struct ServiceStep: StepKind {
    var name: String
    var state: ServiceStatus.State
    var port: Int?
    var restarts: Step.CountBound?
    var keyword: String { "service" }

    static let keys: [String: Set<String>] = ["service": lifecycleModifiers.union(["state", "listening", "restarts"])]
    static let documentation = [
        StepDocumentation(usage: "`service: NAME`",
                          meaning: "wait until the service runs (`listening: PORT`: and something listens there); `state: stopped` / `exited` / `crash-loop` waits for that instead; `restarts: N` (or `{at-least: N}`) checks how often init restarted it"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: ServiceStep, described: String?) {
        let name = try reader.string(input.value)
        try checkService(name, input, reader)
        var state = ServiceStatus.State.running
        if let field = input.keys["state"] {
            let text = try reader.string(field)
            guard let parsed = ServiceStatus.State(rawValue: text), parsed != .starting else {
                throw reader.error(field, "'running', 'stopped', 'exited' or 'crash-loop', not '\(text)'")
            }
            state = parsed
        }
        let port = try input.keys["listening"].map { try reader.port($0, allowZero: false) }
        if port != nil, state != .running, let field = input.keys["listening"] { throw reader.error(field, "only a running service listens") }
        let restarts = try input.keys["restarts"].map { try reader.countBound($0) }
        var text = "service \(name) \(state.rawValue)"
        if let port { text += ", listening on \(port)" }
        if let restarts { text += ", restarts \(restarts)" }
        return (ServiceStep(name: name, state: state, port: port, restarts: restarts), text)
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let machine = try await execution.running(step)
        let timeout = step.timeout ?? machine.deadlines.command
        let status = try await machine.waitForService(name, toBe: state, listeningOn: port, timeout: timeout)
        if let restarts, !restarts.check(status.restarts) {
            throw StepFailure(summary: "service \(status): expected \(restarts) restarts", machine: machine)
        }
    }
}

/// `stop-service`, `start-service`, `restart-service`, `kill-service`.
struct ServiceControlStep: StepKind {
    enum Action: String, Sendable {
        case stop = "stop-service", start = "start-service", restart = "restart-service", kill = "kill-service"
    }

    var action: Action
    var name: String
    var signal: String
    var keyword: String { action.rawValue }

    static let keys: [String: Set<String>] = [
        "stop-service": lifecycleModifiers, "start-service": lifecycleModifiers, "restart-service": lifecycleModifiers,
        "kill-service": lifecycleModifiers.union(["signal"]),
    ]
    static let documentation = [
        StepDocumentation(usage: "`stop-service: NAME`, `start-service: NAME`, `restart-service: NAME`",
                          meaning: "through the agent: stop it (SIGTERM to its process group, SIGKILL after 5 s; not restarted), start it again, or both"),
        StepDocumentation(usage: "`kill-service: NAME`",
                          meaning: "send its process `signal:` (default `SIGKILL`) as a crash would; its restart policy decides what follows"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: ServiceControlStep, described: String?) {
        let name = try reader.string(input.value)
        try checkService(name, input, reader)
        var signal = "SIGKILL"
        if let field = input.keys["signal"] {
            let text = try reader.string(field).uppercased()
            signal = text.hasPrefix("SIG") ? text : "SIG" + text
            guard signal.range(of: #"^SIG[A-Z0-9]+$"#, options: .regularExpression) != nil else { throw reader.error(field, "a signal name such as SIGTERM") }
        }
        let action = Action(rawValue: input.keyword)!
        return (ServiceControlStep(action: action, name: name, signal: signal),
                action == .kill ? "kill service \(name) with \(signal)" : "\(input.keyword.replacingOccurrences(of: "-service", with: "")) service \(name)")
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let machine = try await execution.running(step)
        switch action {
        case .stop: try await machine.stopService(name)
        case .start: try await machine.startService(name)
        case .restart: try await machine.restartService(name)
        case .kill:
            let status = try await machine.service(name)
            guard let pid = status.pid else { throw StepFailure(summary: "service \(status) has no process to kill", machine: machine) }
            let result = try await machine.execute(["node", "-e", "process.kill(\(pid), '\(signal)')"], timeout: step.timeout)
            guard result.succeeded else { throw StepFailure(summary: "could not send \(signal) to \(name) (pid \(pid)): \(result)", details: result.transcript, machine: machine) }
        }
    }
}

/// A step's service must be one its machine runs.
func checkService(_ name: String, _ input: StepInput, _ reader: Reader) throws {
    guard let definition = input.definition else { return }
    guard definition.services.contains(where: { $0.name == name }) else {
        let known = definition.services.map(\.name)
        throw reader.error(input.value, "machine '\(definition.name)' has no service '\(name)'\(Reader.suggestion(name, known))"
            + (known.isEmpty ? " (it has no 'services:')" : " (services: \(known.joined(separator: ", ")))"))
    }
}
