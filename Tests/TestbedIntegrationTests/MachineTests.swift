import Foundation
import Testbed
import TestbedTesting
import Testing

/// Real machines under QEMU (slow: each boots NodeOS). Skipped until
/// `make image` has built `build/image`, unless CI=true.
@Suite("Machines", .requiresNodeOSImage)
struct MachineTests {
    @Test("exec returns status, stdout and stderr apart")
    func executeKeepsStreamsApart() async throws {
        try await withMachine { machine in
            let result = try await machine.execute(
                ["node", "-e", "process.stdout.write('to stdout'); process.stderr.write('to stderr'); process.exitCode = 3"])
            #expect(result.status == 3)
            #expect(result.signal == nil)
            #expect(result.stdout == "to stdout")
            #expect(result.stderr == "to stderr")

            #expect(try await machine.succeed("node -p 6*7") == "42\n")
            // The kernel gives init NODE_OPTIONS naming init's startup snapshot;
            // a command that inherited it would start as init, not run.
            #expect(try await machine.succeed(["node", "-p", "process.env.NODE_OPTIONS ?? 'unset'"]) == "unset\n")
            let failed = try await machine.fail("node -e 'process.exit(1)'")
            #expect(failed.status == 1)

            let error = await #expect(throws: MachineError.self) {
                try await machine.succeed("node -e 'console.error(\"boom\"); process.exit(2)'")
            }
            #expect(error?.kind == .commandFailed)
            #expect(error?.description.contains("boom") == true)
            #expect(error?.description.contains(machine.artifacts.path) == true)
        }
    }

    @Test("a kernel panic fails an expectation fast, with the reason")
    func kernelPanicFailsFast() async throws {
        let clock = ContinuousClock()
        try await withMachine({ spec in
            spec.kernelParameters.append("nodeos.test.exit=1")
            spec.checks = []
        }, waitForAgent: false) { machine in
            let started = clock.now
            let error = await #expect(throws: MachineError.self) {
                try await machine.console.expect(success: ["nodeos: ready"], failure: ["Kernel panic"], timeout: .seconds(600))
            }
            let elapsed = clock.now - started
            #expect(error?.kind == .failurePattern)
            #expect(error?.message.contains("Kernel panic") == true)
            #expect(error?.consoleTail.isEmpty == false)
            // Far sooner than the 600 s deadline: the pattern, not the clock, ended the wait.
            #expect(elapsed < .seconds(120))
        }
    }

    @Test("the default checks fail waitForAgent fast on a kernel panic")
    func defaultChecksCatchPanic() async throws {
        try await withMachine({ $0.kernelParameters.append("nodeos.test.exit=1") }, waitForAgent: false, checkProblems: false) { machine in
            let error = await #expect(throws: MachineError.self) {
                try await machine.waitForAgent(timeout: .seconds(600))
            }
            #expect(error?.kind == .failurePattern)
            #expect(error?.message.contains("kernel-panic") == true)
        }
    }

    @Test("shutdown is clean: init says halted and the domain stops")
    func cleanShutdown() async throws {
        try await withMachine { machine in
            try await machine.shutdown()
            #expect(await machine.isStopped)
            #expect(machine.console.text.contains("nodeos: halted"))
            let report = try String(contentsOf: machine.artifacts.appendingPathComponent("report.json"), encoding: .utf8)
            #expect(report.contains("\"ready\""))
        }
    }

    @Test("crash destroys the machine; later commands fail with machineStopped")
    func crash() async throws {
        try await withMachine { machine in
            await machine.crash()
            #expect(await machine.isStopped)
            let error = await #expect(throws: MachineError.self) {
                try await machine.execute(["node", "-v"])
            }
            #expect(error?.kind == .machineStopped)
        }
    }

    @Test("two machines run in parallel, each with its own boot")
    func twoInParallel() async throws {
        async let first = withMachine(named: "parallel-a") { machine in
            try await machine.succeed(["node", "-p", "require('os').hostname()"]) + (await machine.bootReport().bootID ?? "")
        }
        async let second = withMachine(named: "parallel-b") { machine in
            try await machine.succeed(["node", "-p", "require('os').hostname()"]) + (await machine.bootReport().bootID ?? "")
        }
        let (a, b) = try await (first, second)
        #expect(!a.isEmpty && !b.isEmpty)
        #expect(a != b)
    }

    @Test("the boot report has every phase, memory and versions")
    func bootReport() async throws {
        try await withMachine { machine in
            let memory = try await machine.memory()
            let report = await machine.bootReport(memory: memory)
            for phase in ["hostStart", "firstConsoleByte", "kernel", "node", "init", "mounts", "config", "agent", "ready", "agentReady"] {
                #expect(report[phase] != nil, "missing phase \(phase)")
            }
            #expect((report["ready"] ?? 0) > (report["kernel"] ?? .infinity))
            #expect(report.nodeVersion.hasPrefix("v"))
            #expect(!report.kernelVersion.isEmpty)
            #expect((memory.guestTotalKiB ?? 0) > 0)
            #expect((memory.initRssKiB ?? 0) > 0)
            #expect((memory.qemuRssKiB ?? 0) > 0)
        }
    }

    @Test("reboot comes back with a new boot id")
    func reboot() async throws {
        try await withMachine { machine in
            let before = await machine.agentHello?["bootId"]?.stringValue
            try await machine.reboot()
            let after = try await machine.request("hello")["bootId"]?.stringValue
            #expect(before != nil)
            #expect(after != nil)
            #expect(before != after)
        }
    }

    @Test("console expectations read through cursors: nothing is consumed")
    func consoleCursors() async throws {
        try await withMachine { machine in
            let first = try await machine.console.expect(success: ["nodeos: phase kernel"], failure: [], from: .start)
            let again = try await machine.console.expect(success: ["nodeos: phase kernel"], failure: [], from: .start)
            #expect(first == again)
            let ready = try await machine.console.expect(.regex(#"^nodeos: ready [0-9.]+ms"#))
            #expect(ready.offset > first.offset)
        }
    }
}

/// After a testbed closes, nothing of it remains running.
@Suite("Cleanup", .requiresNodeOSImage)
struct CleanupTests {
    @Test("closing a testbed destroys the machines it left running")
    func closeDestroysMachines() async throws {
        let image = try TestbedEnvironment.requireImage()
        let testbed = try await Testbed()
        let root = try #require(testbed.embedRoot)
        let machine = try await Machine.start(MachineSpec(name: "leftovers", image: image), in: testbed)
        try await machine.console.expect("nodeos: phase kernel", timeout: .seconds(300))
        let marker = "guest=\(machine.name),"
        #expect(!EmbedRoot.processes(mentioning: marker).filter { qemuOf(root, $0) }.isEmpty)
        // Close without stopping the machine: the testbed must destroy it.
        await testbed.close()
        await machine.finish()
        #expect(EmbedRoot.processes(mentioning: marker).filter { qemuOf(root, $0) }.isEmpty)
    }

    private func qemuOf(_ root: EmbedRoot, _ pid: Int32) -> Bool {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return String(decoding: data, as: UTF8.self).contains(root.path + "/")
    }
}

@Suite("Network capture", .requiresNodeOSImage)
struct CaptureTests {
    @Test("filter-dump captures the guest's traffic into capture.pcap")
    func capturesTraffic() async throws {
        try await withMachine({ $0.capture = true }) { machine in
            // A connection attempt to the host's gateway address: a SYN leaves the guest.
            _ = try await machine.execute(["node", "-e", """
                const s = require('net').connect(9, '10.0.2.2'); s.on('error', () => {}); setTimeout(() => process.exit(0), 500)
                """])
            await machine.crash()
            let capture = try Capture(contentsOf: machine.artifacts.appendingPathComponent("capture.pcap").path)
            #expect(capture.packets.contains { $0.ipv4Destination == "10.0.2.2" && $0.tcpDestinationPort == 9 },
                    "captured \(capture.packets.count) packets")
        }
    }
}
