// Digests, tar and gzip: pure functions, checked against the system's tools.

import Foundation
import Testing
@testable import NpmRegistry
import TestbedCore

@Suite("Digests")
struct DigestTests {
    @Test("SHA-1 and SHA-512 match the FIPS 180 test vectors")
    func vectors() {
        #expect(Digest.hex(Digest.sha1(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(Digest.hex(Digest.sha1([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(
            Digest.hex(Digest.sha512(Array("abc".utf8)))
                == "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                + "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
        let twoBlocks = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
        #expect(
            Digest.hex(Digest.sha512(Array(twoBlocks.utf8)))
                == "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
                + "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909")
    }

    @Test("SHA-1 and SHA-512 agree with sha1sum and sha512sum at every padding boundary")
    func agreesWithCoreutils() async throws {
        for length in [55, 56, 63, 64, 111, 112, 127, 128, 1000] {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let sha1 = try await run("sha1sum", [], input: bytes).stdout.prefix(40)
            let sha512 = try await run("sha512sum", [], input: bytes).stdout.prefix(128)
            #expect(Digest.hex(Digest.sha1(bytes)) == String(sha1), "length \(length)")
            #expect(Digest.hex(Digest.sha512(bytes)) == String(sha512), "length \(length)")
        }
    }
}

@Suite("Tarballs")
struct TarballTests {
    static let entries = [
        TarEntry(path: "package.json", contents: Array(#"{"name":"x","version":"1.0.0"}"#.utf8), executable: false),
        TarEntry(path: "bin/cli.js", contents: Array("#!/usr/bin/env node\nconsole.log(1)\n".utf8), executable: true),
        TarEntry(path: "lib/" + String(repeating: "d", count: 90) + "/deep.js", contents: Array("x".utf8), executable: false),
        TarEntry(path: "empty.txt", contents: [], executable: false),
    ]

    @Test("the same entries give identical bytes, in any order")
    func deterministic() throws {
        let a = Tarball.gzip(try Tarball.tar(entries: Self.entries))
        let b = Tarball.gzip(try Tarball.tar(entries: Self.entries.reversed()))
        #expect(a == b)
        #expect(Array(a.prefix(4)) == [0x1F, 0x8B, 0x08, 0x00])
    }

    @Test("tar lists it with package/ paths, sorted, modes 0644/0755, owner 0/0, npm's fixed date")
    func tarListsIt() async throws {
        try await withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("x.tgz")
            try Data(Tarball.gzip(try Tarball.tar(entries: Self.entries))).write(to: file)
            #expect(try await run("gzip", ["-t", file.path]).status == 0)
            let listing = try await run("tar", ["-tzvf", file.path, "--utc"])
            #expect(listing.status == 0, "\(listing)")
            let lines = listing.stdout.split(separator: "\n").map(String.init)
            #expect(lines.count == 4)
            #expect(lines[0].hasPrefix("-rwxr-xr-x 0/0") && lines[0].hasSuffix("package/bin/cli.js"))
            #expect(lines[1].hasPrefix("-rw-r--r-- 0/0") && lines[1].hasSuffix("package/empty.txt"))
            #expect(lines[2].hasSuffix("/deep.js"), "a path over 100 bytes uses the ustar prefix")
            #expect(lines[3].hasSuffix("package/package.json"))
            #expect(lines.allSatisfy { $0.contains("1985-10-26 08:15") })
        }
    }

    @Test("the deflate stream round-trips through gunzip", arguments: [0, 1, 100, 70_000, 300_000])
    func deflateRoundTrips(length: Int) async throws {
        // Text-like, repetitive and incompressible stretches, as in real packages.
        var generator = SplitMix(seed: UInt64(length))
        var bytes: [UInt8] = []
        while bytes.count < length {
            switch generator.next() % 3 {
            case 0: bytes += Array("module.exports = function pad(s, n) { return s; };\n".utf8)
            case 1: bytes += [UInt8](repeating: 0, count: Int(generator.next() % 700))
            default: bytes += (0..<Int(generator.next() % 300)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            }
        }
        bytes = Array(bytes.prefix(length))
        let gz = Tarball.gzip(bytes)
        try await withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("x.gz")
            try Data(gz).write(to: file)
            let out = dir.appendingPathComponent("x")
            let unzip = try await run("/bin/sh", ["-c", "gzip -dc '\(file.path)' > '\(out.path)'"])
            #expect(unzip.status == 0, "\(unzip.stderr)")
            #expect(try [UInt8](Data(contentsOf: out)) == bytes)
        }
    }

    @Test("a tarball compresses (the fixtures are mostly zero padding)")
    func compresses() throws {
        let tar = try Tarball.tar(entries: Self.entries)
        #expect(Tarball.gzip(tar).count < tar.count / 8)
    }

    @Test("packing a folder marks bin targets executable and skips node_modules")
    func packFolder() async throws {
        try await withTemporaryDirectory { dir in
            try writePackage(
                root: dir, name: "tool", version: "1.0.0", manifest: ["bin": ["tool": "./cli.js"]],
                files: ["cli.js": "#!/usr/bin/env node\n", "node_modules/x/index.js": "", "index.js": ""])
            let folder = dir.appendingPathComponent("tool/1.0.0")
            let entries = try Tarball.entries(in: folder, binPaths: ["cli.js"])
            #expect(entries.map(\.path).sorted() == ["cli.js", "index.js", "package.json"])
            #expect(entries.first { $0.path == "cli.js" }?.executable == true)
            #expect(try Tarball.pack(directory: folder, binPaths: ["cli.js"]) == Tarball.pack(directory: folder, binPaths: ["cli.js"]))
        }
    }
}

/// A tiny deterministic PRNG for test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
