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
    /// Bytes between the cursor the search started from and the oldest byte
    /// still held, which no pattern was matched against: a console that
    /// printed faster than it was read dropped them (the file on disk has them).
    public var skippedBytes: Int = 0

    public var description: String { "\(pattern) at byte \(offset): \(line)" }

    func shifted(by base: Int) -> ConsoleMatch {
        var match = self
        match.offset += base
        match.end += base
        return match
    }
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
        try firstMatch(in: bytes, from: from, success: success.map(CompiledPattern.init), failure: failure.map(CompiledPattern.init))
    }

    /// The same with patterns compiled once by the caller, which may search many times.
    static func firstMatch(
        in bytes: [UInt8], from: Int, success: [CompiledPattern], failure: [CompiledPattern]
    ) throws -> ConsoleMatch? {
        let start = max(0, min(from, bytes.count))
        guard start < bytes.count else { return nil }
        let tail = bytes[start...]
        var best: ConsoleMatch?
        let candidates = failure.map { ($0, true) } + success.map { ($0, false) }
        for (compiled, isFailure) in candidates {
            let pattern = compiled.pattern
            guard let (lower, upper) = try compiled.locate(in: tail) else { continue }
            if let current = best, current.offset <= start + lower { continue }
            best = ConsoleMatch(
                pattern: pattern, isFailure: isFailure, offset: start + lower, end: start + upper,
                text: String(decoding: tail[(start + lower)..<(start + upper)], as: UTF8.self),
                line: line(around: start + lower, in: bytes))
        }
        return best
    }

    /// The console line containing byte `offset`, without its line ending.
    static func line(around offset: Int, in bytes: [UInt8]) -> String {
        var lower = min(offset, bytes.count)
        while lower > 0, bytes[lower - 1] != UInt8(ascii: "\n") { lower -= 1 }
        var upper = min(offset, bytes.count)
        while upper < bytes.count, bytes[upper] != UInt8(ascii: "\n") { upper += 1 }
        return String(decoding: bytes[lower..<upper], as: UTF8.self).trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
    }
}

/// A console pattern ready to search with: a regular expression is compiled
/// once, not on every search. Immutable, so it may be shared between threads.
package final class CompiledPattern: @unchecked Sendable {
    package let pattern: ConsolePattern
    private let needle: [UInt8]
    private let regex: Regex<AnyRegexOutput>?
    /// The compile error of a bad regular expression, thrown when it is used.
    private let compileError: (any Error)?

    package init(_ pattern: ConsolePattern) {
        self.pattern = pattern
        switch pattern {
        case .text(let text):
            needle = Array(text.utf8)
            regex = nil
            compileError = nil
        case .regex(let source):
            needle = []
            do {
                regex = try Regex(source).anchorsMatchLineEndings()
                compileError = nil
            } catch {
                regex = nil
                compileError = error
            }
        }
    }

    /// Byte range of the first occurrence in `bytes`, relative to its start.
    package func locate(in bytes: ArraySlice<UInt8>) throws -> (Int, Int)? {
        if let compileError { throw compileError }
        guard let regex else {
            guard !needle.isEmpty else { return (0, 0) }
            guard needle.count <= bytes.count else { return nil }
            let first = needle[0]
            var index = bytes.startIndex
            let last = bytes.endIndex - needle.count
            while index <= last {
                if bytes[index] == first, bytes[index..<index + needle.count].elementsEqual(needle) {
                    return (index - bytes.startIndex, index - bytes.startIndex + needle.count)
                }
                index += 1
            }
            return nil
        }
        let string = String(decoding: bytes, as: UTF8.self)
        guard let match = try regex.firstMatch(in: string) else { return nil }
        let utf8 = string.utf8
        let lower = utf8.distance(from: utf8.startIndex, to: match.range.lowerBound)
        let upper = utf8.distance(from: utf8.startIndex, to: match.range.upperBound)
        return (lower, upper)
    }

    /// Whether the pattern occurs in `line`. Every console line goes
    /// through each check, so the line is searched as it comes: a regular
    /// expression on the string, a literal on its UTF-8 view, with no copy.
    package func matches(_ line: String) -> Bool {
        guard compileError == nil else { return false }
        if let regex { return (try? regex.firstMatch(in: line)) ?? nil != nil }
        return needle.isEmpty || line.utf8.firstRange(of: needle) != nil
    }
}

