import Foundation
import Testbed
import TestbedTesting
import Testing

/// The built `testbed` binary, end to end: output, exit status, cleanup.
@Suite("testbed CLI", .requiresNodeOSImage, .requires(.testbedBinary))
struct CLITests {
    static func launch(_ arguments: [String]) throws -> (Process, Pipe, Pipe) {
        _ = try TestbedEnvironment.requireImage()
        let process = Process()
        process.executableURL = TestbedEnvironment.testbedBinary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(
            ["NODEOS_IMAGE": TestbedEnvironment.imageDirectory.path], uniquingKeysWith: { $1 })
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = Pipe()
        try process.run()
        return (process, stdout, stderr)
    }

    @Test("boot --json prints every phase and shuts down cleanly")
    func bootJSON() async throws {
        let (process, stdout, stderr) = try Self.launch(["boot", "--json", "--name", "cli-json"])
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "stderr: \(errors)")
        let report = try JSONDecoder().decode(JSONValue.self, from: output)
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
        let (process, stdout, _) = try Self.launch(["boot", "--name", "cli-sigterm"])
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("nodeos: phase") {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen.append(chunk)
        }
        let root = "\(EmbedRoot.parent)/\(process.processIdentifier)-0"
        #expect(FileManager.default.fileExists(atPath: root))
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 143)
        #expect(!FileManager.default.fileExists(atPath: root))
        #expect(EmbedRoot.processes(mentioning: root + "/").isEmpty)
    }
}
