import Foundation
import Glibc

/// The few POSIX socket calls the tunnel makes on the host: loopback TCP only.
enum HostSocket {
    struct Failure: Error, CustomStringConvertible {
        /// The errno name (`ECONNREFUSED`), as the tunnel's REFUSED frame carries it.
        var code: String
        var message: String
        var description: String { "\(message) (\(code))" }

        static func errno(_ what: String, _ number: Int32 = Foundation.errno) -> Failure {
            let names: [Int32: String] = [ECONNREFUSED: "ECONNREFUSED", ETIMEDOUT: "ETIMEDOUT", EADDRINUSE: "EADDRINUSE", EACCES: "EACCES",
                                          EHOSTUNREACH: "EHOSTUNREACH", ENETUNREACH: "ENETUNREACH", EINVAL: "EINVAL", EMFILE: "EMFILE"]
            return Failure(code: names[number] ?? "E\(number)", message: "\(what): \(String(cString: strerror(number)))")
        }
    }

    static func close(_ fd: Int32) { _ = Foundation.close(fd) }

    private static func address(_ host: String, _ port: Int) -> sockaddr_in? {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }
        return address
    }

    private static func socketFD() -> Int32 {
        socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    /// Connects to `target`, giving up after `timeout`.
    static func connect(_ target: TunnelTarget, timeout: Duration) -> Result<Int32, Failure> {
        guard var address = address(target.host, target.port) else {
            return .failure(Failure(code: "EINVAL", message: "not an IPv4 address: \(target.host)"))
        }
        let fd = socketFD()
        guard fd >= 0 else { return .failure(.errno("socket")) }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        let started = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if started != 0 && errno != EINPROGRESS {
            let failure = Failure.errno("connecting to \(target.host):\(target.port)")
            close(fd)
            return .failure(failure)
        }
        if started != 0 {
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ms = Int32(min(Double(Int32.max), timeout.milliseconds))
            guard poll(&poller, 1, ms) == 1 else {
                close(fd)
                return .failure(Failure(code: "ETIMEDOUT", message: "connecting to \(target.host):\(target.port): no answer in \(timeout.formattedSeconds)"))
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 {
                close(fd)
                return .failure(.errno("connecting to \(target.host):\(target.port)", error))
            }
        }
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        setNoDelay(fd)
        return .success(fd)
    }

    /// A listening socket on 127.0.0.1:`port` (0: any free port) and the port it got.
    static func listen(port: Int) -> Result<(fd: Int32, port: Int), Failure> {
        guard var address = address("127.0.0.1", port) else { return .failure(Failure(code: "EINVAL", message: "bad port \(port)")) }
        let fd = socketFD()
        guard fd >= 0 else { return .failure(.errno("socket")) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Foundation.listen(fd, 64) == 0 else {
            let failure = Failure.errno("listening on 127.0.0.1:\(port)")
            close(fd)
            return .failure(failure)
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return .success((fd, Int(UInt16(bigEndian: actual.sin_port))))
    }

    /// A UDP port free on 127.0.0.1 now.
    static func freeUDPPort() -> Result<Int, Failure> {
        guard var address = address("127.0.0.1", 0) else { return .failure(Failure(code: "EINVAL", message: "no loopback address")) }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(.errno("socket")) }
        defer { close(fd) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { return .failure(.errno("binding a UDP port on 127.0.0.1")) }
        return .success(Int(UInt16(bigEndian: address.sin_port)))
    }

    /// The next connection, or nil once the listener is shut down.
    static func accept(_ listener: Int32) -> Int32? {
        while true {
            let fd = Glibc.accept(listener, nil, nil)
            if fd >= 0 {
                // Not accept4(SOCK_CLOEXEC): Glibc's module leaves it out; the
                // window until this is only open to a fork without exec.
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                setNoDelay(fd)
                return fd
            }
            if errno == EINTR || errno == ECONNABORTED { continue }
            // Out of descriptors: wait, rather than spin or give up for good.
            if errno == EMFILE || errno == ENFILE { usleep(100_000); continue }
            return nil
        }
    }

    private static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }
}

/// Ports on this host's loopback, for what QEMU binds there (a network's udp link).
public enum LoopbackPorts {
    /// A UDP port free on 127.0.0.1 now.
    public static func freeUDP() throws -> Int {
        switch HostSocket.freeUDPPort() {
        case .success(let port): return port
        case .failure(let error): throw TestbedError.setup("no free UDP port for a network: \(error)")
        }
    }
}
