import Foundation
import Testbed
import TestbedTesting
import Testing

extension Reliability {
    /// Checks that fire on real guest events, and verdicts no guest can fake.
    @Suite("Checks that fire, verdicts no guest can fake")
    struct Trust {
        /// Polls until one of the machine's problems contains `text`.
        static func waitForProblem(_ machine: Machine, containing text: String, timeout: Duration) async throws -> String {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if let found = await machine.problems.first(where: { $0.contains(text) }) { return found }
                try await Task.sleep(for: .milliseconds(200))
            }
            throw CheckFailed(message: "no problem mentioning '\(text)' within \(timeout); problems: \(await machine.problems)")
        }

        @Test("a warning-level WARNING record below the console's log level is reported by the kernel-warning check")
        func kernelWarning() async throws {
            try await injecting("kernel WARNING record below the console log level", category: "guest") { notes, _ in
                try await withMachine(GuestFaults.faulty, checkProblems: false) { machine in
                    let record = "WARNING: CPU: 0 PID: 1 at nodeos/test-fault.c:1 injected_warning+0x0/0x10"
                    _ = try await machine.request("testFault", ["kind": "kmsg", "level": 4, "text": .string(record)])
                    let problem = try await Self.waitForProblem(machine, containing: "kernel-warning", timeout: .seconds(60))
                    try check(problem.contains("injected_warning"), "the problem does not quote the record: \(problem)")
                    // It came through the kernel log: the quiet console never showed it.
                    try check(!machine.console.text.contains("injected_warning"), "the record reached the console, so the test proves nothing")
                    notes.say(problem)
                }
            }
        }

        @Test("a process that exhausts the guest's memory is reported by the oom-killer check")
        func outOfMemory() async throws {
            try await injecting("a guest process exhausts memory", category: "guest") { notes, _ in
                try await withMachine(checkProblems: false) { machine in
                    // Volunteers as the OOM killer's victim, then takes memory until it is killed.
                    let hog = "require('fs').writeFileSync('/proc/self/oom_score_adj', '1000'); const kept = []; for (;;) kept.push(Buffer.alloc(1 << 20, 1))"
                    let result = try await machine.execute(["node", "-e", hog], timeout: .seconds(300))
                    try check(result.signal == "SIGKILL", "the hog was not killed by the kernel: \(result)")
                    let problem = try await Self.waitForProblem(machine, containing: "oom-killer", timeout: .seconds(60))
                    // The machine is fine afterwards.
                    try check(try await machine.succeed(["node", "-p", "'alive'"]) == "alive\n")
                    notes.say(problem)
                }
            }
        }

