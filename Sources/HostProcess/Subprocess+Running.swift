import Foundation
import Synchronization
import Glibc

extension Subprocess {
    /// A started program. It is reaped on a thread of its own, and its output
    /// read on another, so neither waiting nor reading holds a thread of
    /// Swift's cooperative pool; the descriptors it owns are closed exactly
    /// once, when the output ends (or, for its wake-up pipe, when it is freed).
    public final class Running: Sendable {
        public let pid: Int32
        private let configuration: Subprocess
        private let started = ContinuousClock.now
        private let wakeRead: Int32
        private let wakeWrite: Int32
        private let state: Mutex<State>

        private enum Waiter {
            case semaphore(DispatchSemaphore)
            case continuation(CheckedContinuation<Void, Never>)
        }

        private struct State {
            var termination: Termination?
            var reapedAt: ContinuousClock.Instant?
            var stdout = Data()
            var stderr = Data()
            var finished = false
            var timedOut = false
            /// When the group gets SIGTERM: the deadline, or earlier for `stop()`.
            var stopAt: ContinuousClock.Instant?
            var stopIsDeadline = false
            var termSentAt: ContinuousClock.Instant?
            var killSent = false
            var keptInput: Int32?
            var waiters: [Waiter] = []
        }

        init(pid: Int32, configuration: Subprocess, wakeRead: Int32, wakeWrite: Int32, keptInput: Int32?) {
            self.pid = pid
            self.configuration = configuration
            self.wakeRead = wakeRead
            self.wakeWrite = wakeWrite
            var state = State()
            state.keptInput = keptInput
            if let timeout = configuration.timeout {
                state.stopAt = started + timeout
                state.stopIsDeadline = true
            }
            self.state = Mutex(state)
        }

        deinit {
            close(wakeRead)
            close(wakeWrite)
        }

        func start(outputs: [(fd: Int32, isError: Bool)], input: (fd: Int32, data: Data)?) {
            Thread.detachNewThread { [self] in
                Self.blockSignals()
                reap()
            }
            Thread.detachNewThread { [self] in
                Self.blockSignals()
                supervise(outputs: outputs, input: input)
            }
        }

        // MARK: Asking

        /// Whether it has not exited yet.
        public var isRunning: Bool { state.withLock { $0.termination == nil } }

        /// How it ended; `nil` while it runs.
        public var termination: Termination? { state.withLock { $0.termination } }

        /// Its collected standard output so far.
        public var standardOutputSoFar: Data { state.withLock { $0.stdout } }

        /// Its collected standard error so far.
        public var standardErrorSoFar: Data { state.withLock { $0.stderr } }

        // MARK: Telling

        /// Sends `signal` to the program itself (not its group), unless it has exited.
        public func terminate(_ signal: Int32 = SIGTERM) {
            state.withLock { state in
                if state.termination == nil { kill(pid, signal) }
            }
        }

        /// Sends `signal` to the program's whole process group, unless it has exited.
        public func signalGroup(_ signal: Int32) {
            state.withLock { state in
                if state.termination == nil { kill(-pid, signal) }
            }
        }

        /// Stops the group now as at a deadline: SIGTERM, SIGKILL after `grace`. Returns at once.
        public func stop() {
            state.withLock { state in
                let now = ContinuousClock.now
                if state.stopAt.map({ $0 > now }) ?? true {
                    state.stopAt = now
                    state.stopIsDeadline = false
                }
            }
            wake()
        }

        /// Closes the `.keptOpen` standard input: the program reads its end.
        public func closeStandardInput() {
            let fd = state.withLock { state in
                defer { state.keptInput = nil }
                return state.keptInput
            }
            if let fd { close(fd) }
        }

        // MARK: Waiting

        /// Waits, blocking this thread, until it has exited and its output ended.
        public func wait() -> Result {
            let semaphore = DispatchSemaphore(value: 0)
            let done = state.withLock { state in
                if !state.finished { state.waiters.append(.semaphore(semaphore)) }
                return state.finished
            }
            if !done { semaphore.wait() }
            return result
        }

        /// Waits, without holding a thread, until it has exited and its output ended.
        public func wait() async -> Result {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = state.withLock { state in
                    if !state.finished { state.waiters.append(.continuation(continuation)) }
                    return state.finished
                }
                if done { continuation.resume() }
            }
            return result
        }

