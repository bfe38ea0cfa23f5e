import Foundation
import Glibc
import Synchronization

/// Turns signals into calls on a thread of their own.
///
/// The signals get a real handler rather than `SIG_IGN` (which Dispatch's
/// signal sources need): a handled signal is reset to its default in every
/// program this process starts, an ignored one is inherited as ignored, and
/// then mkfs, e2fsck or openssl would ignore the timeout's SIGTERM and
/// outlive a Ctrl-C. The handler only writes the signal's number into a pipe
/// (async-signal-safe); the thread reading it runs `body`. SIGPIPE gets a
/// handler that does nothing, so a closed output pipe is an error to the
/// write, not the death of a run with machines to destroy.
enum SignalRelay {
    static func install(_ signals: [Int32], _ body: @escaping @Sendable (Int32) -> Void) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { fatalError("signal relay: pipe failed: errno \(errno)") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        relayWriteEnd.store(fds[1], ordering: .sequentiallyConsistent)
        let readEnd = fds[0]
        let thread = Thread {
            var signo: Int32 = 0
            while true {
                let n = withUnsafeMutableBytes(of: &signo) { read(readEnd, $0.baseAddress, $0.count) }
                if n == MemoryLayout<Int32>.size { body(signo) } else if n < 0 && errno == EINTR { continue } else if n <= 0 { return }
            }
        }
        thread.name = "nodeos-signals"
        thread.start()
        for signo in signals { setHandler(signo, relaySignal) }
        setHandler(SIGPIPE, ignoreSignal)
    }

    private static func setHandler(_ signo: Int32, _ handler: @escaping @convention(c) (Int32) -> Void) {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = handler
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        sigaction(signo, &action, nil)
    }
}

/// The relay pipe's write end, read by the signal handler.
private let relayWriteEnd = Atomic<Int32>(-1)

private func relaySignal(_ signo: Int32) {
    var value = signo
    let fd = relayWriteEnd.load(ordering: .relaxed)
    _ = withUnsafeBytes(of: &value) { write(fd, $0.baseAddress, $0.count) }
}

private func ignoreSignal(_: Int32) {}