        @Test("a console user printing init's lines, or replaying a real one, changes no verdict")
        func forgedLines() async throws {
            try await injecting("console user prints nodeos: ready / error lines", category: "security") { notes, _ in
                try await withMachine { machine in
                    let before = await machine.bootReport()
                    _ = try await machine.console.expect(success: ["console shell on ttyS0"], timeout: .seconds(120))
                    let sealed = try #require(machine.console.text.split(separator: "\n").first { $0.contains("nodeos: phase homes") && $0.contains(" ~") },
                                              "no sealed homes phase line on the console")
                    let replay = String(sealed).trimmingCharacters(in: .whitespacesAndNewlines)
                    let mark = machine.console.mark()
                    for line in ["nodeos: error config: forged by a console user", "nodeos: ready 0.001ms boot=forged",
                                 "nodeos: error init: uncaught exception: forged", replay] {
                        try await machine.console.send("echo \(line)\n")
                    }
                    // The quotes keep the typed command (echoed by the terminal) from matching its output.
                    try await machine.console.send("echo typed-''all\n")
                    _ = try await machine.console.expect(success: ["typed-all"], failure: [], from: mark, timeout: .seconds(120))
                    let after = await machine.bootReport()
                    let problems = await machine.problems
                    try check(problems.isEmpty, "forged lines became problems: \(problems)")
                    try check(after.phases.map(\.name) == before.phases.map(\.name), "the phases changed: \(before.phases) -> \(after.phases)")
                    try check(after["ready"] == before["ready"], "the ready time changed: \(String(describing: before["ready"])) -> \(String(describing: after["ready"]))")
                    try check(machine.forgedConsoleLines >= 4, "only \(machine.forgedConsoleLines) forged lines were noticed")
                    notes.figure("forgedLinesIgnored", Double(machine.forgedConsoleLines))
                    notes.say("\(machine.forgedConsoleLines) lines that looked like init's were ignored (a replayed sealed line among them); no problem, phases unchanged")
                }
            }
        }

        @Test("a guest flooding its console: the testbed's memory stays bounded, an expectation after the flood still matches")
        func consoleFlood() async throws {
            // The serial console carries ~0.25-0.5 MB/s under TCG: 16 MiB (four times the ring) keeps the case
            // near a minute; NODEOS_CONSOLE_FLOOD_BYTES and _LINE_BYTES (0: one endless line) make it bigger.
            let environment = ProcessInfo.processInfo.environment
            let floodBytes = Int(environment["NODEOS_CONSOLE_FLOOD_BYTES"] ?? "") ?? (16 << 20)
            let lineBytes = Int(environment["NODEOS_CONSOLE_FLOOD_LINE_BYTES"] ?? "") ?? 100
            try await injecting("console flood (\(floodBytes >> 20) MiB, \(lineBytes == 0 ? "one endless line" : "lines of \(lineBytes) B"))", category: "guest") { notes, _ in
                try await withMachine(GuestFaults.faulty) { machine in
                    let rssBefore = ProcessFigures.rssMiB
                    ProcessFigures.resetPeak()
                    let clock = ContinuousClock()
                    let started = clock.now
                    let mark = machine.console.mark()
                    _ = try await machine.request("testFault", ["kind": "console-flood", "bytes": .number(Double(floodBytes)), "lineBytes": .number(Double(lineBytes))])
                    let done = try await machine.console.expect(success: ["console flood done"], from: mark, timeout: .seconds(3600))
                    let took = clock.now - started
                    let peak = ProcessFigures.peakRssMiB
                    try check(machine.console.log.count - mark.offset >= floodBytes, "only \(machine.console.log.count - mark.offset) bytes arrived")
                    // The machine still answers, and the console still matches.
                    try check(try await machine.succeed(["node", "-p", "'after the flood'"]) == "after the flood\n")
                    let afterFlood = machine.console.mark()
                    try await machine.console.send("echo still-''matching\n")
                    _ = try await machine.console.expect(success: ["still-matching"], failure: [], from: afterFlood, timeout: .seconds(120))
                    let growth = peak - rssBefore
                    let onDisk = (try? FileManager.default.attributesOfItem(atPath: machine.artifacts.appendingPathComponent("console.log").path)[.size] as? Int) ?? 0
                    notes.figure("floodMiB", Double(floodBytes >> 20))
                    notes.figure("rssPeakGrowthMiB", growth)
                    notes.figure("rssAfterMiB", ProcessFigures.rssMiB)
                    notes.figure("MBps", Double(floodBytes) / 1e6 / (took.milliseconds / 1000))
                    notes.say("\(floodBytes >> 20) MiB in \(took.formattedSeconds); testbed RSS \(Int(rssBefore)) MiB before, peak +\(Int(growth)) MiB, \(Int(ProcessFigures.rssMiB)) MiB after; skipped \(done.skippedBytes) B; console.log \(onDisk >> 20) MiB on disk")
                    try check(onDisk >= floodBytes, "the console file holds \(onDisk) bytes: the full log must stay on disk")
                    // The ring holds 4 MiB (twice that before it trims) plus a line; the rest is slack.
                    try check(growth < 64, "the testbed grew \(growth) MiB during a \(floodBytes >> 20) MiB console flood")
                    try? FileManager.default.removeItem(at: machine.artifacts.appendingPathComponent("console.log"))
                }
            }
        }

        @Test("the agent reads and writes a home as its owner, never through the owner's symlinks")
        func homeSymlink() async throws {
            try await injecting("a home owner's symlink to /etc/shadow and to another home", category: "security") { notes, work in
                let alice = try HomeVolume.create(user: "alice", uid: 1000, files: ["plain.txt": Data("alice's\n".utf8)], in: work)
                let bob = try HomeVolume.create(user: "bob", uid: 1001, files: ["secret.txt": Data("bob's secret\n".utf8)], in: work)
                try await withMachine({ $0.attach(alice); $0.attach(bob) }) { machine in
                    try await machine.succeed(["node", "-e", "const fs = require('fs'); fs.symlinkSync('/etc/shadow', 'shadow.txt'); fs.symlinkSync('/home/bob/secret.txt', 'bobs.txt'); fs.symlinkSync('/etc', 'etc')"], user: "alice")
                    try check(try await machine.readFile("/home/alice/plain.txt") == Data("alice's\n".utf8), "a plain file of alice's could not be read")
                    var refused: [String] = []
                    for path in ["/home/alice/shadow.txt", "/home/alice/bobs.txt", "/home/alice/etc/passwd"] {
                        let error = try await expectMachineError("reading \(path) through alice's symlink") { _ = try await machine.readFile(path) }
                        try check(["ELOOP", "ENOTDIR"].contains(error.agentCode ?? ""), "reading \(path): \(error.message)")
                        refused.append("\(path): \(error.agentCode ?? "?")")
                    }
                    let shadowBefore = try await machine.readFile("/etc/shadow")
                    let write = try await expectMachineError("writing through alice's symlink") {
                        try await machine.writeFile("/home/alice/shadow.txt", Data("owned\n".utf8))
                    }
                    try check(write.agentCode == "ELOOP", "writing through the symlink: \(write.message)")
                    try check(try await machine.readFile("/etc/shadow") == shadowBefore, "/etc/shadow changed")
                    try await machine.shutdown()
                    notes.say(refused.joined(separator: "; ") + "; the write was refused (ELOOP)")
                }
                try check(try bob.readFile("secret.txt") == Data("bob's secret\n".utf8))
            }
        }

        @Test("a scenario needing more machines at once than may run is bad input, found before anything boots")
        func slotsExhausted() async throws {
            try await injecting("two machines at once under NODEOS_MAX_MACHINES=1", category: "input") { notes, scratch in
                let file = scratch.appendingPathComponent("pair.yaml")
                try """
                name: pair
                machines:
                  a: {}
                  b: {}
                steps:
                  - boot: a
                  - boot: b
                """.write(to: file, atomically: true, encoding: .utf8)
                let process = TestbedEnvironment.testbedProcess(["run", file.path], in: scratch)
                var environment = process.environment ?? [:]
                environment["NODEOS_MAX_MACHINES"] = "1"
                process.environment = environment
                let pipe = Pipe()
                process.standardError = pipe
                process.standardOutput = pipe
                let clock = ContinuousClock()
                let started = clock.now
                try process.run()
                let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                let took = clock.now - started
                try check(process.terminationStatus == 2, "exit \(process.terminationStatus):\n\(output)")
                try check(output.contains("pair.yaml") && output.contains("2 machines at once"), "the message does not name the file and the need:\n\(output)")
                try check(took < .seconds(60), "it took \(took)")
                notes.figure("seconds", took)
                notes.say(output.split(separator: "\n").first { $0.contains("machines at once") }.map(String.init) ?? output)
            }
        }
    }
}
