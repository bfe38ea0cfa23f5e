import Foundation
import Synchronization

/// A counting semaphore for async code, the one bound the testbed uses:
/// machines running at once (``machines``), a scenario's share of them, and,
/// with a limit of one, a lock held across `await`s.
///
/// Waiters are served in order, so a request for several slots is not
/// starved by single ones; a request for more than the limit is granted alone
/// once nothing is held. Every wait has a deadline and ends with its task's
/// cancellation: a task nobody waits for any more takes nothing.
public final class Slots: Sendable {
    /// The bound on machines running at once in this process; default: the number of cores.
    public static let machines = Slots(limit: ProcessInfo.processInfo.environment["NODEOS_MAX_MACHINES"].flatMap(Int.init)
                                        ?? ProcessInfo.processInfo.activeProcessorCount)

    /// How long a wait lasts by default.
    public static let defaultWait: Duration = .seconds(600)

    private struct Waiter {
        var id: Int
        var count: Int
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var limit: Int
        var used = 0
        var waiters: [Waiter] = []
        var nextID = 0
        /// Requests not yet granted: only these may be abandoned.
        var live: Set<Int> = []
        /// Abandoned (timed out, cancelled) before they were queued.
        var abandoned: [Int: any Error] = [:]

        func fits(_ count: Int) -> Bool { used + count <= limit || used == 0 }

        /// Takes the waiters at the head of the queue that fit now.
        mutating func grant() -> [CheckedContinuation<Void, any Error>] {
            var granted: [CheckedContinuation<Void, any Error>] = []
            while let first = waiters.first, fits(first.count) {
                waiters.removeFirst()
                used += first.count
                live.remove(first.id)
                granted.append(first.continuation)
            }
            return granted
        }
    }

    private let state: Mutex<State>

    public init(limit: Int) {
        state = Mutex(State(limit: max(1, limit)))
    }

    public var limit: Int { state.withLock { $0.limit } }
    /// Slots held now.
    public var inUse: Int { state.withLock { $0.used } }

    /// Changes the bound; waiters that fit under a raised one go on.
    public func setLimit(_ limit: Int) {
        let granted = state.withLock { state in
            state.limit = max(1, limit)
            return state.grant()
        }
        for continuation in granted { continuation.resume() }
    }

    /// Waits for `count` slots and takes them; throws ``TimeoutError`` past
    /// `timeout` (naming `what`) and `CancellationError` when the task is
    /// cancelled first. Either way it holds nothing then.
    public func acquire(_ count: Int = 1, timeout: Duration = Slots.defaultWait, what: @autoclosure () -> String = "waiting for a slot") async throws {
        try Task.checkCancellation()
        let (id, held, limit) = state.withLock { state in
            defer { state.nextID += 1 }
            state.live.insert(state.nextID)
            return (state.nextID, state.used, state.limit)
        }
        let what = what()
        let timer = Task { [weak self] in
            do { try await Task.sleep(for: timeout, clock: .continuous) } catch { return }
            self?.abandon(id, TimeoutError(what: "\(what) (\(held) of \(limit) in use)", timeout: timeout))
        }
        defer { timer.cancel() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Bool, any Error> = state.withLock { state in
                    if let error = state.abandoned.removeValue(forKey: id) {
                        state.live.remove(id)
                        return .failure(error)
                    }
                    if state.waiters.isEmpty, state.fits(count) {
                        state.used += count
                        state.live.remove(id)
                        return .success(true)
                    }
                    state.waiters.append(Waiter(id: id, count: count, continuation: continuation))
                    return .success(false)
                }
                switch outcome {
                case .success(true): continuation.resume()
                case .success(false): break
                case .failure(let error): continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            self.abandon(id, CancellationError())
        }
    }

    /// Gives `count` slots back.
    public func release(_ count: Int = 1) {
        let granted = state.withLock { state in
            state.used = max(0, state.used - count)
            return state.grant()
        }
        for continuation in granted { continuation.resume() }
    }

    /// Runs `body` holding `count` slots, and gives them back however it ends.
    public func withSlots<T: Sendable>(
        _ count: Int = 1, timeout: Duration = Slots.defaultWait, what: @autoclosure () -> String = "waiting for a slot",
        _ body: () async throws -> T
    ) async throws -> T {
        try await acquire(count, timeout: timeout, what: what())
        defer { release(count) }
        return try await body()
    }

    /// Ends a request that was not granted yet with `error`.
    private func abandon(_ id: Int, _ error: any Error) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard state.live.contains(id) else { return nil }
            if let index = state.waiters.firstIndex(where: { $0.id == id }) {
                state.live.remove(id)
                let waiter = state.waiters.remove(at: index)
                return waiter.continuation
            }
            // Not queued yet: the request sees this when it gets there.
            state.abandoned[id] = error
            return nil
        }
        waiter?.resume(throwing: error)
        // The queue's head may have been the one holding the others back.
        let granted = state.withLock { $0.grant() }
        for continuation in granted { continuation.resume() }
    }
}
