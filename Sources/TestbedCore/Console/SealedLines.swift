/// Tells init's own console lines from anything else printed on the console.
///
/// The host gives init a key on the kernel command line (`nodeos.seal=HEX`),
/// which init hides before any other process runs; init ends each of its
/// `nodeos: ` lines with ` ~SEQ.MAC`, MAC being the first 16 hex digits of
/// HMAC-SHA256(key, "BOOTID SEQ LINE"). Each boot opens with
/// `nodeos: boot BOOTID ~1.MAC`. A line is trusted when its MAC is right, its
/// sequence number is past the last one trusted in that boot, and its boot is
/// the current one or a new one (never one already left): so a console user
/// can neither forge a line nor replay one seen earlier.
///
/// ```swift
/// var reader = SealedLineReader(key: key)
/// if case .trusted(let line) = reader.read(consoleLine) { timeline.consume(line: line, …) }
/// ```
public struct SealedLineReader: Sendable {
    public enum Verdict: Sendable, Equatable {
        /// init's line, without its seal.
        case trusted(String)
        /// It looks like init's but is not: ignored (why, for the log).
        case forged(String)
        /// Not a `nodeos: ` line at all.
        case other
    }

    public let key: [UInt8]
    /// The boot whose lines are trusted now.
    public private(set) var bootID: String?
    private var lastSequence = 0
    private var leftBoots: Set<String> = []

    public static let marker = "nodeos: "

    public init(key: [UInt8]) {
        self.key = key
    }

    /// A fresh random key in the form the kernel command line takes.
    public static func newKeyHex() -> String {
        var generator = SystemRandomNumberGenerator()
        return Digest.hex((0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    /// The seal init appends to `line` (`" ~SEQ.MAC"`).
    public static func seal(_ line: String, key: [UInt8], bootID: String, sequence: Int) -> String {
        " ~\(sequence).\(mac(line, key: key, bootID: bootID, sequence: sequence))"
    }

    static func mac(_ line: String, key: [UInt8], bootID: String, sequence: Int) -> String {
        String(Digest.hex(Digest.hmacSHA256(key: key, message: Array("\(bootID) \(sequence) \(line)".utf8))).prefix(16))
    }

    /// Judges one console line (without its line ending).
    public mutating func read(_ line: String) -> Verdict {
        var candidates: [Substring] = []
        var searchFrom = line.startIndex
        while let found = line.range(of: Self.marker, range: searchFrom..<line.endIndex) {
            candidates.append(line[found.lowerBound...])
            searchFrom = found.upperBound
        }
        guard !candidates.isEmpty else { return .other }
        // Someone may print in front of init's line on the same console line:
        // init's own text is the last `nodeos: ` whose seal holds.
        var why = "no seal"
        for candidate in candidates.reversed() {
            switch verify(String(candidate)) {
            case .success(let body): return .trusted(body)
            case .failure(let reason): why = reason.text
            }
        }
        return .forged(why)
    }

    private struct Rejection: Error { var text: String }

    private mutating func verify(_ text: String) -> Result<String, Rejection> {
        guard let tilde = text.range(of: " ~", options: .backwards) else { return .failure(Rejection(text: "no seal")) }
        let body = String(text[..<tilde.lowerBound])
        let seal = text[tilde.upperBound...].split(separator: ".", maxSplits: 1)
        guard seal.count == 2, let sequence = Int(seal[0]), sequence > 0, seal[1].count == 16 else {
            return .failure(Rejection(text: "a malformed seal"))
        }
        let given = String(seal[1])
        let bootPrefix = Self.marker + "boot "
        if sequence == 1, body.hasPrefix(bootPrefix) {
            let newBoot = String(body.dropFirst(bootPrefix.count))
            guard Self.mac(body, key: key, bootID: newBoot, sequence: 1) == given else { return .failure(Rejection(text: "a wrong seal")) }
            guard newBoot != bootID, !leftBoots.contains(newBoot) else { return .failure(Rejection(text: "a replayed boot line")) }
            if let bootID { leftBoots.insert(bootID) }
            bootID = newBoot
            lastSequence = 1
            return .success(body)
        }
        guard let bootID else { return .failure(Rejection(text: "a sealed line before the boot line")) }
        guard Self.mac(body, key: key, bootID: bootID, sequence: sequence) == given else { return .failure(Rejection(text: "a wrong seal")) }
        guard sequence > lastSequence else { return .failure(Rejection(text: "a replayed line (sequence \(sequence) after \(lastSequence))")) }
        lastSequence = sequence
        return .success(body)
    }
}
