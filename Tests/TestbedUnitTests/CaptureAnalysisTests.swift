import Foundation
import Testbed
import Testing

/// Flows, HTTP requests and DNS queries from a pcap file written here frame by
/// frame and read back through libpcap.
@Suite("Capture analysis")
struct CaptureAnalysisTests {
    func ipv4(_ s: String) -> [UInt8] { s.split(separator: ".").map { UInt8($0)! } }

    func frame(proto: UInt8, from: (String, Int), to: (String, Int), payload: [UInt8], tcpFlags: UInt8 = 0x18) -> [UInt8] {
        let l4: [UInt8]
        if proto == 6 {
            l4 = [UInt8(from.1 >> 8), UInt8(from.1 & 255), UInt8(to.1 >> 8), UInt8(to.1 & 255), 0, 0, 0, 1, 0, 0, 0, 0, 0x50, tcpFlags, 0xff, 0xff, 0, 0, 0, 0] + payload
        } else {
            let length = 8 + payload.count
            l4 = [UInt8(from.1 >> 8), UInt8(from.1 & 255), UInt8(to.1 >> 8), UInt8(to.1 & 255), UInt8(length >> 8), UInt8(length & 255), 0, 0] + payload
        }
        let total = 20 + l4.count
        let ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 255), 0, 0, 0, 0, 64, proto, 0, 0] + ipv4(from.0) + ipv4(to.0)
        return [0x52, 0x55, 0x0a, 0, 2, 2, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x08, 0x00] + ip + l4
    }

    func pcap(_ frames: [[UInt8]]) throws -> URL {
        var data = Data()
        func le32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        func le16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        le32(0xa1b2c3d4); le16(2); le16(4); le32(0); le32(0); le32(65535); le32(1)
        for (i, f) in frames.enumerated() {
            le32(1_800_000_000 + UInt32(i)); le32(0); le32(UInt32(f.count)); le32(UInt32(f.count))
            data.append(contentsOf: f)
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("capture-\(UUID().uuidString.prefix(8)).pcap")
        try data.write(to: url)
        return url
    }

    @Test("flows, HTTP requests (tarballs marked) and DNS queries")
    func analysis() throws {
        let guest = ("10.0.2.15", 40000), registry = ("10.0.2.2", 4873)
        let get = Array("GET /@nodeos%2fhello-cli HTTP/1.1\r\nHost: 10.0.2.2:4873\r\n\r\n".utf8)
        let tarball = Array("GET /@nodeos/hello-cli/-/hello-cli-1.0.0.tgz HTTP/1.1\r\nhost: 10.0.2.2:4873\r\n\r\n".utf8)
        let dnsQuery: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7] + Array("example".utf8) + [3] + Array("org".utf8) + [0, 0, 1, 0, 1]
        let url = try pcap([
            frame(proto: 6, from: guest, to: registry, payload: get),
            frame(proto: 6, from: registry, to: guest, payload: Array("HTTP/1.1 200 OK\r\n\r\n{}".utf8)),
            frame(proto: 6, from: guest, to: registry, payload: tarball),
            frame(proto: 17, from: ("10.0.2.15", 5353), to: ("10.0.2.3", 53), payload: dnsQuery),
        ])
        defer { try? FileManager.default.removeItem(at: url) }
        let capture = try Capture(contentsOf: url.path)
        #expect(capture.packets.count == 4)
        let flows = capture.flows
        #expect(flows.count == 2)
        #expect(flows[0].client == Capture.Endpoint(address: "10.0.2.15", port: 40000))
        #expect(flows[0].server == Capture.Endpoint(address: "10.0.2.2", port: 4873))
        #expect(flows[0].packets == 3)
        #expect(capture.httpRequests.map(\.path) == ["/@nodeos%2fhello-cli", "/@nodeos/hello-cli/-/hello-cli-1.0.0.tgz"])
        #expect(capture.httpRequests.map(\.isTarball) == [false, true])
        #expect(capture.httpRequests.compactMap(\.host) == ["10.0.2.2:4873", "10.0.2.2:4873"])
        #expect(capture.dnsQueries.map(\.name) == ["example.org"])
        #expect(throws: Error.self) { try capture.expectOnlyContacted([Capture.Endpoint(address: "10.0.2.2", port: 4873)]) }
        try capture.expectOnlyContacted([Capture.Endpoint(address: "10.0.2.2", port: 4873), Capture.Endpoint(address: "10.0.2.3", port: 53)])
    }

    @Test("a truncated or foreign file is an error naming the file, not a crash")
    func badFiles() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString.prefix(8)).pcap")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data("not a pcap at all".utf8).write(to: url)
        let error = #expect(throws: Error.self) { try Capture(contentsOf: url.path) }
        #expect("\(error!)".contains(url.path))
        // Random bytes after a valid header: libpcap stops; what it read is kept.
        let valid = try pcap([frame(proto: 17, from: ("1.2.3.4", 1), to: ("5.6.7.8", 53), payload: [1, 2, 3])])
        defer { try? FileManager.default.removeItem(at: valid) }
        var frames = try Data(contentsOf: valid)
        frames.append(contentsOf: (0..<37).map { UInt8($0 * 7 & 255) })
        try frames.write(to: url)
        let capture = try Capture(contentsOf: url.path)
        #expect(capture.packets.count == 1)
        #expect(capture.dnsQueries.isEmpty)
    }
}
