/// Where a machine is in its life. It only moves forward:
/// `running` → `stopped` (the domain is gone) → `finished` (artifacts saved,
/// slot and name given back); `finish` may also come straight from `running`
/// (then it destroys the domain first). The first reason a machine stopped is
/// the one kept.
public enum MachineState: Sendable, Equatable, CustomStringConvertible {
    case running
    case stopped(reason: String)
    case finished(reason: String)

    /// Whether the domain is gone (stopped or finished).
    public var isStopped: Bool { if case .running = self { false } else { true } }
    public var isFinished: Bool { if case .finished = self { true } else { false } }

    /// Why it stopped, once it has.
    public var reason: String? {
        switch self {
        case .running: nil
        case .stopped(let reason), .finished(let reason): reason
        }
    }

    /// The domain stopped: kept only when it was still running.
    public mutating func stop(_ reason: String) {
        if case .running = self { self = .stopped(reason: reason) }
    }

    /// Claims the machine's finish; false when someone already did. Finishing
    /// a running machine records `destroyedReason`.
    public mutating func beginFinish(destroyedReason: String = "the machine was destroyed") -> Bool {
        switch self {
        case .finished: return false
        case .running: self = .finished(reason: destroyedReason)
        case .stopped(let reason): self = .finished(reason: reason)
        }
        return true
    }

    public var description: String {
        switch self {
        case .running: "running"
        case .stopped(let reason): "stopped: \(reason)"
        case .finished(let reason): "finished: \(reason)"
        }
    }
}
