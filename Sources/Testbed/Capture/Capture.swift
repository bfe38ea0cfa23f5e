import CPcap
import Foundation

/// A network capture read back with libpcap: what QEMU's `filter-dump` wrote
/// for a machine started with ``MachineSpec/capture``.
public struct Capture: Sendable {
    /// One captured frame.
    public struct Packet: Sendable, Equatable {
        /// Seconds since the epoch, as captured.
        public var timestamp: Double
        /// Length on the wire.
        public var length: Int
        /// The captured bytes (Ethernet frame).
        public var bytes: [UInt8]

        /// IPv4 source address, when this is an IPv4 frame.
        public var ipv4Source: String? {
            guard bytes.count >= 34, bytes[12] == 0x08, bytes[13] == 0x00 else { return nil }
            return bytes[26..<30].map(String.init).joined(separator: ".")
        }

        /// IPv4 destination address, when this is an IPv4 frame.
        public var ipv4Destination: String? {
            guard bytes.count >= 34, bytes[12] == 0x08, bytes[13] == 0x00 else { return nil }
            return bytes[30..<34].map(String.init).joined(separator: ".")
        }

        /// TCP destination port, when this is an IPv4 TCP segment.
        public var tcpDestinationPort: Int? {
            guard ipv4Destination != nil, bytes[23] == 6 else { return nil }
            let ihl = Int(bytes[14] & 0x0f) * 4
            let offset = 14 + ihl
            guard bytes.count >= offset + 4 else { return nil }
            return Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
        }
    }

    public var packets: [Packet]

    /// Reads a pcap file.
    public init(contentsOf path: String) throws {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let handle = pcap_open_offline(path, &errorBuffer) else {
            throw TestbedError.setup("reading the capture \(path): \(String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        defer { pcap_close(handle) }
        var packets: [Packet] = []
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        while pcap_next_ex(handle, &header, &data) == 1 {
            guard let header, let data else { continue }
            let h = header.pointee
            packets.append(Packet(
                timestamp: Double(h.ts.tv_sec) + Double(h.ts.tv_usec) / 1e6, length: Int(h.len),
                bytes: Array(UnsafeBufferPointer(start: data, count: Int(h.caplen)))))
        }
        self.packets = packets
    }
}
