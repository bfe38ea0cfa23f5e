import Foundation
import Synchronization

/// A host port on 127.0.0.1 that leads to a port in the guest through the
/// tunnel: what ``Machine/forward(guestPort:hostPort:)`` hands out. Each
/// connection accepted here is one tunnel connection; when the guest refuses
/// it (nothing listens there), the host side sees the connection closed.
public final class PortForward: Sendable {
    public let guestPort: Int
    public let hostPort: Int
    private let listener: Int32
    private let stopped = Atomic<Bool>(false)

    /// `http://127.0.0.1:HOSTPORT`, for any HTTP client.
    public var url: URL { URL(string: "http://127.0.0.1:\(hostPort)")! }

    init(tunnel: Tunnel, guestPort: Int, hostPort: Int, connectTimeout: Duration) throws {
        guard (1...65_535).contains(guestPort) else { throw TestbedError.setup("forward: guest port \(guestPort) is not 1–65535") }
        guard (0...65_535).contains(hostPort) else { throw TestbedError.setup("forward: host port \(hostPort) is not 0–65535") }
        switch HostSocket.listen(port: hostPort) {
        case .success(let (fd, port)):
            listener = fd
            self.hostPort = port
        case .failure(let error):
            throw TestbedError.setup("forward of guest port \(guestPort): \(error)")
        }
        self.guestPort = guestPort
        let listener = self.listener
        Thread { [guestPort] in
            while let fd = HostSocket.accept(listener) {
                Thread { _ = tunnel.carry(fd: fd, toGuestPort: guestPort, timeout: connectTimeout) }.start()
            }
            HostSocket.close(listener)
        }.start()
    }

    /// Stops accepting; connections already carried go on until the tunnel closes.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    deinit { stop() }
}
