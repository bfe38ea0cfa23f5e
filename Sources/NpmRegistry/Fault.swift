// Failures injected on purpose, switched at runtime, optionally for one package.

/// A way for the registry to misbehave.
public enum Fault: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Stop listening: clients get "connection refused" until the fault is cleared.
    /// Always registry-wide.
    case down
    /// Answer every matching request with this HTTP status and a JSON error.
    case httpError(Int)
    /// Wait this long before answering.
    case slow(Duration)
    /// Announce the whole tarball, send half of it, then close the connection.
    case truncatedTarball
    /// Send the tarball with bytes flipped (same length), so its integrity check fails.
    case corruptTarball
    /// Answer metadata requests (packuments, version documents) with
    /// `200 OK` and a body that is not JSON: a broken proxy or a wrong URL.
    case garbageMetadata

    public var description: String {
        switch self {
        case .down: "down"
        case .httpError(let status): "HTTP \(status)"
        case .slow(let delay): "slow (\(delay))"
        case .truncatedTarball: "truncated tarball"
        case .corruptTarball: "corrupt tarball"
        case .garbageMetadata: "garbage metadata"
        }
    }
}

/// A fault and the package it applies to (nil: every package).
struct FaultRule: Sendable, Equatable {
    var fault: Fault
    var package: String?
}

/// What to do to one request, decided from the active rules: pure, unit-tested.
struct FaultPlan: Equatable, Sendable {
    enum TarballDamage: Equatable, Sendable { case none, truncate, corrupt }

    var delay: Duration = .zero
    var status: Int? = nil
    var damage: TarballDamage = .none
    var garbage = false

    init(delay: Duration = .zero, status: Int? = nil, damage: TarballDamage = .none, garbage: Bool = false) {
        (self.delay, self.status, self.damage, self.garbage) = (delay, status, damage, garbage)
    }

    /// Delays add up; the first HTTP error and the first tarball damage win.
    /// npm's own endpoints (`/-/…`) are only ever slowed or failed by
    /// registry-wide rules.
    init(route: Route, rules: [FaultRule]) {
        for rule in rules {
            if let package = rule.package, package != route.packageName { continue }
            switch rule.fault {
            case .down: break
            case .slow(let delay): self.delay += delay
            case .httpError(let status): if self.status == nil { self.status = status }
            case .truncatedTarball: if route.isTarball && damage == .none { damage = .truncate }
            case .corruptTarball: if route.isTarball && damage == .none { damage = .corrupt }
            case .garbageMetadata: if route.isMetadata { garbage = true }
            }
        }
    }

    /// Flips every byte of the middle half of the gzip stream: same length,
    /// different digest, and gunzip fails too.
    /// What a garbage answer carries: an HTML error page, as proxies send.
    static let garbageBody = "<html><body>502 Bad Gateway \u{1}\u{2}\u{3}</body></html>\n"

    static func corrupt(_ tarball: [UInt8]) -> [UInt8] {
        var bytes = tarball
        let start = bytes.count / 4
        let end = max(start + 1, bytes.count * 3 / 4)
        for i in start..<min(end, bytes.count) { bytes[i] ^= 0xFF }
        return bytes
    }
}
