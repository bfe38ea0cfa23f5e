import Foundation

/// What a capture says, in the terms a test asserts on: flows, DNS queries
/// and HTTP requests. Decodes Ethernet/IPv4/TCP/UDP by hand; anything else
/// (ARP, IPv6) is counted but not interpreted.
extension Capture {
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        public var address: String
        public var port: Int
        public var description: String { "\(address):\(port)" }
        public init(address: String, port: Int) {
            self.address = address
            self.port = port
        }
    }

    /// A conversation, keyed by transport and the two endpoints as seen from
    /// the side that sent the first packet (the guest, for what it starts).
    public struct Flow: Sendable, Hashable, CustomStringConvertible {
        public var transport: String
        public var client: Endpoint
        public var server: Endpoint
        public var packets: Int
        public var bytes: Int
        public var description: String { "\(transport) \(client) → \(server): \(packets) packets, \(bytes) bytes" }
    }

    public struct HTTPRequest: Sendable, Hashable {
        public var method: String
        public var path: String
        public var host: String?
        public var server: Endpoint
        /// A request for a package tarball (`…/-/name-1.0.0.tgz`).
        public var isTarball: Bool { path.hasSuffix(".tgz") }
    }

    public struct DNSQuery: Sendable, Hashable {
        public var name: String
        public var server: Endpoint
    }

    struct Decoded {
        var transport: String
        var source: Endpoint
        var destination: Endpoint
        var payload: ArraySlice<UInt8>
    }

    static func decode(_ bytes: [UInt8]) -> Decoded? {
        guard bytes.count >= 34, bytes[12] == 0x08, bytes[13] == 0x00, bytes[14] >> 4 == 4 else { return nil }
        let ihl = Int(bytes[14] & 0x0f) * 4
        let totalLength = Int(bytes[16]) << 8 | Int(bytes[17])
        let proto = bytes[23]
        let ip = { (at: Int) in bytes[at..<at + 4].map(String.init).joined(separator: ".") }
        let l4 = 14 + ihl
        let end = min(bytes.count, 14 + totalLength)
        guard end >= l4 + 8 else { return nil }
        let port = { (at: Int) in Int(bytes[at]) << 8 | Int(bytes[at + 1]) }
        switch proto {
        case 6:
            guard end >= l4 + 20 else { return nil }
            let dataOffset = Int(bytes[l4 + 12] >> 4) * 4
            guard l4 + dataOffset <= end else { return nil }
            return Decoded(transport: "tcp", source: Endpoint(address: ip(26), port: port(l4)), destination: Endpoint(address: ip(30), port: port(l4 + 2)),
                           payload: bytes[(l4 + dataOffset)..<end])
        case 17:
            return Decoded(transport: "udp", source: Endpoint(address: ip(26), port: port(l4)), destination: Endpoint(address: ip(30), port: port(l4 + 2)),
                           payload: bytes[(l4 + 8)..<end])
        default:
            return nil
        }
    }

    /// Every TCP and UDP conversation, in the order it started.
    public var flows: [Flow] {
        var order: [String] = []
        var flows: [String: Flow] = [:]
        for packet in packets {
            guard let d = Capture.decode(packet.bytes) else { continue }
            let forward = "\(d.transport) \(d.source) \(d.destination)"
            let backward = "\(d.transport) \(d.destination) \(d.source)"
            let key = flows[backward] != nil ? backward : forward
            if flows[key] == nil {
                order.append(key)
                flows[key] = Flow(transport: d.transport, client: d.source, server: d.destination, packets: 0, bytes: 0)
            }
            flows[key]!.packets += 1
            flows[key]!.bytes += packet.length
        }
        return order.compactMap { flows[$0] }
    }

    /// Where the IPv4 packets sent by `source` went, with their counts:
    /// `ADDRESS:PORT` for TCP, `ADDRESS (not TCP)` for anything else.
    public func destinations(sentBy source: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for packet in packets where packet.ipv4Source == source {
            guard let destination = packet.ipv4Destination else { continue }
            out[packet.tcpDestinationPort.map { "\(destination):\($0)" } ?? "\(destination) (not TCP)", default: 0] += 1
        }
        return out
    }

    /// The servers the capture's clients talked to.
    public var servers: Set<Endpoint> { Set(flows.map(\.server)) }

    /// HTTP/1 request lines found at the start of TCP payloads.
    public var httpRequests: [HTTPRequest] {
        let methods = ["GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "PATCH "]
        return packets.compactMap { packet in
            guard let d = Capture.decode(packet.bytes), d.transport == "tcp", !d.payload.isEmpty else { return nil }
            let text = String(decoding: d.payload.prefix(4096), as: UTF8.self)
            guard methods.contains(where: text.hasPrefix) else { return nil }
            let lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
            let parts = lines.first?.split(separator: " ") ?? []
            guard parts.count >= 2 else { return nil }
            let host = lines.dropFirst().first { $0.lowercased().hasPrefix("host:") }.map { $0.dropFirst(5).trimmingCharacters(in: .whitespaces) }
            return HTTPRequest(method: String(parts[0]), path: String(parts[1]), host: host, server: d.destination)
        }
    }

    /// Names asked of DNS servers (UDP port 53).
    public var dnsQueries: [DNSQuery] {
        packets.compactMap { packet in
            guard let d = Capture.decode(packet.bytes), d.transport == "udp", d.destination.port == 53 else { return nil }
            let p = Array(d.payload)
            guard p.count > 12, p[2] & 0x80 == 0 else { return nil } // a query, not an answer
            var labels: [String] = []
            var i = 12
            while i < p.count, p[i] != 0, p[i] < 64 {
                let length = Int(p[i])
                guard i + 1 + length <= p.count else { return nil }
                labels.append(String(decoding: p[(i + 1)..<(i + 1 + length)], as: UTF8.self))
                i += 1 + length
            }
            return labels.isEmpty ? nil : DNSQuery(name: labels.joined(separator: "."), server: d.destination)
        }
    }

    /// Throws unless every server contacted is one of `allowed` (e.g. only
    /// the registry at the gateway), naming whatever else was contacted.
    public func expectOnlyContacted(_ allowed: Set<Endpoint>) throws {
        let others = servers.subtracting(allowed)
        guard others.isEmpty else {
            throw TestbedError.setup("the capture shows traffic to \(others.map(\.description).sorted().joined(separator: ", ")) besides \(allowed.map(\.description).sorted().joined(separator: ", "))")
        }
    }
}