/// The serial console of one machine: a byte log with absolute offsets that
/// holds the newest ``retainedBytes`` bytes (the console file on disk keeps
/// them all), with the arrival time of every line.
///
/// Memory stays bounded whatever the guest prints: at most twice the
/// retained bytes, plus one line of at most ``maxLineBytes``. Cursors keep
/// their absolute offsets; a search from a cursor older than the oldest held
/// byte says how much it skipped (``ConsoleMatch/skippedBytes``).
public final class ConsoleLog: Sendable {
    struct State {
        /// Bytes from absolute offset `base` on.
        var bytes: [UInt8] = []
        var base = 0
        var firstByteAt: ContinuousClock.Instant?
        var lastByteAt: ContinuousClock.Instant?
        var pendingLineStart = 0
        var closed: String?
        var end: Int { base + bytes.count }
    }

    /// How many of the newest bytes stay in memory.
    public let retainedBytes: Int
    /// A line longer than this reaches line handlers in pieces of this size.
    public let maxLineBytes: Int
    private let state = Mutex(State())
    package let notifier = ChangeNotifier()
    private let lineHandlers = Mutex<[@Sendable (String, Int, ContinuousClock.Instant) -> Void]>([])

    /// Default: 4 MiB retained, or `$NODEOS_CONSOLE_RETAIN_BYTES`.
    public static let defaultRetainedBytes = ProcessInfo.processInfo.environment["NODEOS_CONSOLE_RETAIN_BYTES"].flatMap(Int.init) ?? 4 << 20

    public init(retainedBytes: Int = ConsoleLog.defaultRetainedBytes, maxLineBytes: Int = 64 << 10) {
        self.maxLineBytes = max(64, maxLineBytes)
        self.retainedBytes = max(self.maxLineBytes * 2, retainedBytes)
    }

    /// Calls `handler` with each complete line (without `\r\n`), its byte
    /// offset and arrival time. Runs on the thread that appends.
    public func onLine(_ handler: @escaping @Sendable (_ line: String, _ offset: Int, _ at: ContinuousClock.Instant) -> Void) {
        lineHandlers.withLock { $0.append(handler) }
    }

