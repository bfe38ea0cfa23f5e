import Foundation
import Synchronization
@testable import Testbed
import TestbedCore
import Testing

@Suite("Digests for seals")
struct SealDigestTests {
    @Test("SHA-256 matches FIPS 180-2's vectors")
    func sha256() {
        #expect(Digest.hex(Digest.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.hex(Digest.sha256([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Digest.hex(Digest.sha256(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test("HMAC-SHA256 matches RFC 4231's test cases 1, 2 and 6")
    func hmac() {
        let one = Digest.hmacSHA256(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8))
        #expect(Digest.hex(one) == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        let two = Digest.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(Digest.hex(two) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // A key longer than the block is hashed first.
        let six = Digest.hmacSHA256(key: [UInt8](repeating: 0xaa, count: 131),
                                    message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
        #expect(Digest.hex(six) == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    @Test("hex text turns back into bytes; anything else is refused")
    func hexBytes() {
        #expect(Digest.bytes(hex: "00ff10Ab") == [0, 255, 16, 171])
        #expect(Digest.bytes(hex: "abc") == nil)
        #expect(Digest.bytes(hex: "zz") == nil)
    }
}

@Suite("Sealed console lines")
struct SealedLineTests {
    let key = Digest.bytes(hex: "00112233445566778899aabbccddeeff")!

    /// Lines as init prints them for `boot`, sequence numbers from 1.
    func sealed(_ bodies: [String], boot: String) -> [String] {
        (["nodeos: boot \(boot)"] + bodies).enumerated().map { index, body in
            body + SealedLineReader.seal(body, key: key, bootID: boot, sequence: index + 1)
        }
    }

    @Test("init's sealed lines are trusted and come back without their seal")
    func trusted() {
        var reader = SealedLineReader(key: key)
        let lines = sealed(["nodeos: phase kernel 301.220ms", "nodeos: ready 541.002ms boot=b1"], boot: "b1")
        #expect(reader.read(lines[0]) == .trusted("nodeos: boot b1"))
        #expect(reader.read(lines[1]) == .trusted("nodeos: phase kernel 301.220ms"))
        #expect(reader.read(lines[2]) == .trusted("nodeos: ready 541.002ms boot=b1"))
        #expect(reader.bootID == "b1")
        #expect(reader.read("[    0.000] Linux version 6.1") == .other)
    }

    @Test("a console user's lines are not init's: unsealed, wrongly sealed, replayed or from an old boot")
    func forged() {
        var reader = SealedLineReader(key: key)
        let first = sealed(["nodeos: phase kernel 1.000ms", "nodeos: error config: real"], boot: "b1")
        for line in first { #expect(reader.read(line) != .forged("")) }
        // Printed by a user: no seal, a made-up seal, another key's seal.
        guard case .forged = reader.read("nodeos: ready 0.001ms") else { Issue.record("unsealed line trusted"); return }
        guard case .forged = reader.read("nodeos: error config: fake ~9.0123456789abcdef") else { Issue.record("made-up seal trusted"); return }
        let otherKey = "nodeos: error config: fake" + SealedLineReader.seal("nodeos: error config: fake", key: [1, 2, 3], bootID: "b1", sequence: 9)
        guard case .forged = reader.read(otherKey) else { Issue.record("another key's seal trusted"); return }
        // A real line seen earlier, printed again.
        guard case .forged = reader.read(first[2]) else { Issue.record("replayed line trusted"); return }
        // A real line with its text changed keeps a seal that no longer fits.
        guard case .forged = reader.read(first[2].replacingOccurrences(of: "real", with: "fake")) else { Issue.record("altered line trusted"); return }
        // After a reboot the old boot's lines (its boot line included) are dead.
        let second = sealed(["nodeos: ready 2.000ms"], boot: "b2")
        #expect(reader.read(second[0]) == .trusted("nodeos: boot b2"))
        guard case .forged = reader.read(first[0]) else { Issue.record("an old boot's line trusted"); return }
        guard case .forged = reader.read(first[1]) else { Issue.record("an old boot's phase trusted"); return }
        #expect(reader.read(second[1]) == .trusted("nodeos: ready 2.000ms"))
    }

    @Test("text a user prints in front of init's line on the same console line is dropped")
    func prefixed() {
        var reader = SealedLineReader(key: key)
        let lines = sealed(["nodeos: phase homes 9.000ms"], boot: "b1")
        _ = reader.read(lines[0])
        #expect(reader.read("nodeos: error x: fake" + lines[1]) == .trusted("nodeos: phase homes 9.000ms"))
    }

    @Test("a new key is 32 hex digits and different every time")
    func keys() {
        let a = SealedLineReader.newKeyHex()
        #expect(a.count == 32 && Digest.bytes(hex: a)?.count == 16)
        #expect(a != SealedLineReader.newKeyHex())
    }
}

@Suite("The accelerator decision")
struct AcceleratorDecisionTests {
    let host = AcceleratorHost(host: "h", kernel: "6.1.0", qemu: "7.2.0")

    func verdicts() -> AcceleratorVerdicts {
        AcceleratorVerdicts(path: FileManager.default.temporaryDirectory.appendingPathComponent("accel-\(UUID().uuidString).json").path)
    }

    final class Counter: Sendable {
        let boots = Atomic<Int>(0)
    }

    @Test("QEMU refusing KVM is an answer: remembered, and no second process probes again")
    func refusalRemembered() async {
        let store = verdicts()
        defer { try? FileManager.default.removeItem(atPath: store.path) }
        let counter = Counter()
        let boot: @Sendable () async -> ProbeOutcome = {
            counter.boots.add(1, ordering: .relaxed)
            return .startFailed("internal error: qemu unexpectedly closed the monitor: qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0")
        }
        let first = await AcceleratorProbe.decide(host: host, kvmOffered: true, forced: nil, verdicts: store, boot: boot)
        let second = await AcceleratorProbe.decide(host: host, kvmOffered: true, forced: nil, verdicts: store, boot: boot)
        #expect(first.accelerator == .tcg && first.probed)
        #expect(second.accelerator == .tcg && !second.probed)
        #expect(counter.boots.load(ordering: .relaxed) == 1)
        #expect(first.reason.contains("MSR"))
    }

    @Test("a verdict is per host, kernel and QEMU version")
    func keyedByHost() async {
        let store = verdicts()
        defer { try? FileManager.default.removeItem(atPath: store.path) }
        _ = await AcceleratorProbe.decide(host: host, kvmOffered: true, forced: nil, verdicts: store) { .reachedInit("ok") }
        var newerQEMU = host
        newerQEMU.qemu = "8.0.0"
        let counter = Counter()
        let again = await AcceleratorProbe.decide(host: newerQEMU, kvmOffered: true, forced: nil, verdicts: store) {
            counter.boots.add(1, ordering: .relaxed)
            return .hung("no init")
        }
        #expect(again.probed && again.accelerator == .tcg)
        #expect(store.verdict(for: host)?.accelerator == .kvm)
        #expect(store.verdict(for: newerQEMU)?.accelerator == .tcg)
    }

    @Test("a start failure that does not blame KVM decides nothing for next time")
    func inconclusive() async {
        let store = verdicts()
        // As the probe sees it: libvirt's operation (naming the probe's domain) and its message.
        let message = "libvirt: starting domain 'accel-probe' failed: Cannot access storage file '/nope/vmlinux': No such file or directory (code 38 system-error, domain 10)"
        let outcome = ProbeOutcome.startFailed(message)
        #expect(outcome == .inconclusive("the probe could not start: " + message))
        let decision = await AcceleratorProbe.decide(host: host, kvmOffered: true, forced: nil, verdicts: store) { outcome }
        #expect(decision.accelerator == .tcg)
        #expect(store.verdict(for: host) == nil)
    }

    @Test("no KVM offered, or NODEOS_ACCEL set: no probe")
    func noProbe() async {
        let store = verdicts()
        let none = await AcceleratorProbe.decide(host: host, kvmOffered: false, forced: nil, verdicts: store) { .reachedInit("unexpected") }
        #expect(none.accelerator == .tcg && !none.probed)
        let forced = await AcceleratorProbe.decide(host: host, kvmOffered: true, forced: "kvm", verdicts: store) { .hung("unexpected") }
        #expect(forced.accelerator == .kvm && !forced.probed)
    }
}

@Suite("Bounded console")
struct BoundedConsoleTests {
    @Test("a flood keeps memory bounded; an expectation after it still matches; old cursors say what they skipped")
    func flood() async throws {
        let log = ConsoleLog(retainedBytes: 1 << 20, maxLineBytes: 4096)
        let line = Array(String(repeating: "x", count: 99).utf8) + [UInt8(ascii: "\n")]
        let chunk = Array([[UInt8]](repeating: line, count: 640).joined())  // 64000 bytes
        let early = ConsoleCursor(offset: log.count)
        // 62.5 MiB; NODEOS_CONSOLE_UNIT_FLOOD_CHUNKS=16777 makes it 1 GiB.
        let chunks = Int(ProcessInfo.processInfo.environment["NODEOS_CONSOLE_UNIT_FLOOD_CHUNKS"] ?? "") ?? 1024
        let lines = LockedLines()
        log.onLine { line, _, _ in if line.hasPrefix("nodeos: ") { lines.append(line) } }
        for _ in 0..<chunks { log.append(chunk) }
        #expect(log.count == chunks * chunk.count)
        #expect(log.bytes.count <= 2 << 20, "the log holds \(log.bytes.count) bytes")
        log.append(Array("nodeos: after the flood\n".utf8))
        let match = try #require(try await log.firstMatch(from: early, success: ["after the flood"], failure: []))
        #expect(match.offset == chunks * chunk.count + 8)
        #expect(lines.lines == ["nodeos: after the flood"])
        #expect(match.skippedBytes == log.oldestOffset)
        #expect(match.skippedBytes > 60 << 20)
        let recent = try #require(try await log.firstMatch(from: ConsoleCursor(offset: log.oldestOffset), success: ["after the flood"], failure: []))
        #expect(recent.skippedBytes == 0)
    }

    @Test("a line without an end reaches line handlers in bounded pieces")
    func endlessLine() {
        let log = ConsoleLog(retainedBytes: 1 << 20, maxLineBytes: 4096)
        let seen = LockedLines()
        log.onLine { line, _, _ in seen.append(line) }
        for _ in 0..<100 { log.append([UInt8](repeating: UInt8(ascii: "y"), count: 10_000)) }
        #expect(seen.lines.count == 100 * 10_000 / 4096)
        #expect(seen.lines.allSatisfy { $0.utf8.count == 4096 })
    }

    @Test("a match split across appends is found by the rescan")
    func splitMatch() async throws {
        let log = ConsoleLog(retainedBytes: 1 << 20, maxLineBytes: 4096)
        async let match = log.firstMatch(from: .start, success: ["needle in it"], failure: [])
        for piece in ["hay hay nee", "dle i", "n it\n"] {
            try await Task.sleep(for: .milliseconds(20))
            log.append(Array(piece.utf8))
        }
        #expect(try await match?.offset == 8)
    }
}

@Suite("Slots")
struct MachineSlotTests {
    @Test("waiting for a slot ends at its deadline, holding nothing")
    func deadline() async throws {
        let slots = Slots(limit: 1)
        try await slots.acquire()
        let clock = ContinuousClock()
        let started = clock.now
        await #expect(throws: TimeoutError.self) { try await slots.acquire(timeout: .milliseconds(200)) }
        #expect(clock.now - started < .seconds(10))
        #expect(slots.inUse == 1)
        slots.release()
        #expect(slots.inUse == 0)
    }

    @Test("a cancelled waiter takes no slot, even when one frees up later")
    func cancelled() async throws {
        let slots = Slots(limit: 1)
        try await slots.acquire()
        let waiter = Task { try await slots.acquire() }
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        slots.release()
        try await Task.sleep(for: .milliseconds(50))
        #expect(slots.inUse == 0)
    }

    @Test("waiters are served in order: a request for two is not starved by single ones")
    func fifo() async throws {
        let slots = Slots(limit: 2)
        try await slots.acquire()
        final class Order: Sendable {
            let names = Mutex<[String]>([])
            func append(_ name: String) { names.withLock { $0.append(name) } }
            var value: [String] { names.withLock { $0 } }
        }
        let order = Order()
        let pair = Task { try await slots.acquire(2); order.append("pair") }
        try await Task.sleep(for: .milliseconds(50))
        let single = Task { try await slots.acquire(); order.append("single") }
        try await Task.sleep(for: .milliseconds(50))
        #expect(order.value.isEmpty, "one slot is free, but the pair came first")
        slots.release()
        try await pair.value
        #expect(order.value == ["pair"])
        slots.release(2)
        try await single.value
        #expect(order.value == ["pair", "single"])
        #expect(slots.inUse == 1)
    }

    @Test("a request over the limit runs alone once nothing is held")
    func oversize() async throws {
        let slots = Slots(limit: 1)
        try await slots.withSlots(3) { #expect(slots.inUse == 3) }
        #expect(slots.inUse == 0)
    }
}

@Suite("Signals and children")
struct SignalTests {
    /// The signals a child would ignore, from its /proc status (`SigIgn`, hex).
    static func ignoredByChild() throws -> UInt64 {
        let result = try HostCommand("sh", ["-c", "grep SigIgn /proc/self/status"], step: "reading a child's signal mask").run()
        let hex = result.stdoutText.split(separator: ":").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return UInt64(hex, radix: 16) ?? .max
    }

    @Test("programs the testbed starts do not inherit ignored SIGINT, SIGTERM, SIGHUP or SIGQUIT")
    func childrenGetDefaults() throws {
        Cleanup.installOnce()
        let ignored = try Self.ignoredByChild()
        for signo in Cleanup.endingSignals + [SIGPIPE] {
            #expect(ignored & (1 << UInt64(signo - 1)) == 0, "a child ignores signal \(signo) (SigIgn \(String(ignored, radix: 16)))")
        }
    }

    @Test("a command that ignores SIGTERM is still killed at its deadline")
    func deadlineKills() throws {
        let clock = ContinuousClock()
        let started = clock.now
        #expect(throws: HostCommand.Failure.self) {
            try HostCommand("sh", ["-c", "trap '' TERM; exec sleep 60"], step: "a stubborn command").run(timeout: .milliseconds(300))
        }
        #expect(clock.now - started < .seconds(10))
    }
}

@Suite("The embedded driver's folder")
struct EmbedFolderTests {
    func scratch() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("embed-\(UUID().uuidString.prefix(8))").path
        return path
    }

    @Test("made private, or refused when it is a symlink, someone else's or writable by others")
    func privateFolder() throws {
        let fresh = try scratch()
        defer { try? FileManager.default.removeItem(atPath: fresh) }
        try EmbedRoot.securePrivateFolder(fresh)
        var info = stat()
        #expect(lstat(fresh, &info) == 0 && info.st_mode & 0o7777 == 0o700)

        let link = try scratch()
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: fresh)
        defer { try? FileManager.default.removeItem(atPath: link) }
        #expect(throws: TestbedError.self) { try EmbedRoot.securePrivateFolder(link) }

        let open = try scratch()
        try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: open) }
        chmod(open, 0o777)
        #expect(throws: TestbedError.self) { try EmbedRoot.securePrivateFolder(open) }

