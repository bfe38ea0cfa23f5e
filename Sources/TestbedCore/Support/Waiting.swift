import Foundation
import Synchronization

/// A wait that ran past its host-side deadline.
public struct TimeoutError: Error, CustomStringConvertible, Sendable {
    public var what: String
    public var timeout: Duration
    public var description: String { "timed out after \(timeout.formattedSeconds) \(what)" }
}

extension Duration {
    /// "12.3 s"
    public var formattedSeconds: String {
        let seconds = Double(components.seconds) + Double(components.attoseconds) / 1e18
        return String(format: "%.1f s", seconds)
    }

    /// Milliseconds as a `Double`.
    public var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}

/// Runs `body` with a host-side deadline on `ContinuousClock`; throws
/// ``TimeoutError`` and cancels `body` when the deadline passes first.
public func withDeadline<T: Sendable>(
    _ timeout: Duration,
    _ what: @autoclosure () -> String,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let what = what()
    return try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout, clock: .continuous)
            throw TimeoutError(what: what, timeout: timeout)
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw CancellationError() }
        return first
    }
}

/// Wakes every waiter when something changes; waiters name the version they saw.
///
/// Cancellation-aware: a cancelled waiter returns at once.
package final class ChangeNotifier: Sendable {
    private struct State {
        var version = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    package init() {}

    package var version: Int { state.withLock { $0.version } }

    /// Bumps the version and wakes all waiters.
    package func notify() {
        let waiters = state.withLock { state in
            state.version += 1
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the version is above `seen` (or the task is cancelled).
    package func wait(after seen: Int) async {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.version > seen || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}