        /// Waits until it has ended, at most `timeout`: its result, or `nil` while it still runs then.
        public func wait(timeout: Duration) async -> Result? {
            let deadline = ContinuousClock.now + timeout
            while !state.withLock({ $0.finished }) {
                guard ContinuousClock.now < deadline else { return nil }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return result
        }

        /// Waits until `condition` holds for the collected standard output (or,
        /// with `standardError`, error), polling; `false` when the output ended
        /// or `timeout` passed first.
        public func waitForOutput(standardError: Bool = false, timeout: Duration, until condition: (Data) -> Bool) async -> Bool {
            let deadline = ContinuousClock.now + timeout
            while true {
                let (seen, finished) = state.withLock { (standardError ? $0.stderr : $0.stdout, $0.finished) }
                if condition(seen) { return true }
                if finished || ContinuousClock.now >= deadline { return false }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }

        private var result: Result {
            state.withLock { state in
                Result(pid: pid, termination: state.termination ?? .exited(-1), stdout: state.stdout, stderr: state.stderr,
                       timedOut: state.timedOut, duration: (state.reapedAt ?? ContinuousClock.now) - started)
            }
        }

        // MARK: The threads

        /// Helper threads take no signals: the process's handlers run elsewhere,
        /// and a write to a closed pipe fails with EPIPE instead of raising SIGPIPE.
        private static func blockSignals() {
            var all = sigset_t()
            sigfillset(&all)
            pthread_sigmask(SIG_BLOCK, &all, nil)
        }

        private func wake() {
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)
        }

        /// Waits for the exit without reaping (the pid and group stay ours),
        /// kills what is left of the group, then reaps.
        private func reap() {
            var info = siginfo_t()
            var rc: Int32
            repeat { rc = waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) } while rc == -1 && errno == EINTR
            state.withLock { state in
                // Only while the zombie holds the pid (and so the group's id) may the group be signalled.
                if rc == 0 && configuration.killsGroupOnExit { kill(-pid, SIGKILL) }
                var status: Int32 = 0
                var reaped: pid_t
                repeat { reaped = waitpid(pid, &status, 0) } while reaped == -1 && errno == EINTR
                if reaped == pid {
                    let signal = status & 0x7f
                    state.termination = signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
                } else {
                    state.termination = .exited(-1)  // reaped by someone else
                }
                state.reapedAt = ContinuousClock.now
            }
            wake()
        }

        /// Reads the output, writes the input, keeps the deadline; ends when the
        /// program is reaped and its output ended (or was given up on).
        private func supervise(outputs: [(fd: Int32, isError: Bool)], input: (fd: Int32, data: Data)?) {
            var open = outputs
            var pendingInput = input.map { (fd: $0.fd, bytes: [UInt8]($0.data), offset: 0) }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let grace = configuration.grace
            let drain = configuration.drainAfterExit

            func closeInput() {
                if let fd = pendingInput?.fd { close(fd) }
                pendingInput = nil
            }
            if pendingInput?.bytes.isEmpty == true { closeInput() }

            while true {
                let now = ContinuousClock.now
                let (reapedAt, timer) = state.withLock { state -> (ContinuousClock.Instant?, ContinuousClock.Instant?) in
                    guard state.termination == nil else { return (state.reapedAt, nil) }
                    if let stopAt = state.stopAt, state.termSentAt == nil, now >= stopAt {
                        kill(-pid, SIGTERM)
                        state.termSentAt = now
                        if state.stopIsDeadline { state.timedOut = true }
                    }
                    if let sent = state.termSentAt, !state.killSent, now >= sent + grace {
                        kill(-pid, SIGKILL)
                        state.killSent = true
                    }
                    if let sent = state.termSentAt { return (nil, state.killSent ? nil : sent + grace) }
                    return (nil, state.stopAt)
                }
                var next = timer
                if let reapedAt {
                    closeInput()
                    if open.isEmpty { break }
                    if now >= reapedAt + drain {
                        for output in open { close(output.fd) }
                        open = []
                        break
                    }
                    next = reapedAt + drain
                }

                var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
                fds += open.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
                if let input = pendingInput { fds.append(pollfd(fd: input.fd, events: Int16(POLLOUT), revents: 0)) }
                var milliseconds: Int32 = -1
                if let next {
                    let left = next - ContinuousClock.now
                    let ms = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1
                    milliseconds = Int32(clamping: max(0, ms))
                }
                let ready = poll(&fds, nfds_t(fds.count), milliseconds)
                if ready < 0 { continue }  // EINTR
                if fds[0].revents != 0 { _ = read(wakeRead, &buffer, buffer.count) }

                var stillOpen: [(fd: Int32, isError: Bool)] = []
                for (index, output) in open.enumerated() {
                    guard fds[index + 1].revents != 0 else { stillOpen.append(output); continue }
                    let count = read(output.fd, &buffer, buffer.count)
                    if count > 0 {
                        let chunk = Data(buffer[0..<count])
                        state.withLock { state in
                            if output.isError { state.stderr.append(chunk) } else { state.stdout.append(chunk) }
                        }
                        stillOpen.append(output)
                    } else if count < 0 && (errno == EAGAIN || errno == EINTR) {
                        stillOpen.append(output)
                    } else {
                        close(output.fd)
                    }
                }
                open = stillOpen

                if let input = pendingInput, fds[fds.count - 1].revents != 0 {
                    let written = input.bytes.withUnsafeBytes { bytes in
                        write(input.fd, bytes.baseAddress! + input.offset, min(bytes.count - input.offset, 65536))
                    }
                    if written > 0 {
                        pendingInput?.offset += written
                        if input.offset + written >= input.bytes.count { closeInput() }
                    } else if !(written < 0 && (errno == EAGAIN || errno == EINTR)) {
                        closeInput()  // EPIPE: it stopped reading
                    }
                }
            }

            let (waiters, keptInput) = state.withLock { state in
                state.finished = true
                defer { state.waiters = []; state.keptInput = nil }
                return (state.waiters, state.keptInput)
            }
            if let keptInput { close(keptInput) }
            for waiter in waiters {
                switch waiter {
                case .semaphore(let semaphore): semaphore.signal()
                case .continuation(let continuation): continuation.resume()
                }
            }
        }
    }
}
