/// The tunnel's wire format (images/PROTOCOL.md, "Tunnel"): TCP connections
/// multiplexed over the virtio-serial port `org.nodeos.tunnel`, which libvirt
/// carries as a stream, so it works on any libvirt host.
public enum TunnelProtocol {
    public static let channelName = "org.nodeos.tunnel"
    public static let version = 1
    /// The largest payload a frame may carry; a larger one is a protocol error.
    public static let maxPayload = 65_536
    /// DATA bytes a side may have in flight per connection before an ACK.
    public static let window = 262_144
    public static let headerSize = 9
}

/// One frame: a type, a connection id and a payload.
public struct TunnelFrame: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case hello = 1, open, opened, refused, data, ack, end, close
    }

    /// The raw type: unknown types are kept (and ignored by the endpoints).
    public var type: UInt8
    public var id: UInt32
    public var payload: [UInt8]

    public var kind: Kind? { Kind(rawValue: type) }

    public init(_ kind: Kind, id: UInt32, payload: [UInt8] = []) {
        self.type = kind.rawValue
        self.id = id
        self.payload = payload
    }

    public init(rawType: UInt8, id: UInt32, payload: [UInt8]) {
        self.type = rawType
        self.id = id
        self.payload = payload
    }

    /// An ACK for `count` bytes.
    public static func ack(id: UInt32, count: Int) -> TunnelFrame {
        TunnelFrame(.ack, id: id, payload: bigEndian(UInt32(clamping: count)))
    }

    /// The count an ACK carries, if it is well formed.
    public var ackCount: Int? {
        guard kind == .ack, payload.count == 4 else { return nil }
        return Int(payload.withUnsafeBufferPointer { p in p.reduce(UInt32(0)) { $0 << 8 | UInt32($1) } })
    }

    public var encoded: [UInt8] {
        var out: [UInt8] = [type]
        out.reserveCapacity(TunnelProtocol.headerSize + payload.count)
        out += Self.bigEndian(id)
        out += Self.bigEndian(UInt32(payload.count))
        out += payload
        return out
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }
}

/// A frame too large to be one: the stream cannot be trusted past it.
public struct TunnelProtocolError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// Cuts a byte stream into frames. Holds at most one frame's worth of bytes.
///
/// A new host may first read the tail of what the guest wrote for the
/// previous one, so until the guest's HELLO (type 1, id 0, a JSON payload
/// starting `{"version":`) every byte before it is skipped.
public struct TunnelFrameReader: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0
    private var synchronized = false

    public init() {}

    private static let helloMarker = Array(#"{"version":"#.utf8)

    /// Drops what comes before the guest's HELLO; false while it has not come.
    private mutating func synchronize() -> Bool {
        let header = TunnelProtocol.headerSize
        let need = header + Self.helloMarker.count
        var i = start
        while buffer.count - i >= need {
            if buffer[i] == TunnelFrame.Kind.hello.rawValue, buffer[i + 1] == 0, buffer[i + 2] == 0, buffer[i + 3] == 0, buffer[i + 4] == 0,
               buffer[(i + header)..<(i + need)].elementsEqual(Self.helloMarker) {
                start = i
                synchronized = true
                return true
            }
            i += 1
        }
        // Keep only what may still begin the HELLO.
        let keep = max(start, buffer.count - need + 1)
        buffer.removeFirst(keep)
        start = 0
        return false
    }

    /// The frames completed by `bytes`; throws on a length over the bound
    /// (then the reader skips to the next HELLO).
    public mutating func append(_ bytes: [UInt8]) throws(TunnelProtocolError) -> [TunnelFrame] {
        buffer += bytes
        if !synchronized, !synchronize() { return [] }
        var frames: [TunnelFrame] = []
        while buffer.count - start >= TunnelProtocol.headerSize {
            let h = start
            let length = Int(buffer[h + 5]) << 24 | Int(buffer[h + 6]) << 16 | Int(buffer[h + 7]) << 8 | Int(buffer[h + 8])
            guard length <= TunnelProtocol.maxPayload else {
                reset()
                throw TunnelProtocolError(description: "a tunnel frame of \(length) bytes (at most \(TunnelProtocol.maxPayload))")
            }
            guard buffer.count - start >= TunnelProtocol.headerSize + length else { break }
            let id = UInt32(buffer[h + 1]) << 24 | UInt32(buffer[h + 2]) << 16 | UInt32(buffer[h + 3]) << 8 | UInt32(buffer[h + 4])
            let body = Array(buffer[(h + TunnelProtocol.headerSize)..<(h + TunnelProtocol.headerSize + length)])
            frames.append(TunnelFrame(rawType: buffer[h], id: id, payload: body))
            start += TunnelProtocol.headerSize + length
        }
        if start > 0 && start * 2 >= buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
        return frames
    }

    /// Forgets everything and waits for the next HELLO.
    public mutating func reset() {
        buffer = []
        start = 0
        synchronized = false
    }
}
