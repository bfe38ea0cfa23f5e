// README.md's example ("Using the framework from `swift test`"), verbatim,
// so it compiles and runs with the integration tests; `README example` below
// fails when the two drift apart.
import Foundation
import Testbed
import TestbedTesting
import Testing

@Suite(.requiresNodeOSImage)   // skipped with "run make image" locally; fails in CI (CI=true)
struct MyImageTests {
    @Test func homesPersist() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("homes-\(UUID())")
        defer { try? FileManager.default.removeItem(at: work) }
        let alice = try HomeVolume.create(user: "alice", uid: 1000, files: ["hi.txt": Data("hi\n".utf8)], in: work)
        try await withMachine({ $0.attach(alice) }) { machine in
            #expect(try await machine.succeed("cat hi.txt", user: "alice") == "hi\n")
            try await machine.succeed("node -e \"require('fs').writeFileSync('new.txt', 'x')\"", user: "alice")
            let beforeReboot = machine.console.mark()
            try await machine.reboot()   // returns once the new boot's agent answers
            // Read from the mark: the new boot's ready line, not the first boot's.
            _ = try await machine.console.expect(success: ["nodeos: ready"], failure: ["Kernel panic"],
                                                 from: beforeReboot, timeout: .seconds(60))
            #expect(try await machine.succeed("cat new.txt", user: "alice") == "x")
            try await machine.shutdown()
        }
        #expect(try alice.readFile("new.txt") == Data("x".utf8))
        #expect(try alice.check().clean)            // e2fsck, after journal replay
    }
}

/// The README's example is this file's, character for character.
@Suite("README example")
struct ReadmeExampleTests {
    static let thisFile = URL(fileURLWithPath: #filePath)
    static let readme = thisFile.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("README.md")

    @Test("the Swift example in README.md is the code above")
    func matchesTheReadme() throws {
        let readme = try String(contentsOf: Self.readme, encoding: .utf8)
        let section = try #require(readme.range(of: "## Using the framework from `swift test`"), "README.md lost its section on swift test")
        let open = try #require(readme.range(of: "```swift\n", range: section.upperBound..<readme.endIndex), "no ```swift block in that section")
        let close = try #require(readme.range(of: "\n```", range: open.upperBound..<readme.endIndex), "the ```swift block is not closed")
        let example = String(readme[open.upperBound..<close.lowerBound])
        let source = try String(contentsOf: Self.thisFile, encoding: .utf8)
        #expect(source.contains("\n" + example + "\n"),
                "README.md's Swift example differs from \(Self.thisFile.lastPathComponent): copy the one into the other")
    }
}
