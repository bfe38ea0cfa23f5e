import Foundation
import HostProcess
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testbed
import TestbedTesting
import Testing

/// Where this package lives.
private let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private var testbedBinary: URL { TestbedEnvironment.testbedBinary }

typealias CommandResult = TestbedCommandResult

/// Runs `testbed ARGS` in `directory` with its artifacts under it; returns status and output.
func runTestbed(_ arguments: [String], in directory: URL) throws -> CommandResult {
    try TestbedEnvironment.runTestbed(arguments, in: directory)
}

func temporaryFolder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("testbed-run-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// `testbed run`, the built binary end to end.
@Suite("testbed run (the CLI)", .serialized, .requires(.testbedBinary))
struct RunCommandTests {
    @Test("bad input: exit status 2, file:line:column and the field, nothing booted")
    func badInput() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try "machines:\n  m: {}\nsteps:\n  - boot\n  - succed: node -v\n".write(to: folder.appendingPathComponent("bad.yaml"), atomically: true, encoding: .utf8)
        try "machines:\n  m:\n    memory: [1]\nsteps:\n  - boot\n".write(to: folder.appendingPathComponent("worse.yaml"), atomically: true, encoding: .utf8)
        let result = try runTestbed(["run", "bad.yaml", "worse.yaml", "--junit", "junit.xml"], in: folder)
        #expect(result.status == 2)
        #expect(result.stderr.contains("bad.yaml:5:5: error: steps[2]: unknown step 'succed' (did you mean 'succeed'?)"))
        #expect(result.stderr.contains("worse.yaml:3:13: error: machines.m.memory: expected text, found a list"))
        #expect(result.stderr.contains("nothing was booted"))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("artifacts").path))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("junit.xml").path))

        let missing = try runTestbed(["run", "nope.yaml"], in: folder)
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("nope.yaml: no such file"))

        // Bad options are bad input too.
        let parallel = try runTestbed(["run", "bad.yaml", "--parallel", "0"], in: folder)
        #expect(parallel.status == 2)
        #expect(parallel.stderr.contains("--parallel must be at least 1"))
        let unknown = try runTestbed(["run", "--stage-volumes", "sometimes"], in: folder)
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("--stage-volumes"))
    }

    @Test("a passing scenario: exit status 0, JUnit without failures, JSON with the boot report", .requiresNodeOSImage)
    func passing() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try """
            name: node answers
            machines:
              tiny: {}
            steps:
              - boot
              - succeed: node -p 6*7
                stdout: "42"
              - shutdown
            """.write(to: folder.appendingPathComponent("ok.yaml"), atomically: true, encoding: .utf8)
        let result = try runTestbed(["run", "ok.yaml", "--junit", "out/junit.xml", "--json", "out/run.json"], in: folder)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("✓ 2. succeed 'node -p 6*7'"))
        #expect(result.stderr.contains("1 passed, 0 failed"))
        let junit = try String(contentsOf: folder.appendingPathComponent("out/junit.xml"), encoding: .utf8)
        #expect(junitSchemaProblems(junit) == [])
        #expect(junit.contains(#"tests="1" failures="0" errors="0""#))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("out/run.json"))) as? [String: Any]
        let scenario = (json?["results"] as? [[String: Any]])?.first
        #expect(scenario?["status"] as? String == "passed")
        #expect((scenario?["steps"] as? [Any])?.count == 3)
        let report = (scenario?["bootReports"] as? [[String: Any]])?.first
        #expect((report?["phases"] as? [String: Any])?["ready"] != nil)
    }

    @Test("a failing scenario: exit status 1, the failure in JUnit with the console tail", .requiresNodeOSImage)
    func failing() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try """
            name: a command that fails
            machines:
              tiny: {}
            steps:
              - boot
              - succeed: node -e 'console.error("boom"); process.exit(3)'
              - shutdown
            """.write(to: folder.appendingPathComponent("fails.yaml"), atomically: true, encoding: .utf8)
        let result = try runTestbed(["run", "fails.yaml", "--junit", "junit.xml"], in: folder)
        #expect(result.status == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("0 passed, 1 failed"))
        let junit = try String(contentsOf: folder.appendingPathComponent("junit.xml"), encoding: .utf8)
        #expect(junitSchemaProblems(junit) == [])
        let document = try XMLDocument(xmlString: junit, options: [])
        let failure = try #require((try document.nodes(forXPath: "//testcase/failure") as? [XMLElement])?.first)
        let message = failure.attribute(forName: "message")?.stringValue ?? ""
        #expect(message.hasPrefix("step 2 (succeed"))
        // The summary ends "'<command>' failed: exit status 3 after 0.1 s"; the
        // command itself holds a 3, so only the status phrase proves the status.
        #expect(message.contains("' failed: exit status 3 after "), "message: \(message)")
        let body = failure.stringValue ?? ""
        #expect(body.contains("boom"))
        #expect(body.contains("console lines ---"))
        #expect(body.contains("nodeos: ready"))
        #expect(body.contains("--- artifacts: "))
    }

    @Test("a machine that cannot be set up is a JUnit error, exit status 1")
    func setupError() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("image"), withIntermediateDirectories: true)
        try "{}".write(to: folder.appendingPathComponent("image/manifest.json"), atomically: true, encoding: .utf8)
        try "name: no usable image\nmachines: {m: {image: image}}\nsteps:\n  - boot\n".write(to: folder.appendingPathComponent("broken.yaml"), atomically: true, encoding: .utf8)
        let result = try runTestbed(["run", "broken.yaml", "--junit", "junit.xml", "--json", "run.json"], in: folder)
        #expect(result.status == 1, "stderr: \(result.stderr)")
        let junit = try String(contentsOf: folder.appendingPathComponent("junit.xml"), encoding: .utf8)
        #expect(junitSchemaProblems(junit) == [])
        #expect(junit.contains(#"errors="1""#))
        #expect(junit.contains("<error message=\"setting up: "))
        let json = try String(contentsOf: folder.appendingPathComponent("run.json"), encoding: .utf8)
        #expect(json.contains(#""status": "skipped""#))
    }

    @Test("--keep-on-failure keeps the failing machine up until the command is stopped", .requiresNodeOSImage)
    func keepOnFailure() async throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try "name: kept\nmachines: {k: {}}\nsteps:\n  - boot\n  - succeed: ls /nope\n".write(to: folder.appendingPathComponent("kept.yaml"), atomically: true, encoding: .utf8)
        let log = folder.appendingPathComponent("stderr.log")
        var subprocess = TestbedEnvironment.testbedSubprocess(["run", "kept.yaml", "--keep-on-failure"], in: folder,
                                                              timeout: .seconds(900))
        subprocess.standardError = .file(log.path)
        subprocess.standardOutput = .discard
        let process = try subprocess.spawn()
        // The run's embedded driver roots are /tmp/nodeos/<pid>-<n>; the machine's QEMU runs from the first.
        let roots = "\(EmbedRoot.parent)/\(process.pid)-"
        let root = roots + "0"
        var text = ""
        for _ in 0..<240 where !text.contains("press Ctrl-C") && process.isRunning {
            try await Task.sleep(for: .milliseconds(500))
            text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        }
        #expect(text.contains("--keep-on-failure: machine 'kept-k' is still running"), "stderr: \(text)")
        #expect(process.isRunning, "the command should wait while the machine is kept")
        // Kept: the failing machine's QEMU still runs from this run's root.
        #expect(!qemu(of: "kept-k", under: root).isEmpty, "no QEMU of 'kept-k' under \(root) while the machine is kept")
        process.terminate()
        let result = await process.wait()
        #expect(result.status == 143 && !result.timedOut, "\(result.termination), stderr: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        // Stopped: the machine is destroyed and nothing of the run is left.
        #expect(EmbedRoot.processes(mentioning: roots).isEmpty, "QEMU of the run left running: \(EmbedRoot.processes(mentioning: roots))")
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: EmbedRoot.parent)) ?? [])
            .filter { $0.hasPrefix("\(process.pid)-") }
        #expect(left.isEmpty, "embed roots of the run left under \(EmbedRoot.parent): \(left)")
    }

    /// QEMU processes of the embedded driver at `root` for the domain `machine`.
    private func qemu(of machine: String, under root: String) -> [Int32] {
        EmbedRoot.processes(mentioning: root + "/").filter { pid in
            let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map { String(decoding: $0, as: UTF8.self) } ?? ""
            return cmdline.contains("guest=\(machine),") || cmdline.contains("guest=\(machine)\u{0}")
        }
    }

    @Test("--filter that matches nothing is bad input")
    func filterMatchesNothing() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try "machines: {m: {image: .}}\nsteps:\n  - boot\n".write(to: folder.appendingPathComponent("a.yaml"), atomically: true, encoding: .utf8)
        try "{}".write(to: folder.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)
        let result = try runTestbed(["run", ".", "--filter", "^zzz"], in: folder)
        #expect(result.status == 2)
        #expect(result.stderr.contains("no scenario matches --filter"))
    }
}
