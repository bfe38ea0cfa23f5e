import Foundation
import Synchronization
import Testbed
import TestbedTesting
import Testing

var testbedBinary: URL { TestbedEnvironment.testbedBinary }

/// A `testbed` process whose stderr and stdout are read as they come.
final class TestbedProcess: @unchecked Sendable {  // Process is not Sendable; only its thread-safe accessors are used
    let process: Process
    private final class Output: Sendable {
        let text = Mutex("")
    }
    private let output = Output()

    init(_ arguments: [String], in directory: URL) throws {
        guard FileManager.default.isExecutableFile(atPath: testbedBinary.path) else {
            throw ExpectedFailure(what: "the testbed binary at \(testbedBinary.path) (run 'swift build')")
        }
        let process = TestbedEnvironment.testbedProcess(arguments, in: directory)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        self.process = process
        let output = self.output
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil; return }
            output.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    var text: String { output.text.withLock { $0 } }
    var pid: Int32 { process.processIdentifier }
    /// The embedded driver root this process made (its first).
    var embedRoot: String { "\(EmbedRoot.parent)/\(pid)-0" }

    /// Waits until the output contains `marker`, polling; throws at the deadline.
    func waitFor(_ marker: String, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while !text.contains(marker) {
            guard process.isRunning else { throw ExpectedFailure(what: "'\(marker)' before the testbed exited; it printed:\n\(text)") }
            guard ContinuousClock.now < deadline else { throw ExpectedFailure(what: "'\(marker)' within \(timeout); the testbed printed:\n\(text)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Waits for the process to exit, at most `timeout`; kills it past that.
    func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                throw ExpectedFailure(what: "the testbed to exit within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return process.terminationStatus
    }
}

extension Reliability {
    /// The testbed is killed or interrupted: the next run (or the teardown) leaves nothing behind.
    @Suite("The testbed dies or is interrupted")
    struct Interrupts {
        /// A one-machine scenario with alice's home and the fixture registry, then `steps` after the boot.
        static func scenario(_ name: String, _ steps: String) -> String {
            """
            name: \(name)
            registry: \(fixturePackages.path)
            machines:
              box:
                memory: 384MiB
                homes:
                  alice: {uid: 1000, size: 128MiB}
            steps:
              - boot
            \(steps)
            """
        }

        static let installStep = """
              - install: "@nodeos/hello-cli"
                as: alice
                timeout: 20m
            """

        static let withCommand = scenario("interrupted", """
              - succeed: node -e "setTimeout(() => {}, 600000)"
                timeout: 20m
            \(installStep)
            """)

        static let installFirst = scenario("interrupted", installStep)

        @Test("SIGKILL mid-boot leaves QEMU behind; the next run sweeps it and the dead root")
        func sigkillThenSweep() async throws {
            try await injecting("SIGKILL of the testbed mid-boot", category: "testbed") { notes, scratch in
                let victim = try TestbedProcess(["boot", "--name", "rel-killed"], in: scratch)
                try await victim.waitFor("nodeos: phase", timeout: .seconds(300))
                let root = victim.embedRoot
                kill(victim.pid, SIGKILL)
                _ = try await victim.waitForExit(timeout: .seconds(30))
                let orphans = EmbedRoot.processes(mentioning: root + "/")
                try check(!orphans.isEmpty, "expected the killed run's QEMU to outlive it (nothing to sweep otherwise)")
                try check(FileManager.default.fileExists(atPath: root))
                // The next run sweeps at start, then does its own work.
                let next = try TestbedProcess(["boot", "--json", "--name", "rel-next"], in: scratch)
                let status = try await next.waitForExit(timeout: .seconds(600))
                try check(status == 0, "the next run failed:\n\(next.text)")
                try check(EmbedRoot.processes(mentioning: root + "/").isEmpty, "QEMU \(orphans) of the killed run survived the next run")
                try check(!FileManager.default.fileExists(atPath: root), "the killed run's root \(root) is still there")
                notes.figure("orphansSwept", Double(orphans.count))
                notes.say("\(orphans.count) orphaned QEMU process(es) and the dead root swept by the next run")
            }
        }

        /// Starts `testbed run` on a scenario, waits for `marker` plus `settle`,
        /// sends `signal`, and checks the teardown: exit status, no QEMU, no root,
        /// home volumes fsck-clean after replay.
        func interrupt(_ signal: Int32, _ name: String, scenario: String, marker: String, settle: Duration) async throws {
            try await injecting("SIG\(signal == SIGINT ? "INT" : "TERM") during \(name)", category: "testbed") { notes, scratch in
                let file = scratch.appendingPathComponent("interrupted.yaml")
                try scenario.write(to: file, atomically: true, encoding: .utf8)
                let run = try TestbedProcess(["run", file.path], in: scratch)
                try await run.waitFor(marker, timeout: .seconds(600))
                try await Task.sleep(for: settle)
                let root = run.embedRoot
                let qemu = EmbedRoot.processes(mentioning: root + "/")
                try check(!qemu.isEmpty, "no QEMU running at the moment of the signal:\n\(run.text)")
                let clock = ContinuousClock()
                let sent = clock.now
                kill(run.pid, signal)
                let status = try await run.waitForExit(timeout: .seconds(120))
                let took = clock.now - sent
                try check(status == 128 + signal, "exit status \(status) after SIG\(signal):\n\(run.text)")
                try check(EmbedRoot.processes(mentioning: root + "/").isEmpty, "QEMU left running")
                try check(!FileManager.default.fileExists(atPath: root), "embed root \(root) left behind")
                var volumes = 0
                for volume in Self.volumes(under: scratch.appendingPathComponent("artifacts")) {
                    let fsck = try Self.fsckAfterReplay(volume)
                    try check(fsck.clean, "\(volume.lastPathComponent) is not clean after replay:\n\(fsck.output)")
                    volumes += 1
                }
                notes.figure("teardownS", took)
                notes.say("exit \(status) \(took.formattedSeconds) after the signal; no QEMU, no root; \(volumes) home volume(s) fsck-clean")
            }
        }

        @Test("SIGINT and SIGTERM during boot", arguments: [SIGINT, SIGTERM])
        func duringBoot(signal: Int32) async throws {
            try await interrupt(signal, "boot", scenario: Self.withCommand, marker: "▶ interrupted", settle: .milliseconds(1500))
        }

        @Test("SIGINT and SIGTERM during a command", arguments: [SIGINT, SIGTERM])
        func duringExec(signal: Int32) async throws {
            try await interrupt(signal, "exec", scenario: Self.withCommand, marker: "✓ 1. boot", settle: .seconds(3))
        }

        @Test("SIGINT and SIGTERM during an npm install", arguments: [SIGINT, SIGTERM])
        func duringInstall(signal: Int32) async throws {
            try await interrupt(signal, "npm install", scenario: Self.installFirst, marker: "✓ 1. boot", settle: .seconds(8))
        }

        static func volumes(under folder: URL) -> [URL] {
            guard let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil) else { return [] }
            return walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "ext4" && !$0.lastPathComponent.hasPrefix(".") }
        }

        /// e2fsck on a copy: the journal replayed as the next mount would, then a read-only check.
        static func fsckAfterReplay(_ volume: URL) throws -> (clean: Bool, output: String) {
            let copy = volume.deletingLastPathComponent().appendingPathComponent(".check-\(volume.lastPathComponent)")
            defer { try? FileManager.default.removeItem(at: copy) }
            try HostCommand("cp", ["--sparse=always", volume.path, copy.path], step: "copying \(volume.lastPathComponent)").run()
            _ = try HostCommand("e2fsck", ["-p", copy.path], step: "replaying \(volume.lastPathComponent)'s journal").result()
            let result = try HostCommand("e2fsck", ["-fn", copy.path], step: "checking \(volume.lastPathComponent)").result()
            return (result.status == 0, result.stdoutText + result.stderr)
        }
    }
}
