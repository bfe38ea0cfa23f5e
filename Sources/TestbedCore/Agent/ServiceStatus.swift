/// One service as the agent's `services` op reports it (images/PROTOCOL.md).
public struct ServiceStatus: Sendable, Equatable, CustomStringConvertible {
    public enum State: String, Sendable, CaseIterable {
        case running, starting, stopped, exited
        case crashLoop = "crash-loop"
    }

    public struct Exit: Sendable, Equatable {
        public var status: Int?
        public var signal: String?
    }

    public var name: String
    public var user: String?
    public var state: State
    public var pid: Int?
    /// Restarts init made by the service's policy.
    public var restarts: Int
    public var lastExit: Exit?

    public init(name: String, user: String? = nil, state: State, pid: Int? = nil, restarts: Int = 0, lastExit: Exit? = nil) {
        self.name = name
        self.user = user
        self.state = state
        self.pid = pid
        self.restarts = restarts
        self.lastExit = lastExit
    }

    /// Reads one entry of the agent's answer; nil when it is not one.
    public init?(agent value: JSONValue) {
        guard let name = value["name"]?.stringValue, let state = value["state"]?.stringValue.flatMap(State.init(rawValue:)) else { return nil }
        self.name = name
        self.user = value["user"]?.stringValue
        self.state = state
        self.pid = value["pid"]?.intValue
        self.restarts = value["restarts"]?.intValue ?? 0
        if let exit = value["lastExit"], case .object = exit {
            lastExit = Exit(status: exit["status"]?.intValue, signal: exit["signal"]?.stringValue)
        } else {
            lastExit = nil
        }
    }

    public var description: String {
        var text = "\(name): \(state.rawValue)"
        if let pid { text += ", pid \(pid)" }
        text += ", \(restarts) restart\(restarts == 1 ? "" : "s")"
        if let lastExit { text += ", last exit " + (lastExit.status.map { "status \($0)" } ?? "signal \(lastExit.signal ?? "?")") }
        return text
    }
}
