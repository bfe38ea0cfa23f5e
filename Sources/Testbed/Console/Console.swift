import Foundation
import Libvirt
import Synchronization

/// A machine's serial console: an append-only log read through cursors,
/// expectations with success and failure patterns, and input.
///
/// ```swift
/// let match = try await machine.console.expect(success: ["login:"], failure: ["Kernel panic"], timeout: .seconds(30))
/// try await machine.console.send("help\n")
/// ```
public final class Console: Sendable {
    /// Everything the machine printed since it was started (across reboots).
    public let log: ConsoleLog
    private let cursorState = Mutex(ConsoleCursor.start)
    private let stream = Mutex<DomainStream?>(nil)
    private let file: AppendFile
    let context: FailureContext
    /// Failure patterns every expectation watches for (the machine's default checks).
    let defaultFailures: [ConsolePattern]
    let defaultTimeout: Duration

    init(logPath: String, context: FailureContext, defaultFailures: [ConsolePattern], defaultTimeout: Duration) {
        log = ConsoleLog()
        file = AppendFile(path: logPath)
        self.context = context
        self.defaultFailures = defaultFailures
        self.defaultTimeout = defaultTimeout
    }

    func attach(_ newStream: DomainStream) throws {
        stream.withLock { $0 = newStream }
        log.reopen()
        try newStream.startReceiving(
            onData: { [log, file] bytes in
                file.write(bytes)
                log.append(bytes)
            },
            onEnd: { [log, weak self] error in
                log.close(reason: "the console closed\(error.map { ": \($0.message)" } ?? "")")
                // QEMU is gone and everything it printed was read: close the
                // stream now, which removes libvirt's /var/lock/LCK.._pts_N, so
                // the next machine on this host that gets the same pty number
                // (in any process) can attach its console.
                let console = self
                DispatchQueue.global().async { console?.closeStream() }
            })
    }

    /// Closes the console stream (idempotent); the log stays readable.
    func closeStream() {
        let closing = stream.withLock { stream in defer { stream = nil }; return stream }
        closing?.close()
    }

    func detach(reason: String) {
        // No lock is held across the libvirt call.
        closeStream()
        log.close(reason: reason)
        file.close()
    }

    /// The console's own cursor: where the next ``expect(success:failure:timeout:)`` starts.
    public var cursor: ConsoleCursor { cursorState.withLock { $0 } }

    /// A cursor at the current end: expectations from it see only what comes next.
    public func mark() -> ConsoleCursor { ConsoleCursor(offset: log.count) }

    /// Moves the console's own cursor.
    public func seek(to cursor: ConsoleCursor) { cursorState.withLock { $0 = cursor } }

    /// Everything printed so far.
    public var text: String { log.text() }

    /// The last `count` lines.
    public func lastLines(_ count: Int = 20) -> [String] { log.lastLines(count) }

    /// Waits for the first of `success` after the console's cursor and moves
    /// the cursor past it. Throws when a failure pattern (given here or a
    /// default check) comes first, the console ends, or `timeout` passes.
    @discardableResult
    public func expect(
        success: [ConsolePattern], failure: [ConsolePattern] = [], timeout: Duration? = nil
    ) async throws -> ConsoleMatch {
        let from = cursor
        let match = try await expect(success: success, failure: failure, from: from, timeout: timeout)
        cursorState.withLock { $0 = max($0, ConsoleCursor(offset: match.end)) }
        return match
    }

    /// Waits for one pattern after the console's cursor.
    @discardableResult
    public func expect(_ pattern: ConsolePattern, timeout: Duration? = nil) async throws -> ConsoleMatch {
        try await expect(success: [pattern], timeout: timeout)
    }

    /// Waits for the first of `success` at or after `from`; moves no cursor.
    public func expect(
        success: [ConsolePattern], failure: [ConsolePattern] = [], from: ConsoleCursor, timeout: Duration? = nil
    ) async throws -> ConsoleMatch {
        let timeout = timeout ?? defaultTimeout
        let failures = failure + defaultFailures.filter { !failure.contains($0) }
        let log = self.log
        let what = "waiting for \(success.map(\.description).joined(separator: " or ")) on the console"
        let match: ConsoleMatch?
        do {
            match = try await withDeadline(timeout, what) {
                try await log.firstMatch(from: from, success: success, failure: failures)
            }
        } catch let error as TimeoutError {
            throw context.failure(.timeout, error.description)
        }
        guard let match else {
            throw context.failure(.machineStopped, "\(what): \(log.closedReason ?? "the console ended")")
        }
        if match.isFailure {
            throw context.failure(.failurePattern, "\(what): failure pattern \(match.pattern) matched at byte \(match.offset): \(match.line)")
        }
        return match
    }

    /// Types `text` on the console (no newline added).
    public func send(_ text: String) async throws {
        try await send(Array(text.utf8))
    }

    /// Writes raw bytes to the console.
    public func send(_ bytes: [UInt8]) async throws {
        guard let stream = stream.withLock({ $0 }) else {
            throw context.failure(.machineStopped, "sending to the console: the console is closed")
        }
        try await Blocking.run { try stream.send(bytes) }
    }
}
