import Foundation
import Testbed
import Testing

/// Home volumes and config volumes on the host alone: real mkfs.ext4,
/// debugfs and e2fsck, no machine.
@Suite("Home volumes on the host")
struct HomeVolumeHostTests {
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("nodeos-hv-\(UUID().uuidString.prefix(8))")

    @Test("files injected from memory and from a folder read back byte for byte")
    func injectAndReadBack() throws {
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("src")
        try FileManager.default.createDirectory(at: source.appendingPathComponent("deep/er"), withIntermediateDirectories: true)
        try Data("from a folder\n".utf8).write(to: source.appendingPathComponent("deep/er/file.txt"))
        let binary = Data((0..<4096).map { UInt8($0 % 251) })
        let home = try HomeVolume.create(user: "alice", uid: 1000, sizeMiB: 16, files: ["bin.dat": binary], from: source, in: work)
        #expect(home.serial == "home-alice")
        #expect(try home.readFile("bin.dat") == binary)
        #expect(try home.readFile("deep/er/file.txt") == Data("from a folder\n".utf8))
        #expect(try Set(home.listDirectory()).isSuperset(of: ["bin.dat", "deep"]))
        #expect(try home.check().clean)
        #expect(try !home.needsRecovery())
        #expect(throws: HomeVolume.Error.self) { try home.readFile("missing.txt") }
    }

    @Test("bad input is refused with a message naming what is wrong")
    func badInput() throws {
        defer { try? FileManager.default.removeItem(at: work) }
        let badName = #expect(throws: HomeVolume.Error.self) { try HomeVolume.create(user: "Alice!", uid: 1000, in: work) }
        #expect(badName?.description.contains("'Alice!'") == true)
        let escape = #expect(throws: HomeVolume.Error.self) {
            try HomeVolume.create(user: "bob", uid: 1001, files: ["../outside": Data()], in: work)
        }
        #expect(escape?.description.contains("../outside") == true)
        let tiny = #expect(throws: HomeVolume.Error.self) { try HomeVolume.create(user: "bob", uid: 1001, sizeMiB: 1, in: work) }
        #expect(tiny?.description.contains("sizeMiB") == true)
    }

    @Test("a config volume is sorted JSON, NUL-padded to 512 bytes")
    func configVolume() throws {
        var config = BootConfig(hostname: "box", registry: "http://10.0.2.2:4873/")
        config.users["alice"] = .init(uid: 1000, packages: ["@nodeos/hello-cli"])
        let json = String(decoding: try config.json(), as: UTF8.self)
        #expect(json == #"{"hostname":"box","registry":"http:\/\/10.0.2.2:4873\/","users":{"alice":{"packages":["@nodeos\/hello-cli"],"uid":1000}}}"#)
        let bytes = BootConfig.volumeBytes(json: try config.json())
        #expect(bytes.count % 512 == 0)
        #expect(bytes.suffix(from: try config.json().count).allSatisfy { $0 == 0 })
    }

    @Test("password hashes are salted scrypt in the guest's format")
    func passwordHash() throws {
        let a = try BootConfig.hashPassword("s3cret", cost: 1024)
        let b = try BootConfig.hashPassword("s3cret", cost: 1024)
        #expect(a.hasPrefix("scrypt$1024$8$1$"))
        #expect(a != b)
        #expect(a.split(separator: "$").count == 6)
    }
}
