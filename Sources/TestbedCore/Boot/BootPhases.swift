import Foundation

/// One machine-readable line that NodeOS's init prints on the console
/// (see `images/PROTOCOL.md`, "Boot phases on the console").
public enum GuestLine: Sendable, Equatable {
    /// `nodeos: phase NAME 123.456ms` or `nodeos: ready 123.456ms boot=…`.
    case phase(name: String, guestMilliseconds: Double, bootID: String?)
    /// `nodeos: error STEP: MESSAGE`
    case error(step: String, message: String)
    /// `nodeos: warning STEP: MESSAGE`
    case warning(step: String, message: String)
    /// `nodeos: config ok|failed`
    case config(ok: Bool)
    /// `nodeos: shutdown REASON`
    case shutdown(reason: String)
    /// `nodeos: halted`
    case halted

    /// Parses one console line; `nil` when it is not one of init's lines.
    public static func parse(_ line: String) -> GuestLine? {
        guard let start = line.range(of: "nodeos: ") else { return nil }
        // The kernel may prefix its own output; init's lines start at "nodeos: ".
        let rest = line[start.upperBound...]
        if let match = rest.wholeMatch(of: phaseRegex) ?? rest.prefixMatch(of: phaseRegex) {
            let name = match.output.1.map(String.init) ?? "ready"
            guard let ms = Double(match.output.3) else { return nil }
            let boot = match.output.4.map(String.init)
            return .phase(name: name, guestMilliseconds: ms, bootID: boot)
        }
        if rest.hasPrefix("error ") || rest.hasPrefix("warning ") {
            let isError = rest.hasPrefix("error ")
            let body = rest.dropFirst(isError ? 6 : 8)
            let parts = body.split(separator: ":", maxSplits: 1)
            let step = String(parts.first ?? "").trimmingCharacters(in: .whitespaces)
            let message = parts.count > 1 ? String(parts[1]).trimmingCharacters(in: .whitespaces) : ""
            return isError ? .error(step: step, message: message) : .warning(step: step, message: message)
        }
        if rest == "config ok" { return .config(ok: true) }
        if rest == "config failed" { return .config(ok: false) }
        if rest.hasPrefix("shutdown ") { return .shutdown(reason: String(rest.dropFirst(9))) }
        if rest == "halted" { return .halted }
        return nil
    }

    nonisolated(unsafe) private static let phaseRegex = /(?:phase ([a-z-]+)|(ready)) ([0-9]+\.[0-9]{3})ms(?: boot=(\S+))?.*/
}

/// Boot phases as the host saw them: each line's arrival time relative to the
/// moment the host started the machine, plus the guest's own clock.
public struct BootTimeline: Sendable, Equatable, Codable {
    /// One phase: host milliseconds since host start, guest clock milliseconds.
    public struct Phase: Sendable, Equatable, Codable {
        public var name: String
        public var hostMilliseconds: Double
        public var guestMilliseconds: Double?
    }

    /// In arrival order.
    public private(set) var phases: [Phase] = []
    public private(set) var bootID: String?
    public private(set) var errors: [String] = []

    public init() {}

    /// Records a host-side event (`firstConsoleByte`, `agentReady`).
    public mutating func record(_ name: String, hostMilliseconds: Double) {
        guard !phases.contains(where: { $0.name == name }) else { return }
        phases.append(Phase(name: name, hostMilliseconds: hostMilliseconds, guestMilliseconds: nil))
    }

    /// Feeds one console line that arrived `hostMilliseconds` after host start.
    public mutating func consume(line: String, hostMilliseconds: Double) {
        switch GuestLine.parse(line) {
        case .phase(let name, let guest, let boot)?:
            guard !phases.contains(where: { $0.name == name }) else { return }
            phases.append(Phase(name: name, hostMilliseconds: hostMilliseconds, guestMilliseconds: guest))
            if let boot { bootID = boot }
        case .error(let step, let message)?:
            errors.append("\(step): \(message)")
        default:
            break
        }
    }

    /// Host milliseconds at which the guest clock read zero, estimated from
    /// the phase line that arrived with the least delay (`nil` before any).
    ///
    /// init prints some phases after the fact (`kernel` and `node` come out
    /// when init starts), so a line's arrival time is not when its phase
    /// happened; its guest timestamp plus this offset is.
    public var guestClockOffset: Double? {
        phases.compactMap { phase in phase.guestMilliseconds.map { phase.hostMilliseconds - $0 } }.min()
    }

    /// Each phase on the host clock: guest timestamp mapped through
    /// ``guestClockOffset``; host-only events as recorded.
    public var hostPhases: [(name: String, milliseconds: Double)] {
        let offset = guestClockOffset
        return phases.map { phase in
            if let guest = phase.guestMilliseconds, let offset { return (phase.name, guest + offset) }
            return (phase.name, phase.hostMilliseconds)
        }
    }

    /// Whether `ready` was seen.
    public var isReady: Bool { phases.contains { $0.name == "ready" } }

    public subscript(name: String) -> Phase? { phases.first { $0.name == name } }
}
