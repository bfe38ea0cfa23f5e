import Foundation
@testable import Testbed
@testable import TestbedCore
import Testing

@Suite("Console cursor and pattern matching")
struct ConsoleTests {
    let log = Array("boot\n[    1.0] Run /sbin/init as init process\nnodeos: phase kernel 1.000ms\nKernel panic - not syncing\n".utf8)

    @Test("literal text matches at its byte offset, with its line")
    func literal() throws {
        let match = try #require(try ConsoleMatcher.firstMatch(in: log, from: 0, success: ["Run /sbin/init"], failure: []))
        #expect(match.offset == 15)
        #expect(match.end == 15 + "Run /sbin/init".utf8.count)
        #expect(match.line == "[    1.0] Run /sbin/init as init process")
        #expect(!match.isFailure)
    }

    @Test("the earliest match wins, whichever list it is in")
    func earliest() throws {
        let match = try #require(try ConsoleMatcher.firstMatch(in: log, from: 0, success: ["Kernel panic"], failure: ["nodeos: phase"]))
        #expect(match.isFailure)
        #expect(match.pattern == "nodeos: phase")
    }

    @Test("on a tie a failure pattern wins")
    func tie() throws {
        let match = try #require(try ConsoleMatcher.firstMatch(in: log, from: 0, success: ["Kernel"], failure: ["Kernel panic"]))
        #expect(match.isFailure)
    }

    @Test("matching starts at the cursor")
    func fromCursor() throws {
        let second = Array("ok\nok\n".utf8)
        let first = try #require(try ConsoleMatcher.firstMatch(in: second, from: 0, success: ["ok"], failure: []))
        let next = try #require(try ConsoleMatcher.firstMatch(in: second, from: first.end, success: ["ok"], failure: []))
        #expect(first.offset == 0)
        #expect(next.offset == 3)
        #expect(try ConsoleMatcher.firstMatch(in: second, from: next.end, success: ["ok"], failure: []) == nil)
    }

    @Test("regular expressions anchor at line starts")
    func regex() throws {
        let match = try #require(try ConsoleMatcher.firstMatch(in: log, from: 0, success: [.regex(#"^nodeos: phase ([a-z]+) [0-9.]+ms$"#)], failure: []))
        #expect(match.text == "nodeos: phase kernel 1.000ms")
        #expect(try ConsoleMatcher.firstMatch(in: log, from: 0, success: [.regex(#"^init"#)], failure: []) == nil)
    }

    @Test("a bad regular expression is an error")
    func badRegex() {
        #expect(throws: (any Error).self) { try ConsoleMatcher.firstMatch(in: log, from: 0, success: [.regex("(")], failure: []) }
    }

    @Test("a waiting expectation sees text that arrives later, even split across chunks")
    func waitsForLaterText() async throws {
        let console = ConsoleLog()
        console.append(Array("early\n".utf8))
        async let match = console.firstMatch(from: .start, success: ["nodeos: ready"], failure: ["Kernel panic"])
        try await Task.sleep(for: .milliseconds(20))
        console.append(Array("nodeos: re".utf8))
        try await Task.sleep(for: .milliseconds(20))
        console.append(Array("ady 5.000ms\n".utf8))
        let found = try #require(try await match)
        #expect(found.offset == 6)
        #expect(found.line == "nodeos: ready 5.000ms")
    }

    @Test("reading through one cursor consumes nothing for another")
    func cursorsDoNotConsume() async throws {
        let console = ConsoleLog()
        console.append(Array("a\nb\na\n".utf8))
        let one = try await console.firstMatch(from: .start, success: ["a"], failure: [])
        let two = try await console.firstMatch(from: .start, success: ["a"], failure: [])
        #expect(one == two)
        let later = try await console.firstMatch(from: ConsoleCursor(offset: one!.end), success: ["a"], failure: [])
        #expect(later?.offset == 4)
    }

    @Test("a closed console ends the wait with no match")
    func closed() async throws {
        let console = ConsoleLog()
        async let match = console.firstMatch(from: .start, success: ["never"], failure: [])
        try await Task.sleep(for: .milliseconds(20))
        console.close(reason: "the machine stopped")
        #expect(try await match == nil)
        #expect(console.closedReason == "the machine stopped")
    }

    @Test("a deadline ends the wait with a TimeoutError")
    func deadline() async throws {
        let console = ConsoleLog()
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: TimeoutError.self) {
            try await withDeadline(.milliseconds(100), "waiting") {
                try await console.firstMatch(from: .start, success: ["never"], failure: [])
            }
        }
        // Generous: under a loaded 2-core host the pool may be busy; the point is that it ends.
        #expect(clock.now - start < .seconds(30))
    }

    @Test("line handlers see every complete line once, with offsets")
    func lineHandlers() {
        let console = ConsoleLog()
        let seen = LockedLines()
        console.onLine { line, offset, _ in seen.append("\(offset):\(line)") }
        console.append(Array("one\r\ntw".utf8))
        console.append(Array("o\nthree".utf8))
        #expect(seen.lines == ["0:one", "5:two"])
        #expect(console.lastLines(2) == ["two", "three"])
    }
}

final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ line: String) { lock.lock(); storage.append(line); lock.unlock() }
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return storage }
}

@Suite("Default console checks")
struct DefaultCheckTests {
    func fires(_ check: ConsoleCheck, _ line: String) throws -> Bool {
        try ConsoleMatcher.firstMatch(in: Array((line + "\n").utf8), from: 0, success: [], failure: [check.pattern]) != nil
    }

    @Test("each check fires on its sign and not on ordinary lines")
    func checks() throws {
        #expect(try fires(.kernelPanic, "[    2.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100"))
        #expect(try fires(.kernelOops, "[    3.0] Oops: 0002 [#1] SMP"))
        #expect(try fires(.kernelBug, "[    3.0] BUG: kernel NULL pointer dereference, address: 0000000000000000"))
        #expect(try fires(.kernelWarning, "[    3.0] WARNING: CPU: 0 PID: 1 at fs/ext4/inode.c:1 ext4_x+0x1/0x2"))
        #expect(try fires(.outOfMemory, "[   9.0] Out of memory: Killed process 88 (node)"))
        #expect(try fires(.initUncaught, "nodeos: error init: uncaught exception: TypeError: x is not a function"))
        #expect(try fires(.initDied, "Node.js v24.19.0"))
        #expect(try fires(.serviceCrashLoop, "nodeos: error service web: crash loop (5 restarts in 60 s), not restarted again"))
        for check in ConsoleCheck.defaults {
            #expect(try !fires(check, "nodeos: ready 541.002ms boot=3f0c"), "\(check.name)")
            #expect(try !fires(check, "Welcome to Node.js v24.19.0."), "\(check.name)")
        }
        #expect(Set(ConsoleCheck.defaults.map(\.name)).count == ConsoleCheck.defaults.count)
    }
}
