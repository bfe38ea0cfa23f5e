import Foundation
import Synchronization

/// A pattern to look for on the console: literal text or a regular expression.
///
/// A string literal is literal text: `"Kernel panic"`. Regular expressions use
/// Swift `Regex` syntax; `^` and `$` match at line boundaries.
public enum ConsolePattern: Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
    case text(String)
    case regex(String)

    public init(stringLiteral value: String) { self = .text(value) }

    public var description: String {
        switch self {
        case .text(let text): "\"\(text)\""
        case .regex(let regex): "/\(regex)/"
        }
    }
}

/// Where in the console a pattern matched.
public struct ConsoleMatch: Sendable, Equatable, CustomStringConvertible {
    /// The pattern that matched.
    public var pattern: ConsolePattern
    /// Whether it was one of the failure patterns.
    public var isFailure: Bool
    /// Byte offset of the match in the console log.
    public var offset: Int
    /// Byte offset just past the match: where a cursor continues from.
    public var end: Int
    /// The matched text.
    public var text: String
    /// The whole console line holding the match.
    public var line: String

    public var description: String { "\(pattern) at byte \(offset): \(line)" }
}

/// A position in the append-only console log. Reading through a cursor never
/// consumes anything: another cursor still sees every byte.
public struct ConsoleCursor: Sendable, Hashable, Comparable {
    public var offset: Int
    public init(offset: Int) { self.offset = offset }
    public static let start = ConsoleCursor(offset: 0)
    public static func < (a: ConsoleCursor, b: ConsoleCursor) -> Bool { a.offset < b.offset }
}

/// Pure matching logic over console bytes: unit-tested without a machine.
public enum ConsoleMatcher {
    /// The earliest match of any pattern in `bytes[from...]`; on a tie a
    /// failure pattern wins. Regular expressions that fail to compile throw.
    public static func firstMatch(
        in bytes: [UInt8], from: Int, success: [ConsolePattern], failure: [ConsolePattern]
    ) throws -> ConsoleMatch? {
        let start = max(0, min(from, bytes.count))
        guard start < bytes.count else { return nil }
        let tail = Array(bytes[start...])
        var best: ConsoleMatch?
        let candidates = failure.map { ($0, true) } + success.map { ($0, false) }
        for (pattern, isFailure) in candidates {
            guard let (lower, upper) = try locate(pattern, in: tail) else { continue }
            if let current = best, current.offset <= start + lower { continue }
            best = ConsoleMatch(
                pattern: pattern, isFailure: isFailure, offset: start + lower, end: start + upper,
                text: String(decoding: tail[lower..<upper], as: UTF8.self),
                line: line(around: start + lower, in: bytes))
        }
        return best
    }

    /// Byte range of the first occurrence of `pattern` in `bytes`.
    static func locate(_ pattern: ConsolePattern, in bytes: [UInt8]) throws -> (Int, Int)? {
        switch pattern {
        case .text(let text):
            let needle = Array(text.utf8)
            guard !needle.isEmpty, needle.count <= bytes.count else { return needle.isEmpty ? (0, 0) : nil }
            let first = needle[0]
            var index = 0
            let last = bytes.count - needle.count
            while index <= last {
                if bytes[index] == first, bytes[index..<index + needle.count].elementsEqual(needle) {
                    return (index, index + needle.count)
                }
                index += 1
            }
            return nil
        case .regex(let source):
            let regex = try Regex(source).anchorsMatchLineEndings()
            let string = String(decoding: bytes, as: UTF8.self)
            guard let match = try regex.firstMatch(in: string) else { return nil }
            let utf8 = string.utf8
            let lower = utf8.distance(from: utf8.startIndex, to: match.range.lowerBound)
            let upper = utf8.distance(from: utf8.startIndex, to: match.range.upperBound)
            return (lower, upper)
        }
    }

    /// The console line containing byte `offset`, without its line ending.
    static func line(around offset: Int, in bytes: [UInt8]) -> String {
        var lower = min(offset, bytes.count)
        while lower > 0, bytes[lower - 1] != UInt8(ascii: "\n") { lower -= 1 }
        var upper = min(offset, bytes.count)
        while upper < bytes.count, bytes[upper] != UInt8(ascii: "\n") { upper += 1 }
        return String(decoding: bytes[lower..<upper], as: UTF8.self).trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
    }

    /// Where a rescan must restart after `scanned` bytes were already searched
    /// without a match: the start of the last incomplete line, and far enough
    /// back to catch a literal pattern that straddles the boundary.
    static func rescanStart(bytes: [UInt8], cursor: Int, scanned: Int, patterns: [ConsolePattern]) -> Int {
        guard scanned > cursor else { return cursor }
        var lineStart = min(scanned, bytes.count)
        while lineStart > cursor, bytes[lineStart - 1] != UInt8(ascii: "\n") { lineStart -= 1 }
        let longest = patterns.reduce(0) { longest, pattern in
            if case .text(let text) = pattern { return max(longest, text.utf8.count) }
            return longest
        }
        return max(cursor, min(lineStart, scanned - longest))
    }
}

