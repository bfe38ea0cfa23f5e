import Foundation
import Libvirt
import TestbedCore

extension PortForward {
    /// Sends `request` through the forward and reads the whole answer, with a
    /// deadline; the answer is bounded (`maxBytes`), so a guest cannot make
    /// the host buffer without end.
    public func exchange(_ request: HTTPRequest, timeout: Duration, maxBytes: Int = 64 << 20) async throws -> HTTPResponse {
        let target = TunnelTarget(port: hostPort)
        let bytes = try await Blocking.run { () throws -> [UInt8] in
            let fd: Int32
            switch HostSocket.connect(target, timeout: timeout) {
            case .success(let connected): fd = connected
            case .failure(let error): throw TestbedError.setup("http to guest port \(self.guestPort): \(error)")
            }
            defer { HostSocket.close(fd) }
            // A zero timeval would mean no timeout at all.
            var timeval = timeval(tv_sec: max(1, Int(timeout.components.seconds)), tv_usec: 0)
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeval, socklen_t(MemoryLayout<timeval>.size))
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeval, socklen_t(MemoryLayout<timeval>.size))
            let out = request.encoded(host: "127.0.0.1:\(self.hostPort)")
            var sent = 0
            while sent < out.count {
                let n = out.withUnsafeBytes { write(fd, $0.baseAddress! + sent, out.count - sent) }
                guard n > 0 else { throw TestbedError.setup("http to guest port \(self.guestPort): the connection closed while sending") }
                sent += n
            }
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65_536)
            let deadline = ContinuousClock.now + timeout
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    received += buffer[0..<n]
                    guard received.count <= maxBytes else { throw TestbedError.setup("http to guest port \(self.guestPort): the answer is over \(maxBytes) bytes") }
                } else if n == 0 {
                    return received
                } else if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw TestbedError.setup("http to guest port \(self.guestPort): no complete answer within \(timeout.formattedSeconds)")
                } else if errno != EINTR {
                    throw TestbedError.setup("http to guest port \(self.guestPort): the connection broke: \(String(cString: strerror(errno)))")
                }
                if ContinuousClock.now > deadline { throw TestbedError.setup("http to guest port \(self.guestPort): no complete answer within \(timeout.formattedSeconds)") }
            }
        }
        do {
            return try HTTPResponse(parsing: bytes)
        } catch {
            throw TestbedError.setup("http to guest port \(guestPort): \(error)")
        }
    }
}
