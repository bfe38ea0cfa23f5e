import Foundation
import Testbed
import TestbedTesting
import Testing

/// The reliability suite. Its cases run one at a time, so each one's leak
/// check (QEMU processes, roots, scratch folders) sees only its own traces.
@Suite("Reliability", .requiresNodeOSImage, .serialized)
struct Reliability {}

extension Reliability {
    /// The guest goes wrong: the testbed fails fast or at its deadline, and says why.
    @Suite("The guest goes wrong")
    struct GuestFaults {
        /// Test faults are opt-in per boot: `nodeos.test.faults=1`.
        static func faulty(_ spec: inout MachineSpec) {
            spec.kernelParameters.append("nodeos.test.faults=1")
        }

        @Test("a kernel panic fails the wait at once, naming the panic")
        func kernelPanic() async throws {
            try await injecting("kernel panic during boot", category: "guest") { notes, _ in
                let clock = ContinuousClock()
                let started = clock.now
                let error = try await expectMachineError("a boot whose init exits") {
                    try await withMachine({ $0.kernelParameters.append("nodeos.test.exit=1") }, checkProblems: false) { _ in }
                }
                let took = clock.now - started
                try requireExplained(error, cause: "Kernel panic")
                try check(error.kind == .failurePattern)
                // Fast: well before the agent's deadline (150 s under TCG).
                try check(took < .seconds(60), "the panic was reported after \(took)")
                notes.figure("reportedAfterS", took)
                notes.say("failed after \(took.formattedSeconds): \(error.message.prefix(120))")
            }
        }

        @Test("init that stops answering fails the command at its deadline, saying init looks hung")
        func hang() async throws {
            try await injecting("init hangs (busy loop in PID 1)", category: "guest") { notes, _ in
                try await withMachine(Self.faulty) { machine in
                    _ = try await machine.request("testFault", ["kind": "hang", "ms": 600_000])
                    let clock = ContinuousClock()
                    let started = clock.now
                    let error = try await expectMachineError("a command on a hung guest") {
                        _ = try await machine.execute(["node", "-p", "1"], timeout: .seconds(20))
                    }
                    let took = clock.now - started
                    try requireExplained(error, cause: "init looks hung")
                    try check(error.kind == .timeout)
                    try check(took >= .seconds(20) && took < .seconds(40), "the deadline was 20 s, the failure came after \(took)")
                    try check(error.consoleTail.contains { $0.contains("init stops answering") }, "the console tail lacks the last lines: \(error.consoleTail)")
                    notes.figure("failedAfterS", took)
                    notes.say(error.message)
                }
            }
        }

        @Test("an agent that dies mid-command fails the command within seconds, not at its deadline")
        func agentDies() async throws {
            try await injecting("agent dies mid-command", category: "guest") { notes, _ in
                try await withMachine(Self.faulty) { machine in
                    _ = try await machine.request("testFault", ["kind": "close-port", "afterMs": 2000])
                    let clock = ContinuousClock()
                    let started = clock.now
                    let error = try await expectMachineError("a command whose agent dies") {
                        _ = try await machine.execute(["node", "-e", "setTimeout(() => {}, 600000)"], timeout: .seconds(600))
                    }
                    let took = clock.now - started
                    try requireExplained(error, cause: "closed the agent port")
                    try check(took < .seconds(30), "the dead agent was noticed after \(took) (deadline 600 s)")
                    notes.figure("noticedAfterS", took)
                    notes.say(error.message)
                }
            }
        }

        @Test("an agent flooding its channel: the waiting command fails, host memory stays bounded, the channel recovers")
        func agentFlood() async throws {
            let floodBytes = 384 << 20
            try await injecting("agent floods its channel (\(floodBytes >> 20) MiB in one line)", category: "guest") { notes, _ in
                try await withMachine(Self.faulty) { machine in
                    let rssBefore = ProcessFigures.rssMiB
                    ProcessFigures.resetPeak()
                    let clock = ContinuousClock()
                    let started = clock.now
                    _ = try await machine.request("testFault", ["kind": "flood", "bytes": .number(Double(floodBytes))])
                    let error = try await expectMachineError("a command behind a flood") {
                        _ = try await machine.execute(["node", "-p", "'after the flood'"], timeout: .seconds(600))
                    }
                    try requireExplained(error, cause: "over the 64 MiB limit")
                    // The rest of the line is skipped; the next command gets its answer.
                    let after = try await machine.succeed(["node", "-p", "'still here'"], timeout: .seconds(600))
                    try check(after == "still here\n")
                    let took = clock.now - started
                    let growth = ProcessFigures.peakRssMiB - rssBefore
                    notes.figure("floodMiB", Double(floodBytes >> 20))
                    notes.figure("rssGrowthMiB", growth)
                    notes.figure("seconds", took)
                    notes.say("host RSS grew \(Int(growth)) MiB at most during a \(floodBytes >> 20) MiB flood (\(took.formattedSeconds))")
                    // The line limit is 64 MiB; one copy of it while it is cut
                    // plus allocator slack stays far below the flood.
                    try check(growth < 256, "the testbed's memory grew \(growth) MiB during the flood")
                }
            }
        }

        @Test("a command flooding stdout: output truncated at 16 MiB and said so")
        func commandFlood() async throws {
            try await injecting("command floods stdout (512 MiB)", category: "guest") { notes, _ in
                try await withMachine { machine in
                    let script = """
                    const b = Buffer.alloc(1 << 20, 120); let n = 0;
                    (function w() { while (n < 512) { n++; if (!process.stdout.write(b)) return process.stdout.once('drain', w); } })();
                    """
                    let clock = ContinuousClock()
                    let started = clock.now
                    let result = try await machine.execute(["node", "-e", script], timeout: .seconds(600))
                    let took = clock.now - started
                    try check(result.status == 0, "\(result): \(result.stderr)")
                    try check(result.stdoutTruncated, "the result does not say it was truncated")
                    try check(result.stdout.utf8.count == 16 << 20, "kept \(result.stdout.utf8.count) bytes")
                    notes.figure("seconds", took)
                    notes.say("512 MiB written, 16 MiB kept, stdoutTruncated=true (\(took.formattedSeconds))")
                }
            }
        }

        @Test("a guest that never prints anything fails at the deadline, saying the console stayed silent")
        func silentGuest() async throws {
            try await injecting("silent guest (vCPUs never run)", category: "guest") { notes, _ in
                try await withMachine({ $0.startsPaused = true }, waitForAgent: false) { machine in
                    let clock = ContinuousClock()
                    let started = clock.now
                    let error = try await expectMachineError("waiting for a silent guest") {
                        try await machine.waitForAgent(timeout: .seconds(15))
                    }
                    let took = clock.now - started
                    try requireExplained(error, cause: "the console printed nothing at all")
                    try check(error.description.contains("the domain is paused"))
                    try check(took < .seconds(30))
                    notes.figure("failedAfterS", took)
                    notes.say(error.message)
                }
            }
        }
    }
}
