import Foundation
import HostProcess
import Testbed
import TestbedTesting
import Testing

/// The built `testbed` binary, end to end: output, exit status, cleanup.
@Suite("testbed CLI", .requiresNodeOSImage, .requires(.testbedBinary))
struct CLITests {
    /// Starts `testbed ARGS` (both outputs collected, stdin a pipe kept open
    /// and empty), stopped at the latest after `timeout`. Its process group is
    /// left alone when it exits, so what it leaves behind stays to be seen.
    static func launch(_ arguments: [String], timeout: Duration = .seconds(900)) throws -> Subprocess.Running {
        _ = try TestbedEnvironment.requireImage()
        let environment = ProcessInfo.processInfo.environment.merging(
            ["NODEOS_IMAGE": TestbedEnvironment.imageDirectory.path], uniquingKeysWith: { $1 })
        return try Subprocess(TestbedEnvironment.testbedBinary.path, arguments, environment: environment,
                              standardInput: .keptOpen, timeout: timeout, killsGroupOnExit: false).spawn()
    }

    @Test("boot --json prints every phase and shuts down cleanly")
    func bootJSON() async throws {
        let result = try await Self.launch(["boot", "--json", "--name", "cli-json"]).wait()
        #expect(!result.timedOut)
        #expect(result.status == 0, "stderr: \(result.stderrText)")
        let report = try JSONDecoder().decode(JSONValue.self, from: result.stdout)
        for phase in ["hostStart", "firstConsoleByte", "kernel", "node", "init", "mounts", "config", "homes", "network", "agent", "ready", "agentReady"] {
            #expect(report["phases"]?[phase]?.doubleValue != nil, "missing phase \(phase)")
        }
        for key in ["accelerator", "imageHash", "kernelVersion", "nodeVersion"] {
            #expect(report[key]?.stringValue?.isEmpty == false, "missing \(key)")
        }
        #expect((report["memory"]?["qemuRssKiB"]?.doubleValue ?? 0) > 0)
        let artifacts = try #require(report["artifacts"]?.stringValue)
        let console = try String(contentsOfFile: artifacts + "/console.log", encoding: .utf8)
        #expect(console.contains("nodeos: halted"), "the machine did not shut down through init")
    }

    @Test("SIGTERM during boot destroys the machine and removes the embed root (exit 143)")
    func sigterm() async throws {
        let process = try Self.launch(["boot", "--name", "cli-sigterm"])
        _ = await process.waitForOutput(timeout: .seconds(600)) { String(decoding: $0, as: UTF8.self).contains("nodeos: phase") }
        let root = "\(EmbedRoot.parent)/\(process.pid)-0"
        #expect(FileManager.default.fileExists(atPath: root))
        process.terminate()
        let result = await process.wait()
        #expect(result.status == 143 && !result.timedOut, "\(result.termination), stderr: \(result.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: root))
        #expect(EmbedRoot.processes(mentioning: root + "/").isEmpty)
    }
}
