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

    /// Set for a testbed run under a terminal: the `script` process holding the terminal.
    let terminal: Bool

    /// - Parameter underTerminal: run it in a pseudo-terminal of its own
    ///   (util-linux `script`), as a person's shell would; killing `script`
    ///   then closes the terminal, and the kernel hangs up on the testbed.
    init(_ arguments: [String], in directory: URL, underTerminal: Bool = false) throws {
        guard FileManager.default.isExecutableFile(atPath: testbedBinary.path) else {
            throw ExpectedFailure(what: "the testbed binary at \(testbedBinary.path) (run 'swift build')")
        }
        let process = TestbedEnvironment.testbedProcess(arguments, in: directory)
        terminal = underTerminal
        if underTerminal {
            let command = ([testbedBinary.path] + arguments).map { "'\($0)'" }.joined(separator: " ")
            process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
            process.arguments = ["-qfec", "exec \(command)", "/dev/null"]
        }
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
    /// The testbed's process id (under a terminal: `script`'s child).
    var pid: Int32 {
        guard terminal else { return process.processIdentifier }
        let children = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/task/\(process.processIdentifier)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").compactMap { Int32($0) }.first ?? -1
    }
    /// The embedded driver root this process made (its first).
    var embedRoot: String { "\(EmbedRoot.parent)/\(pid)-0" }

    /// Whether the testbed itself (not `script`) still runs: not gone and not a zombie.
    static func alive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].hasPrefix(" Z")
    }

    /// Waits until the output contains `marker`, polling; throws at the deadline.
    func waitFor(_ marker: String, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while !text.contains(marker) {
            guard process.isRunning else { throw ExpectedFailure(what: "'\(marker)' before the testbed exited; it printed:\n\(text)") }
            guard ContinuousClock.now < deadline else { throw ExpectedFailure(what: "'\(marker)' within \(timeout); the testbed printed:\n\(text)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Waits until `condition` holds, polling; throws at the deadline or when the process exits first.
    func waitUntil(_ what: String, timeout: Duration, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard process.isRunning else { throw ExpectedFailure(what: "\(what) before the testbed exited; it printed:\n\(text)") }
            guard ContinuousClock.now < deadline else { throw ExpectedFailure(what: "\(what) within \(timeout); the testbed printed:\n\(text)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// QEMU processes of this run's embedded driver for the domain `machine`.
    func qemu(of machine: String) -> [Int32] {
        let named = Set(EmbedRoot.processes(mentioning: "guest=\(machine),"))
        return EmbedRoot.processes(mentioning: embedRoot + "/").filter(named.contains)
    }

    /// Whether the agent transcript of `machine` under `artifacts` holds a request containing `text`.
    static func agentSent(_ text: String, machine: String, under artifacts: URL) -> Bool {
        guard let walker = FileManager.default.enumerator(at: artifacts, includingPropertiesForKeys: nil) else { return false }
        for case let file as URL in walker where file.lastPathComponent == "agent.jsonl" && file.deletingLastPathComponent().lastPathComponent == machine {
            let lines = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
            if lines.split(separator: "\n").contains(where: { $0.contains(#""dir":"out""#) && $0.contains(text) }) { return true }
        }
        return false
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

        /// The scenario machine's domain name.
        static let machine = "interrupted-box"

        /// What the signal waits for: an event of the run, never a fixed time.
        enum Moment {
            /// The scenario's QEMU process exists.
            case qemuRunning
            /// The agent transcript shows a request containing this text.
            case agentSent(String)
        }

        /// Starts `testbed run` on a scenario, waits for `moment`, sends
        /// `signal`, and checks the teardown: exit status, no QEMU, no root,
        /// home volumes fsck-clean after replay.
        func interrupt(_ signal: Int32, _ name: String, scenario: String, at moment: Moment) async throws {
            try await injecting("\(Self.signalName(signal)) during \(name)", category: "testbed") { notes, scratch in
                let file = scratch.appendingPathComponent("interrupted.yaml")
                try scenario.write(to: file, atomically: true, encoding: .utf8)
                let run = try TestbedProcess(["run", file.path], in: scratch)
                switch moment {
                case .qemuRunning:
                    try await run.waitUntil("the scenario's QEMU", timeout: .seconds(600)) { !run.qemu(of: Self.machine).isEmpty }
                case .agentSent(let text):
                    try await run.waitUntil("the agent request '\(text)'", timeout: .seconds(900)) {
                        TestbedProcess.agentSent(text, machine: Self.machine, under: scratch.appendingPathComponent("artifacts"))
                    }
                }
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

        static func signalName(_ signal: Int32) -> String {
            switch signal {
            case SIGINT: "SIGINT"
            case SIGTERM: "SIGTERM"
            case SIGHUP: "SIGHUP"
            case SIGQUIT: "SIGQUIT"
            default: "signal \(signal)"
            }
        }

        /// What runs when the terminal closes (once its first machine is up).
        static let hangups: [(command: String, arguments: [String])] = [
            ("boot", ["boot", "--name", "rel-hup"]),
            ("run", ["run", "SCENARIO"]),
            ("bench", ["bench", "--boots", "2", "--no-plain", "--history", "HISTORY", "--report", "REPORT"]),
        ]

        @Test("a closed terminal (SIGHUP) during boot, run and bench leaves no machine", arguments: [0, 1, 2])
        func terminalHangup(case index: Int) async throws {
            let (command, template) = Self.hangups[index]
            try await injecting("terminal closed during \(command)", category: "testbed") { notes, scratch in
                let file = scratch.appendingPathComponent("interrupted.yaml")
                try Self.withCommand.write(to: file, atomically: true, encoding: .utf8)
                let arguments = template.map {
                    switch $0 {
                    case "SCENARIO": file.path
                    case "HISTORY": scratch.appendingPathComponent("history").path
                    case "REPORT": scratch.appendingPathComponent("report.html").path
                    default: $0
                    }
                }
                let run = try TestbedProcess(arguments, in: scratch, underTerminal: true)
                // The machine is up: a QEMU of the testbed's own embedded driver runs.
                try await run.waitUntil("a QEMU of the testbed under the terminal", timeout: .seconds(600)) {
                    run.pid > 0 && !EmbedRoot.processes(mentioning: run.embedRoot + "/").isEmpty
                }
                let testbed = run.pid
                let root = run.embedRoot
                let clock = ContinuousClock()
                let closed = clock.now
                // The terminal goes away as when its window closes: the kernel hangs up on its session.
                kill(run.process.processIdentifier, SIGKILL)
                _ = try await run.waitForExit(timeout: .seconds(30))
                let deadline = clock.now + .seconds(120)
                while TestbedProcess.alive(testbed) && clock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
                let took = clock.now - closed
                try check(!TestbedProcess.alive(testbed), "the testbed (pid \(testbed)) still runs \(took) after its terminal closed")
                try check(EmbedRoot.processes(mentioning: root + "/").isEmpty, "QEMU left running after the hangup")
                try check(!FileManager.default.fileExists(atPath: root), "embed root \(root) left behind")
                notes.figure("teardownS", took)
                notes.say("\(command): the testbed exited \(took.formattedSeconds) after its terminal closed; no QEMU, no root")
            }
        }

        @Test("SIGINT, SIGTERM and SIGQUIT during boot", arguments: [SIGINT, SIGTERM, SIGQUIT])
        func duringBoot(signal: Int32) async throws {
            try await interrupt(signal, "boot", scenario: Self.withCommand, at: .qemuRunning)
        }

        @Test("SIGINT and SIGTERM during a command", arguments: [SIGINT, SIGTERM])
        func duringExec(signal: Int32) async throws {
            try await interrupt(signal, "exec", scenario: Self.withCommand, at: .agentSent("setTimeout"))
        }

        @Test("SIGINT and SIGTERM during an npm install", arguments: [SIGINT, SIGTERM])
        func duringInstall(signal: Int32) async throws {
            try await interrupt(signal, "npm install", scenario: Self.installFirst, at: .agentSent("hello-cli"))
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