    /// Appends received bytes (the console stream's callback calls this).
    public func append(_ chunk: [UInt8], at instant: ContinuousClock.Instant = .now) {
        guard !chunk.isEmpty else { return }
        let maxLine = maxLineBytes
        let retained = retainedBytes
        let lines: [(String, Int)] = state.withLock { state in
            if state.firstByteAt == nil { state.firstByteAt = instant }
            state.lastByteAt = instant
            state.bytes.append(contentsOf: chunk)
            var lines: [(String, Int)] = []
            var index = max(state.pendingLineStart, state.end - chunk.count)
            while index < state.end {
                let isEnd = state.bytes[index - state.base] == UInt8(ascii: "\n")
                if isEnd || index - state.pendingLineStart >= maxLine {
                    let start = state.pendingLineStart
                    var text = String(decoding: state.bytes[(start - state.base)..<(index - state.base)], as: UTF8.self)
                    while text.hasSuffix("\r") { text.removeLast() }
                    lines.append((text, start))
                    state.pendingLineStart = isEnd ? index + 1 : index
                }
                index += 1
            }
            // Dropped in large steps, so each byte is moved a bounded number of times.
            if state.bytes.count > 2 * retained {
                let drop = state.bytes.count - retained
                state.bytes.removeFirst(drop)
                state.base += drop
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
    package func reopen() {
        state.withLock { $0.closed = nil }
    }

    /// Why the log is finished, if it is.
    public var closedReason: String? { state.withLock { $0.closed } }

    /// Number of bytes received so far: the cursor at the end.
    public var count: Int { state.withLock { $0.end } }

    /// The absolute offset of the oldest byte still held.
    public var oldestOffset: Int { state.withLock { $0.base } }

    /// When the first byte arrived.
    public var firstByteAt: ContinuousClock.Instant? { state.withLock { $0.firstByteAt } }

    /// When the latest bytes arrived.
    public var lastByteAt: ContinuousClock.Instant? { state.withLock { $0.lastByteAt } }

    /// A copy of the bytes still held (the newest ``retainedBytes`` at least).
    public var bytes: [UInt8] { state.withLock { $0.bytes } }

    /// The text from `cursor` (or the oldest byte held, if later) to the end.
    public func text(from cursor: ConsoleCursor = .start) -> String {
        state.withLock { state in
            let from = min(max(cursor.offset, state.base), state.end) - state.base
            return String(decoding: state.bytes[from...], as: UTF8.self)
        }
    }

    /// How a failure message shows the last console lines and where the
    /// artifacts are: each block on its own lines, every line after the first
    /// indented by `indent`. Empty blocks are left out.
    public static func failureBlocks(consoleTail: [String], artifacts: String?, indent: String = "") -> String {
        var text = ""
        if !consoleTail.isEmpty {
            text += "\n\(indent)--- last \(consoleTail.count) console lines ---\n\(indent)" + consoleTail.joined(separator: "\n\(indent)")
        }
        if let artifacts { text += "\n\(indent)--- artifacts: \(artifacts)" }
        return text
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
                (offset < state.end ? Array(state.bytes[(max(offset, state.base) - state.base)...]) : [], state.closed)
            }
            if !chunk.isEmpty { return chunk }
            if closed != nil || Task.isCancelled { return nil }
            await notifier.wait(after: seen)
        }
    }

    /// Waits until a pattern matches at or after `cursor`, the log closes, or
    /// the task is cancelled (the caller brings the deadline).
    ///
    /// Each wake-up copies and searches only what arrived since the last one
    /// (from the start of its last incomplete line), so a long console costs
    /// linear time, not quadratic.
    public func firstMatch(from cursor: ConsoleCursor, success: [ConsolePattern], failure: [ConsolePattern]) async throws -> ConsoleMatch? {
        let patterns = success + failure
        let compiledSuccess = success.map(CompiledPattern.init)
        let compiledFailure = failure.map(CompiledPattern.init)
        // The longest literal pattern: how far back a rescan must look for one split across chunks.
        let overlap = patterns.reduce(0) { longest, pattern in
            if case .text(let text) = pattern { return max(longest, text.utf8.count) }
            return longest
        }
        var scanned = cursor.offset
        var skipped = 0
        while true {
            try Task.checkCancellation()
            let seen = notifier.version
            // The window: from the start of the line `scanned` is in (at most a
            // line's length back), or the literal overlap, never before the cursor.
            let (window, windowStart, closed) = state.withLock { state -> ([UInt8], Int, String?) in
                var from = max(cursor.offset, state.base)
                if scanned > from {
                    var lineStart = min(scanned, state.end)
                    let floor = max(from, scanned - maxLineBytes)
                    while lineStart > floor, state.bytes[lineStart - 1 - state.base] != UInt8(ascii: "\n") { lineStart -= 1 }
                    from = max(from, min(lineStart, scanned - overlap))
                }
                if from < state.base { from = state.base }
                return (Array(state.bytes[(from - state.base)...]), from, state.closed)
            }
            skipped += max(0, windowStart - max(cursor.offset, scanned))
            if let match = try ConsoleMatcher.firstMatch(in: window, from: 0, success: compiledSuccess, failure: compiledFailure) {
                var found = match.shifted(by: windowStart)
                found.skippedBytes = skipped
                return found
            }
            scanned = windowStart + window.count
            if closed != nil { return nil }
            await notifier.wait(after: seen)
        }
    }
}
