import Foundation

/// An HTTP/1.1 response read whole from a connection the server closed
/// (the client asks for `Connection: close`): status, headers, body, with
/// chunked transfer coding undone.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    public var reason: String
    /// Header names in lower case, in order.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public var text: String { String(decoding: body, as: UTF8.self) }

    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name == wanted }?.value
    }

    public static func == (a: HTTPResponse, b: HTTPResponse) -> Bool {
        a.status == b.status && a.reason == b.reason && a.body == b.body && a.headers.elementsEqual(b.headers) { $0 == $1 }
    }

    public struct Malformed: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Parses everything the server sent.
    public init(parsing bytes: [UInt8]) throws(Malformed) {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = bytes.firstRange(of: separator) else {
            throw Malformed(description: bytes.isEmpty ? "the server closed the connection without answering" : "no end of headers in \(bytes.count) bytes")
        }
        let head = String(decoding: bytes[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = head[0].split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]) else {
            throw Malformed(description: "not an HTTP/1 status line: \(head[0].prefix(100))")
        }
        self.status = status
        self.reason = statusLine.count > 2 ? String(statusLine[2]) : ""
        self.headers = head.dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let rest = Array(bytes[end.upperBound...])
        if headers.contains(where: { $0.name == "transfer-encoding" && $0.value.lowercased().contains("chunked") }) {
            body = try Self.dechunk(rest)
        } else if let length = headers.first(where: { $0.name == "content-length" }).flatMap({ Int($0.value) }) {
            guard rest.count >= length else { throw Malformed(description: "the body ended after \(rest.count) of \(length) bytes") }
            body = Array(rest.prefix(length))
        } else {
            body = rest
        }
    }

    static func dechunk(_ bytes: [UInt8]) throws(Malformed) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while true {
            guard let lineEnd = bytes[i...].firstRange(of: [13, 10]) else { throw Malformed(description: "a chunk size line is cut off") }
            let sizeText = String(decoding: bytes[i..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw Malformed(description: "a bad chunk size '\(sizeText.prefix(20))'")
            }
            i = lineEnd.upperBound
            if size == 0 { return out }
            guard bytes.count >= i + size else { throw Malformed(description: "a chunk is cut off") }
            out += bytes[i..<(i + size)]
            i += size + 2
        }
    }
}

/// The request an `http` step or ``HTTPResponse`` client sends.
public struct HTTPRequest: Sendable, Equatable {
    public var method: String
    public var path: String
    public var headers: [String: String]
    public var body: [UInt8]

    public init(method: String = "GET", path: String = "/", headers: [String: String] = [:], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
    }

    /// The bytes on the wire to `host`, asking the server to close after answering.
    public func encoded(host: String) -> [UInt8] {
        var lines = ["\(method) \(path) HTTP/1.1", "Host: \(host)", "Connection: close"]
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) where !["host", "connection", "content-length"].contains(name.lowercased()) {
            lines.append("\(name): \(value)")
        }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) { lines.append("Content-Length: \(body.count)") }
        return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8) + body
    }
}
