import TestbedCore
import Testing

@Suite("Tunnel frames and HTTP answers")
struct TunnelFrameTests {
    static let hello = TunnelFrame(.hello, id: 0, payload: Array(#"{"version":1,"listeners":[]}"#.utf8))

    @Test("frames round-trip in pieces of any size; bytes before the guest's HELLO are skipped")
    func roundTrip() throws {
        let frames = [Self.hello, TunnelFrame(.data, id: 3, payload: Array(repeating: 7, count: 70_000 / 2)), .ack(id: 3, count: 65_536), TunnelFrame(.end, id: 3)]
        let stale = TunnelFrame(.data, id: 9, payload: [1, 2, 3]).encoded.dropFirst(4)
        let wire = Array(stale) + frames.flatMap(\.encoded)
        for piece in [1, 7, 4096, wire.count] {
            var reader = TunnelFrameReader()
            var got: [TunnelFrame] = []
            var i = 0
            while i < wire.count {
                got += try reader.append(Array(wire[i..<min(i + piece, wire.count)]))
                i += piece
            }
            #expect(got == frames, "pieces of \(piece)")
        }
        #expect(TunnelFrame.ack(id: 1, count: 65_536).ackCount == 65_536)
    }

    @Test("a frame over 64 KiB is a protocol error, and the reader waits for the next HELLO")
    func oversize() throws {
        var reader = TunnelFrameReader()
        _ = try reader.append(Self.hello.encoded)
        var huge = TunnelFrame(.data, id: 3, payload: []).encoded
        huge[5...8] = [0, 1, 0, 1]
        #expect(throws: TunnelProtocolError.self) { _ = try reader.append(huge) }
        #expect(try reader.append(TunnelFrame(.end, id: 3).encoded).isEmpty)
        #expect(try reader.append(Self.hello.encoded) == [Self.hello])
    }

    @Test("HTTP answers: content length, chunked, cut off")
    func http() throws {
        let plain = try HTTPResponse(parsing: Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello".utf8))
        #expect(plain.status == 200 && plain.text == "hello" && plain.header("content-type") == "text/plain")
        let chunked = try HTTPResponse(parsing: Array("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".utf8))
        #expect(chunked.status == 404 && chunked.reason == "Not Found" && chunked.text == "abcde")
        #expect(throws: HTTPResponse.Malformed.self) { try HTTPResponse(parsing: Array("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort".utf8)) }
        #expect(throws: HTTPResponse.Malformed.self) { try HTTPResponse(parsing: []) }
        #expect(HTTPRequest(method: "POST", path: "/echo", body: Array("hi".utf8)).encoded(host: "h") == Array("POST /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi".utf8))
    }
}
