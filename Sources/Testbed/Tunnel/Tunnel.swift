import Foundation
import Synchronization
import TestbedCore

/// A host address a guest's tunnel listener leads to (the registry, say).
public struct TunnelTarget: Sendable, Equatable {
    public var host: String
    public var port: Int
    public init(host: String = "127.0.0.1", port: Int) {
        self.host = host
        self.port = port
    }
}

/// The host's end of the tunnel (images/PROTOCOL.md, "Tunnel"): host ports
/// forwarded to guest ports, and the guest's listeners (the registry) led to
/// host targets. Everything the guest sends is bounded: frame size, the
/// window per connection, the number of connections.
final class Tunnel: Sendable {
    static let maxConnections = 256

    private struct State {
        var reader = TunnelFrameReader()
        var connections: [UInt32: TunnelConnection] = [:]
        var pending: [UInt32: @Sendable (Result<Void, TunnelRefused>) -> Void] = [:]
        var nextID: UInt32 = 2
        var helloSeen = false
        var closed = false
    }

    private let state = Mutex(State())
    /// Signalled when the guest's HELLO arrives or the tunnel closes, for
    /// connections waiting on threads of their own.
    private let greeting = NSCondition()
    /// The channel's stream, kept here so that it is closed off libvirt's event loop.
    private let channel = Mutex<(any Sendable)?>(nil)
    private let sender = Mutex<(@Sendable ([UInt8]) throws -> Void)?>(nil)
    private let targets: [String: TunnelTarget]
    private let log: @Sendable (String) -> Void
    /// Changes when the guest's HELLO arrives.
    let notifier = ChangeNotifier()

    init(targets: [String: TunnelTarget], log: @escaping @Sendable (String) -> Void) {
        self.targets = targets
        self.log = log
    }

    var guestGreeted: Bool { state.withLock { $0.helloSeen } }

