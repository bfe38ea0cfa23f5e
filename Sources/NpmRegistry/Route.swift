// What a request asks for, decided from its method and raw path alone.

/// A request to the registry, parsed from its path.
public enum Route: Equatable, Sendable {
    /// `GET /<name>`, `GET /@scope%2fname`, `GET /@scope/name`.
    case packument(name: String)
    /// `GET /<name>/<version or dist-tag>`.
    case version(name: String, versionOrTag: String)
    /// `GET /<name>/-/<basename>-<version>.tgz`.
    case tarball(name: String, filename: String)
    /// npm's own endpoints under `/-/`: ping, audit, whoami; answered harmlessly.
    case npmService(path: String)
    case notFound

    /// Parses a raw request path (percent-encoded, query allowed).
    public init(method: String, rawPath: String) {
        var path = Substring(rawPath)
        if let query = path.firstIndex(of: "?") { path = path[..<query] }
        let decoded = String(path).removingPercentEncodingLeniently
        if decoded.hasPrefix("/-/") {
            self = .npmService(path: decoded)
            return
        }
        var parts = decoded.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard !parts.isEmpty, method == "GET" || method == "HEAD" else {
            self = .notFound
            return
        }
        var name = parts.removeFirst()
        if name.hasPrefix("@") {
            guard !parts.isEmpty else {
                self = .notFound
                return
            }
            name += "/" + parts.removeFirst()
        }
        switch parts.count {
        case 0: self = .packument(name: name)
        case 1: self = .version(name: name, versionOrTag: parts[0])
        case 2 where parts[0] == "-" && parts[1].hasSuffix(".tgz"): self = .tarball(name: name, filename: parts[1])
        default: self = .notFound
        }
    }

    /// The package the request is about, for scoping faults and for the log.
    public var packageName: String? {
        switch self {
        case .packument(let name), .version(let name, _), .tarball(let name, _): return name
        case .npmService, .notFound: return nil
        }
    }

    public var isTarball: Bool {
        if case .tarball = self { return true }
        return false
    }

    /// A packument or a version document.
    public var isMetadata: Bool {
        switch self {
        case .packument, .version: true
        default: false
        }
    }
}

extension String {
    /// Percent-decodes, keeping any malformed escape as it is.
    var removingPercentEncodingLeniently: String {
        var bytes: [UInt8] = []
        var utf8 = Array(self.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2,
                let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
