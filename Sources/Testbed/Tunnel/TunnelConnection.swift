import Foundation
import Synchronization
import TestbedCore

/// One TCP connection carried by the tunnel: a host socket on one side, the
/// guest's on the other. Two threads pump it (socket → guest with the
/// guest's credit, guest → socket acknowledging what was written), so a slow
/// side blocks only its own connection, never libvirt's event loop. The
/// socket is closed exactly once, by the last thread out.
final class TunnelConnection: @unchecked Sendable {
    let id: UInt32
    private let fd: Int32
    private let send: @Sendable (TunnelFrame) -> Void
    private let onGone: @Sendable (UInt32) -> Void
    // Everything below is guarded by `condition`.
    private let condition = NSCondition()
    private var credit = TunnelProtocol.window
    private var inbound: [[UInt8]] = []
    private var inboundBytes = 0
    private var guestEnded = false
    private var hostEnded = false
    private var written = false
    private var closed = false
    private var closeSent = false
    private var threads = 2

    init(id: UInt32, fd: Int32, send: @escaping @Sendable (TunnelFrame) -> Void, onGone: @escaping @Sendable (UInt32) -> Void) {
        self.id = id
        self.fd = fd
        self.send = send
        self.onGone = onGone
    }

    func start() {
        Thread { self.readSocket() }.start()
        Thread { self.writeSocket() }.start()
    }

    // MARK: From the guest (libvirt's event-loop thread: never blocks)

    func received(_ frame: TunnelFrame) {
        switch frame.kind {
        case .data?:
            condition.lock()
            inbound.append(frame.payload)
            inboundBytes += frame.payload.count
            // A guest that ignores the window would make us buffer without end.
            let overrun = inboundBytes > TunnelProtocol.window + TunnelProtocol.maxPayload
            condition.broadcast()
            condition.unlock()
            if overrun { abort(sendClose: true) }
        case .ack?:
            guard let count = frame.ackCount else { return }
            condition.lock()
            credit = min(TunnelProtocol.window, credit + count)
            condition.broadcast()
            condition.unlock()
        case .end?:
            condition.lock()
            guestEnded = true
            condition.broadcast()
            condition.unlock()
        case .close?:
            abort(sendClose: false)
        default:
            return
        }
    }

    /// Ends the connection at once (the guest went away, or the tunnel closed).
    func abort(sendClose: Bool) {
        condition.lock()
        let first = !closed
        closed = true
        let mustSend = sendClose && !closeSent
        if mustSend { closeSent = true }
        condition.broadcast()
        condition.unlock()
        if first { shutdown(fd, Int32(SHUT_RDWR)) }
        if mustSend { send(TunnelFrame(.close, id: id)) }
    }

    // MARK: Pumps

    private func readSocket() {
        var buffer = [UInt8](repeating: 0, count: TunnelProtocol.maxPayload)
        while true {
            condition.lock()
            while credit <= 0 && !closed { condition.wait() }
            let allowed = min(credit, buffer.count)
            let stop = closed
            condition.unlock()
            if stop { break }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, allowed) }
            if count > 0 {
                condition.lock()
                credit -= count
                condition.unlock()
                send(TunnelFrame(.data, id: id, payload: Array(buffer[0..<count])))
            } else if count == 0 {
                send(TunnelFrame(.end, id: id))
                condition.lock()
                hostEnded = true
                condition.broadcast()
                condition.unlock()
                finishIfDone()
                break
            } else if errno != EINTR {
                abort(sendClose: true)
                break
            }
        }
        threadDone()
    }

    private func writeSocket() {
        while true {
            condition.lock()
            while inbound.isEmpty && !guestEnded && !closed { condition.wait() }
            if closed { condition.unlock(); break }
            if inbound.isEmpty {
                // The guest ended its side and everything it sent is written.
                written = true
                condition.unlock()
                shutdown(fd, Int32(SHUT_WR))
                finishIfDone()
                break
            }
            let chunk = inbound.removeFirst()
            inboundBytes -= chunk.count
            condition.unlock()
            guard writeAll(chunk) else { abort(sendClose: true); break }
            send(.ack(id: id, count: chunk.count))
        }
        threadDone()
    }

    private func writeAll(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if count < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += count
        }
        return true
    }

    /// Both directions ended cleanly: the connection is over.
    private func finishIfDone() {
        condition.lock()
        let done = hostEnded && written && !closeSent
        if done { closeSent = true; closed = true; condition.broadcast() }
        condition.unlock()
        if done { send(TunnelFrame(.close, id: id)) }
    }

    private func threadDone() {
        condition.lock()
        threads -= 1
        let last = threads == 0
        condition.unlock()
        if last {
            close(fd)
            onGone(id)
        }
    }
}
