import Foundation
import Testbed

/// Connects this terminal to a machine's console, raw, until Ctrl-] or the
/// machine stops: what `boot` does and what `run --keep-on-failure` offers
/// for a kept machine. With `replayingLast`, only that many bytes of what the
/// console already printed are shown first; otherwise all of it. `afterwards`
/// runs once input ends (Ctrl-], end of input), while the console still shows:
/// what a shutdown prints is seen.
func attachConsole(_ machine: Machine, replayingLast replay: Int? = nil, afterwards: () async -> Void = {}) async {
    let terminal = RawTerminal()
    terminal.enable()
    Testbed.onExit { terminal.restore() }
    let log = machine.console.log
    let start = replay.map { max(0, log.count - $0) } ?? 0
    let output = Task {
        var offset = start
        while let chunk = await log.read(from: offset) {
            offset += chunk.count
            FileHandle.standardOutput.write(Data(chunk))
        }
    }
    for await chunk in StdinReader().chunks() {
        if let detach = chunk.firstIndex(of: 0x1d) { // Ctrl-]
            if detach > 0 { try? await machine.console.send(Array(chunk[..<detach])) }
            break
        }
        do { try await machine.console.send(chunk) } catch { break }
        if await machine.isStopped { break }
    }
    terminal.restore()
    await afterwards()
    output.cancel()
}

/// Puts the terminal in raw mode (no echo, no line editing, no signals) and back.
/// `restore()` may run from the signal handler's thread, hence the lock.
final class RawTerminal: @unchecked Sendable {
    private let lock = NSLock()
    private var saved = termios()
    private var active = false

    func enable() {
        lock.lock()
        defer { lock.unlock() }
        guard isatty(STDIN_FILENO) == 1, tcgetattr(STDIN_FILENO, &saved) == 0 else { return }
        var raw = saved
        cfmakeraw(&raw)
        raw.c_oflag |= tcflag_t(OPOST | ONLCR)
        if tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0 { active = true }
    }

    func restore() {
        lock.lock()
        defer { lock.unlock() }
        guard active else { return }
        _ = tcsetattr(STDIN_FILENO, TCSANOW, &saved)
        active = false
    }
}

/// Reads standard input on a thread of its own and hands out chunks.
struct StdinReader {
    func chunks() -> AsyncStream<[UInt8]> {
        AsyncStream { continuation in
            let thread = Thread {
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = read(STDIN_FILENO, &buffer, buffer.count)
                    if count <= 0 { break }
                    continuation.yield(Array(buffer[0..<count]))
                }
                continuation.finish()
            }
            thread.start()
        }
    }
}
