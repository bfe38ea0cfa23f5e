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

/// A process-wide bound on concurrently running machines.
///
/// `Machine.start` takes a slot before starting a domain and gives it back
/// when the domain is gone, so a parallel `swift test` does not overload a
/// small host. Waiting for a slot has a deadline and ends with the waiting
/// task's cancellation: a task nobody waits for any more starts nothing.
public actor MachineLimiter {
    /// The bound shared by every testbed in this process; default: the number of cores.
    public static let shared = MachineLimiter(limit: ProcessInfo.processInfo.environment["NODEOS_MAX_MACHINES"].flatMap(Int.init) ?? ProcessInfo.processInfo.activeProcessorCount)

    /// How long `Machine.start` waits for a slot by default.
    public static let defaultWait: Duration = .seconds(600)

    public private(set) var limit: Int
    public private(set) var running = 0
    private var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
    private var nextWaiter = 0

    public init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Changes the bound (takes effect for the next acquisitions).
    public func setLimit(_ limit: Int) {
        self.limit = max(1, limit)
        wakeUp()
    }

    /// Waits for a free slot and takes it; throws ``TimeoutError`` past
    /// `timeout` and `CancellationError` when the task is cancelled first.
    public func acquire(timeout: Duration = MachineLimiter.defaultWait) async throws {
        let limit = self.limit
        let running = self.running
        try await withDeadline(timeout, "waiting for a machine slot (\(running) of \(limit) in use; NODEOS_MAX_MACHINES sets the bound)") {
            try await self.take()
        }
    }

    private func take() async throws {
        while running >= limit {
            try Task.checkCancellation()
            let id = nextWaiter
            nextWaiter += 1
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    if Task.isCancelled { continuation.resume(throwing: CancellationError()) } else { waiters[id] = continuation }
                }
            } onCancel: {
                Task { await self.cancelWaiter(id) }
            }
        }
        try Task.checkCancellation()
        running += 1
    }

    private func cancelWaiter(_ id: Int) {
        waiters.removeValue(forKey: id)?.resume(throwing: CancellationError())
    }

    /// Gives a slot back.
    public func release() {
        running = max(0, running - 1)
        wakeUp()
    }

    private func wakeUp() {
        let all = waiters.values
        waiters = [:]
        for waiter in all { waiter.resume() }
    }
}