        if getuid() == 0 {
            let theirs = try scratch()
            try FileManager.default.createDirectory(atPath: theirs, withIntermediateDirectories: false)
            defer { try? FileManager.default.removeItem(atPath: theirs) }
            chown(theirs, 65534, 65534)
            chmod(theirs, 0o700)
            #expect(throws: TestbedError.self) { try EmbedRoot.securePrivateFolder(theirs) }
        }

        let older = try scratch()
        try FileManager.default.createDirectory(atPath: older, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: older) }
        chmod(older, 0o755)
        try EmbedRoot.securePrivateFolder(older)
        #expect(lstat(older, &info) == 0 && info.st_mode & 0o7777 == 0o700)
    }
}

@Suite("Compiled checks")
struct CompiledCheckTests {
    @Test("each default check fires on its sign and only from its source, literal and regex alike")
    func firing() {
        let checks = CompiledChecks(ConsoleCheck.defaults)
        #expect(checks.firing(on: "[ 2.1] Kernel panic - not syncing: x", from: .kernel) == ["kernel-panic"])
        #expect(checks.firing(on: "[ 3.0] WARNING: CPU: 0 PID: 1 at x", from: .kernel) == ["kernel-warning"])
        #expect(checks.firing(on: "node invoked oom-killer: gfp_mask=0x0", from: .kernel) == ["oom-killer"])
        #expect(checks.firing(on: "nodeos: error init: uncaught exception: x", from: .initLines) == ["init-uncaught-exception"])
        #expect(checks.firing(on: "nodeos: error init: uncaught exception: x", from: .kernel).isEmpty)
        #expect(checks.firing(on: "nodeos: ready 541.002ms boot=3f0c", from: .kernel).isEmpty)
        #expect(checks.firing(on: "nodeos: ready 541.002ms boot=3f0c", from: .initLines).isEmpty)
        #expect(CompiledChecks([ConsoleCheck(name: "bad", pattern: .regex("("))]).firing(on: "(", from: .kernel).isEmpty)
    }
}
