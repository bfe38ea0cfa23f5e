// Packs a package folder into the .tgz npm expects, byte for byte the same on
// every machine: a ustar archive with every entry under `package/`, sorted by
// path, mtime fixed, uid/gid 0, modes 0644/0755, gzipped with a fixed header.
//
// The gzip stream is DEFLATE written here (see `Deflate`), not zlib: zlib's
// output may change between zlib versions, and a fixture's `integrity` must
// not depend on which machine packed it.

import Foundation

/// A file to put in a tarball: its path below `package/`, contents and mode.
struct TarEntry: Sendable, Equatable {
    var path: String
    var contents: [UInt8]
    var executable: Bool
}

enum Tarball {
    /// The mtime npm itself writes into packed tarballs (1985-10-26T08:15:00Z),
    /// chosen so that packing is reproducible.
    static let fixedMTime = 499_162_500

    /// Reads the package folder at `directory` and packs it.
    ///
    /// Skips `node_modules`, `.git` and `.DS_Store`; a file is 0755 when it is
    /// executable on disk or named in the manifest's `bin`, else 0644.
    static func pack(directory: URL, binPaths: Set<String> = []) throws -> [UInt8] {
        try gzip(tar(entries: entries(in: directory, binPaths: binPaths)))
    }

    static func entries(in directory: URL, binPaths: Set<String>) throws -> [TarEntry] {
        let fm = FileManager.default
        let root = directory.standardizedFileURL.path
        guard let walker = fm.enumerator(atPath: root) else {
            throw RegistryError.unreadable(path: root, reason: "not a directory")
        }
        var entries: [TarEntry] = []
        while let relative = walker.nextObject() as? String {
            let name = (relative as NSString).lastPathComponent
            if name == "node_modules" || name == ".git" {
                walker.skipDescendants()
                continue
            }
            if name == ".DS_Store" { continue }
            let full = root + "/" + relative
            let attributes = try fm.attributesOfItem(atPath: full)
            guard attributes[.type] as? FileAttributeType == .typeRegular else { continue }
            let contents = try [UInt8](Data(contentsOf: URL(fileURLWithPath: full)))
            let permissions = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0o644
            let executable = permissions & 0o100 != 0 || binPaths.contains(normalised(relative))
            entries.append(TarEntry(path: relative, contents: contents, executable: executable))
        }
        return entries
    }

    /// Strips a leading "./" so bin paths from package.json match walked paths.
    static func normalised(_ path: String) -> String {
        var path = path
        while path.hasPrefix("./") { path.removeFirst(2) }
        return path
    }

    /// A ustar archive of `entries` (sorted by path) under `package/`.
    static func tar(entries: [TarEntry]) throws -> [UInt8] {
        var out: [UInt8] = []
        for entry in entries.sorted(by: { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }) {
            out += try header(
                path: "package/" + entry.path,
                size: entry.contents.count,
                mode: entry.executable ? 0o755 : 0o644
            )
            out += entry.contents
            out += [UInt8](repeating: 0, count: (512 - entry.contents.count % 512) % 512)
        }
        out += [UInt8](repeating: 0, count: 1024)
        return out
    }

    private static func header(path: String, size: Int, mode: Int) throws -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        let (prefix, name) = try split(path)
        func put(_ bytes: some Collection<UInt8>, at offset: Int) {
            for (i, byte) in bytes.enumerated() { block[offset + i] = byte }
        }
        func octal(_ value: Int, width: Int) -> [UInt8] {
            let digits = String(value, radix: 8)
            return Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8) + [0]
        }
        put(name.utf8, at: 0)
        put(octal(mode, width: 8), at: 100)
        put(octal(0, width: 8), at: 108)  // uid
        put(octal(0, width: 8), at: 116)  // gid
        put(octal(size, width: 12), at: 124)
        put(octal(fixedMTime, width: 12), at: 136)
        put([UInt8](repeating: 0x20, count: 8), at: 148)  // checksum counts as spaces
        block[156] = UInt8(ascii: "0")  // regular file
        put("ustar\0".utf8, at: 257)
        put("00".utf8, at: 263)
        put(prefix.utf8, at: 345)
        let checksum = block.reduce(0) { $0 + Int($1) }
        put(octal(checksum, width: 7) + [0x20], at: 148)
        return block
    }

    /// ustar keeps names of up to 100 bytes, plus a prefix of up to 155 split at a "/".
    private static func split(_ path: String) throws -> (prefix: String, name: String) {
        let bytes = Array(path.utf8)
        if bytes.count <= 100 { return ("", path) }
        for (i, byte) in bytes.enumerated().reversed() where byte == UInt8(ascii: "/") {
            if i <= 155 && bytes.count - i - 1 <= 100 {
                return (String(decoding: bytes[..<i], as: UTF8.self), String(decoding: bytes[(i + 1)...], as: UTF8.self))
            }
        }
        throw RegistryError.unreadable(path: path, reason: "path too long for a ustar archive")
    }

    /// A gzip member (RFC 1952) of `data`: mtime 0, no name, OS "unknown".
    static func gzip(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xFF]
        out += Deflate.compress(data)
        out += CRC32.checksum(data).littleEndianBytes
        out += UInt32(truncatingIfNeeded: data.count).littleEndianBytes
        return out
    }
}

/// CRC-32 (IEEE 802.3, reflected), as gzip's trailer needs.
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ data: some Collection<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}

extension UInt32 {
    fileprivate var littleEndianBytes: [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: self >> ($0 * 8)) } }
}