/// The whole serial console of one machine: an append-only byte log that
/// never drops anything, with the arrival time of every line.
public final class ConsoleLog: Sendable {
    struct State {
        var bytes: [UInt8] = []
        var firstByteAt: ContinuousClock.Instant?
        var lastByteAt: ContinuousClock.Instant?
        var pendingLineStart = 0
        var closed: String?
    }

    private let state = Mutex(State())
    let notifier = ChangeNotifier()
    private let lineHandlers = Mutex<[@Sendable (String, Int, ContinuousClock.Instant) -> Void]>([])

    public init() {}

    /// Calls `handler` with each complete line (without `\r\n`), its byte
    /// offset and arrival time. Runs on the thread that appends.
    public func onLine(_ handler: @escaping @Sendable (_ line: String, _ offset: Int, _ at: ContinuousClock.Instant) -> Void) {
        lineHandlers.withLock { $0.append(handler) }
    }

    /// Appends received bytes (the console stream's callback calls this).
    public func append(_ chunk: [UInt8], at instant: ContinuousClock.Instant = .now) {
        guard !chunk.isEmpty else { return }
        let lines: [(String, Int)] = state.withLock { state in
            if state.firstByteAt == nil { state.firstByteAt = instant }
            state.lastByteAt = instant
            state.bytes.append(contentsOf: chunk)
            var lines: [(String, Int)] = []
            var index = max(state.pendingLineStart, state.bytes.count - chunk.count)
            while index < state.bytes.count {
                if state.bytes[index] == UInt8(ascii: "\n") {
                    let start = state.pendingLineStart
                    var text = String(decoding: state.bytes[start..<index], as: UTF8.self)
                    while text.hasSuffix("\r") { text.removeLast() }
                    lines.append((text, start))
                    state.pendingLineStart = index + 1
                }
                index += 1
            }
            return lines
        }
        if !lines.isEmpty {
            let handlers = lineHandlers.withLock { $0 }
            for (line, offset) in lines { for handler in handlers { handler(line, offset, instant) } }
        }
        notifier.notify()
    }

    /// Marks the log as finished (the machine stopped); waits then fail.
    public func close(reason: String) {
        state.withLock { if $0.closed == nil { $0.closed = reason } }
        notifier.notify()
    }

    /// Re-opens the log after a restart.
    func reopen() {
        state.withLock { $0.closed = nil }
    }

    /// Why the log is finished, if it is.
    public var closedReason: String? { state.withLock { $0.closed } }

    /// Number of bytes received so far: the cursor at the end.
    public var count: Int { state.withLock { $0.bytes.count } }

    /// When the first byte arrived.
    public var firstByteAt: ContinuousClock.Instant? { state.withLock { $0.firstByteAt } }

    /// When the latest bytes arrived.
    public var lastByteAt: ContinuousClock.Instant? { state.withLock { $0.lastByteAt } }

    /// A copy of every byte so far.
    public var bytes: [UInt8] { state.withLock { $0.bytes } }

    /// The text from `cursor` to the end.
    public func text(from cursor: ConsoleCursor = .start) -> String {
        state.withLock { String(decoding: $0.bytes[min(cursor.offset, $0.bytes.count)...], as: UTF8.self) }
    }

    /// The last `count` lines (a trailing partial line counts).
    public func lastLines(_ count: Int = 20) -> [String] {
        let tail = state.withLock { Array($0.bytes.suffix(64 * 1024)) }
        // Split on bytes: in a Swift String "\r\n" is one Character.
        var lines = tail.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line in
            var text = String(decoding: line, as: UTF8.self)
            while text.hasSuffix("\r") { text.removeLast() }
            return text
        }
        if lines.last == "" { lines.removeLast() }
        return Array(lines.suffix(count))
    }

    /// The bytes from `offset` on, waiting until there is at least one;
    /// `nil` once the log is closed and everything was read.
    public func read(from offset: Int) async -> [UInt8]? {
        while true {
            let seen = notifier.version
            let (chunk, closed) = state.withLock { state in
                (offset < state.bytes.count ? Array(state.bytes[offset...]) : [], state.closed)
            }
            if !chunk.isEmpty { return chunk }
            if closed != nil || Task.isCancelled { return nil }
            await notifier.wait(after: seen)
        }
    }

    /// Waits until a pattern matches at or after `cursor`, the log closes, or
    /// the task is cancelled (the caller brings the deadline).
    public func firstMatch(from cursor: ConsoleCursor, success: [ConsolePattern], failure: [ConsolePattern]) async throws -> ConsoleMatch? {
        let patterns = success + failure
        var scanned = cursor.offset
        while true {
            try Task.checkCancellation()
            let seen = notifier.version
            let (bytes, closed) = state.withLock { ($0.bytes, $0.closed) }
            let from = ConsoleMatcher.rescanStart(bytes: bytes, cursor: cursor.offset, scanned: scanned, patterns: patterns)
            if let match = try ConsoleMatcher.firstMatch(in: bytes, from: from, success: success, failure: failure) {
                return match
            }
            scanned = bytes.count
            if closed != nil { return nil }
            await notifier.wait(after: seen)
        }
    }
}