    /// Starts speaking on a freshly opened channel: a HELLO, to which the
    /// guest answers by dropping whatever a previous host left.
    func attach(channel stream: any Sendable, sender send: @escaping @Sendable ([UInt8]) throws -> Void) {
        channel.withLock { $0 = stream }
        sender.withLock { $0 = send }
        self.send(TunnelFrame(.hello, id: 0, payload: Array(#"{"version":\#(TunnelProtocol.version)}"#.utf8)))
    }

    func send(_ frame: TunnelFrame) {
        guard let send = sender.withLock({ $0 }) else { return }
        do { try send(frame.encoded) } catch { close(reason: "the tunnel's stream failed: \(error)") }
    }

    /// Bytes from the guest, on libvirt's event-loop thread.
    func receive(_ bytes: [UInt8]) {
        let frames: [TunnelFrame]
        do {
            frames = try state.withLock { state throws(TunnelProtocolError) in try state.reader.append(bytes) }
        } catch {
            log("tunnel: \(error); every connection is dropped")
            dropAll()
            return
        }
        for frame in frames { handle(frame) }
    }

    private func handle(_ frame: TunnelFrame) {
        switch frame.kind {
        case .hello?:
            state.withLock { $0.helloSeen = true }
            wakeGreetingWaiters()
            notifier.notify()
        case .open?:
            openFromGuest(frame)
        case .opened?, .refused?:
            let reply = state.withLock { $0.pending.removeValue(forKey: frame.id) }
            reply?(frame.kind == .opened ? .success(()) : .failure(TunnelRefused(reason: String(decoding: frame.payload.prefix(200), as: UTF8.self))))
        case .data?, .ack?, .end?, .close?:
            let connection = state.withLock { $0.connections[frame.id] }
            if let connection {
                connection.received(frame)
            } else if frame.kind != .close {
                send(TunnelFrame(.close, id: frame.id))
            }
        case nil:
            return
        }
    }

    /// A guest process connected to one of the guest's listeners: connect to
    /// its host target off the event loop, then answer.
    private func openFromGuest(_ frame: TunnelFrame) {
        let id = frame.id
        let name = (try? JSONDecoder().decode(JSONValue.self, from: Data(frame.payload)))?["name"]?.stringValue
        let admitted = state.withLock { state in
            id % 2 == 1 && state.connections[id] == nil && state.connections.count < Self.maxConnections && !state.closed
        }
        guard admitted, let name, let target = targets[name] else {
            send(TunnelFrame(.refused, id: id, payload: Array("no such target, bad id or too many connections".utf8)))
            return
        }
        Thread {
            switch HostSocket.connect(target, timeout: .seconds(5)) {
            case .success(let fd):
                self.adopt(fd: fd, id: id)
                self.send(TunnelFrame(.opened, id: id))
            case .failure(let error):
                self.send(TunnelFrame(.refused, id: id, payload: Array(error.code.utf8)))
            }
        }.start()
    }

    private func adopt(fd: Int32, id: UInt32) {
        let connection = TunnelConnection(id: id, fd: fd, send: { [weak self] in self?.send($0) }, onGone: { [weak self] id in
            self?.state.withLock { _ = $0.connections.removeValue(forKey: id) }
        })
        state.withLock { $0.connections[id] = connection }
        connection.start()
    }

    /// Opens a connection to `guestPort` in the guest for the host socket
    /// `fd` (blocking, on the caller's thread); the tunnel owns `fd` after.
    func carry(fd: Int32, toGuestPort guestPort: Int, timeout: Duration) -> Result<Void, TunnelRefused> {
        // The guest answers only once its tunnel runs (after the ready line, or
        // before the packages when it listens for the registry).
        let greetBy = Date(timeIntervalSinceNow: Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        greeting.lock()
        while !guestGreeted, !state.withLock({ $0.closed }), greeting.wait(until: greetBy) {}
        greeting.unlock()
        guard guestGreeted else {
            HostSocket.close(fd)
            return .failure(TunnelRefused(reason: "the guest's tunnel did not answer within \(timeout.formattedSeconds)"))
        }
        let id: UInt32? = state.withLock { state in
            guard !state.closed, state.connections.count < Self.maxConnections else { return nil }
            defer { state.nextID = state.nextID &+ 2 == 0 ? 2 : state.nextID &+ 2 }
            return state.nextID
        }
        guard let id else {
            HostSocket.close(fd)
            return .failure(TunnelRefused(reason: "the tunnel is closed or full"))
        }
        let answer = Mutex<Result<Void, TunnelRefused>?>(nil)
        let done = DispatchSemaphore(value: 0)
        state.withLock { $0.pending[id] = { result in answer.withLock { $0 = result }; done.signal() } }
        send(TunnelFrame(.open, id: id, payload: Array(#"{"port":\#(guestPort)}"#.utf8)))
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        if done.wait(timeout: .now() + seconds) == .timedOut {
            state.withLock { _ = $0.pending.removeValue(forKey: id) }
            HostSocket.close(fd)
            return .failure(TunnelRefused(reason: "the guest did not answer within \(timeout.formattedSeconds)"))
        }
        let result = answer.withLock { $0 } ?? .failure(TunnelRefused(reason: "no answer"))
        switch result {
        case .success: adopt(fd: fd, id: id)
        case .failure: HostSocket.close(fd)
        }
        return result
    }

    private func dropAll() {
        let (connections, pending) = state.withLock { state in
            defer { state.connections = [:]; state.pending = [:] }
            return (Array(state.connections.values), Array(state.pending.values))
        }
        for connection in connections { connection.abort(sendClose: false) }
        for reply in pending { reply(.failure(TunnelRefused(reason: "the tunnel closed"))) }
    }

    /// The channel is gone (the machine stopped): every connection ends.
    func close(reason: String) {
        let first = state.withLock { state in defer { state.closed = true }; return !state.closed }
        guard first else { return }
        sender.withLock { $0 = nil }
        dropAll()
        wakeGreetingWaiters()
        notifier.notify()
    }

    /// The guest booted again: its tunnel is a new one, which speaks only
    /// after a new HELLO; whatever the old boot carried is gone.
    func restart() {
        state.withLock { state in
            state.reader.reset()
            state.helloSeen = false
        }
        dropAll()
        send(TunnelFrame(.hello, id: 0, payload: Array(#"{"version":\#(TunnelProtocol.version)}"#.utf8)))
    }

    /// Under the condition's lock: a waiter checks and waits holding it, so it
    /// cannot miss this.
    private func wakeGreetingWaiters() {
        greeting.lock()
        greeting.broadcast()
        greeting.unlock()
    }

    /// Hands back the channel's stream (to close it), once.
    func takeChannel() -> (any Sendable)? {
        channel.withLock { stream in
            defer { stream = nil }
            return stream
        }
    }
}

/// The guest refused a connection (nothing listens there) or never answered.
public struct TunnelRefused: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { "the guest refused the connection: \(reason)" }
}
