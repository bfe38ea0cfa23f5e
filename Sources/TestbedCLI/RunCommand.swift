import ArgumentParser
import Foundation
import Scenarios
import Testbed

/// `testbed run`: scenario files, with progress, a summary, JUnit and JSON.
struct RunScenarios: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Runs scenario files (scenarios/*.yaml): boots machines, runs steps, reports.",
        discussion: """
            PATHS are scenario files or folders of them (default: ./scenarios). Every \
            file is parsed and checked before anything boots; a bad file is reported \
            as FILE:LINE:COLUMN: FIELD: MESSAGE. The format is in scenarios/README.md.

            Exit status: 0 when every scenario passed, 1 when one failed, 2 on bad input.
            """)

    @Argument(help: "Scenario files or folders (default: ./scenarios).")
    var paths: [String] = []

    @Option(help: "Write JUnit XML (one test case per scenario) to this file.")
    var junit: String?

    @Option(help: "Write JSON (every step's timing, every boot report) to this file.")
    var json: String?

    @Option(help: "Scenarios at once (bounded by the machine bound, NODEOS_MAX_MACHINES or the core count).")
    var parallel: Int = 1

    @Option(name: .customLong("connect"), help: "A libvirt URI to run on, or 'embedded' (repeatable: scenarios spread over them). Default: $NODEOS_LIBVIRT_URI or the embedded driver.")
    var uris: [String] = []

    @Option(help: "When machines' files are uploaded through libvirt's storage API: auto (only for remote URIs: a transport or a host name), always (every URI but 'embedded'), never. Default: $NODEOS_STAGE_VOLUMES, else auto.")
    var stageVolumes: String?

    @Flag(help: "Leave the failing machine running and say how to reach its console.")
    var keepOnFailure = false

    @Option(help: "Run only scenarios whose name or file matches this regular expression (or contains this text).")
    var filter: String?

    @Option(name: .customLong("var"), help: "Set a scenario variable, NAME=VALUE (repeatable; wins over the file's).")
    var variables: [String] = []

    @Option(help: "Where artifacts go (default: $NODEOS_ARTIFACTS or ./artifacts).")
    var artifacts: String?

    func validate() throws {
        guard parallel >= 1 else { throw ValidationError("--parallel must be at least 1") }
        if let stageVolumes, VolumeStagingMode(rawValue: stageVolumes) == nil {
            throw ValidationError("--stage-volumes takes auto, always or never, got '\(stageVolumes)'")
        }
        for assignment in variables where !assignment.contains("=") {
            throw ValidationError("--var takes NAME=VALUE, got '\(assignment)'")
        }
    }

    func run() async throws {
        let began = ContinuousClock.now
        let startedAt = Date()
        let scenarios = loadScenarios()
        guard let scenarios else { throw ExitCode(2) }
        // Bad input too, and found before anything boots: a scenario that needs more machines at once than may run.
        let slots = Slots.machines.limit
        let unfit = scenarios.compactMap { $0.slotProblem(slots: slots) }
        if !unfit.isEmpty {
            for problem in unfit { printError("testbed: \(problem)") }
            throw ExitCode(2)
        }

        let run = try ArtifactsRun(base: artifacts.map { URL(fileURLWithPath: $0) } ?? ArtifactsRun.defaultBase)
        var testbeds: [Testbed] = []
        do {
            // `embedded` names this process's embedded driver, so it can be mixed with remote URIs.
            let targets: [String?] = uris.isEmpty ? [Testbed.configuredURI] : uris.map { $0 == "embedded" ? nil : $0 }
            let staging = stageVolumes.flatMap(VolumeStagingMode.init(rawValue:))
            for uri in targets { testbeds.append(try await Testbed(uri: uri, artifacts: run, stageVolumes: staging)) }
        } catch {
            printError("testbed: cannot open the testbed: \(error)")
            throw ExitCode(2)
        }
        let limit = Slots.machines.limit
        if parallel > limit {
            printError("testbed: --parallel \(parallel) is over the machine bound (\(limit)); running \(limit) at once")
        }
        let places = testbeds.map { $0.uri + ($0.staging.map { " (volumes uploaded to storage pool \($0.poolName))" } ?? "") }
        printError("testbed: \(scenarios.count) scenario\(scenarios.count == 1 ? "" : "s") on \(places.joined(separator: ", ")); artifacts in \(run.root.path)")

        let progress = Progress(prefixed: min(parallel, limit) > 1)
        let options = RunOptions(parallel: parallel, keepOnFailure: keepOnFailure) { progress.show($0) }
        let results = await ScenarioRunner.run(scenarios, on: testbeds, options: options)
        let total = (ContinuousClock.now - began).milliseconds / 1000

        FileHandle.standardError.write(Data(("\n" + RunReport.summary(results, seconds: total)).utf8))
        do {
            if let junit { try write(RunReport.junit(results, timestamp: startedAt), to: junit) }
            if let json { try write(RunReport.json(results, startedAt: startedAt, seconds: total), to: json) }
        } catch {
            printError("testbed: cannot write a report: \(error)")
        }

        let kept = results.flatMap(\.kept)
        if !kept.isEmpty { await hold(kept) }
        for testbed in testbeds { await testbed.close() }
        if results.contains(where: { !$0.passed }) { throw ExitCode(1) }
    }

    /// Parses every file first; prints every problem and returns nil when one is bad.
    func loadScenarios() -> [Scenario]? {
        var files: [String] = []
        var bad = false
        for path in paths.isEmpty ? ["scenarios"] : paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                printError("\(path): no such file or folder")
                bad = true
                continue
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                files += names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { (path as NSString).appendingPathComponent($0) }
            } else {
                files.append(path)
            }
        }
        var overrides: [String: String] = [:]
        for assignment in variables {
            let parts = assignment.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            overrides[String(parts[0])] = String(parts[1])
        }
        let parser = ScenarioParser(overrides: overrides)
        var scenarios: [Scenario] = []
        for file in files {
            do {
                scenarios.append(try parser.parse(file: URL(fileURLWithPath: file), displayPath: file))
            } catch {
                printError("\(error.location): error: \(error.field.isEmpty ? "" : error.field + ": ")\(error.message)")
                bad = true
            }
        }
        if bad {
            printError("testbed: bad input; nothing was booted")
            return nil
        }
        if let filter {
            let regex = try? Regex(filter)
            scenarios = scenarios.filter { scenario in
                [scenario.name, scenario.file].contains { text in regex.map { text.contains($0) } ?? text.contains(filter) }
            }
            if scenarios.isEmpty {
                printError("testbed: no scenario matches --filter '\(filter)'")
                return nil
            }
        }
        if scenarios.isEmpty {
            printError("testbed: no scenario files found in \(paths.isEmpty ? "scenarios" : paths.joined(separator: " "))")
            return nil
        }
        return scenarios
    }

    func write(_ text: String, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
        printError("testbed: wrote \(path)")
    }

    /// Keeps failing machines up until the person is done with them.
    func hold(_ kept: [KeptMachine]) async {
        for machine in kept {
            var text = "\ntestbed: --keep-on-failure: machine '\(machine.domain)' is still running (artifacts: \(machine.machine.artifacts.path)).\n"
            if machine.uri.hasPrefix("qemu:///embed") {
                text += "  It runs on this process's embedded libvirt driver, so it lives as long as this command does.\n"
            } else {
                text += "  Attach to its console from another terminal:  virsh -c '\(machine.uri)' console \(machine.domain)\n"
            }
            printError(text)
        }
        if isatty(STDIN_FILENO) == 1, let first = kept.first {
            printError("testbed: attaching the console of '\(first.domain)' here; Ctrl-] detaches and destroys it.")
            await attachConsole(first.machine, replayingLast: 2000)
        } else {
            printError("testbed: press Ctrl-C (or send SIGTERM to \(getpid())) to destroy the machine and exit.")
            while true { try? await Task.sleep(for: .seconds(3600)) }
        }
        for machine in kept { await machine.machine.finish(destroy: true) }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Progress lines on stderr: each scenario and step as it finishes.
final class Progress: Sendable {
    let prefixed: Bool
    init(prefixed: Bool) { self.prefixed = prefixed }

    func show(_ event: RunEvent) {
        switch event {
        case .scenarioStarted(let name, let file, let uri):
            printError("▶ \(name)  (\(file)\(uri.hasPrefix("qemu:///embed") ? "" : " on \(uri)"))")
        case .stepStarted:
            break
        case .stepFinished(let scenario, let step):
            let mark = step.status == .passed ? "✓" : step.status == .failed ? "✗" : "-"
            var line = (prefixed ? "  [\(scenario)] " : "  ") + "\(mark) \(step.index). \(step.label)"
            line += String(format: "  (%.2f s)", step.seconds)
            if let message = step.message { line += "\n      " + message.replacingOccurrences(of: "\n", with: "\n      ") }
            printError(line)
        case .scenarioFinished(let result):
            if result.passed {
                printError(String(format: "✔ %@ passed in %.1f s", result.name, result.seconds))
            } else {
                var text = String(format: "✘ %@ FAILED in %.1f s: ", result.name, result.seconds) + (result.failure?.summary ?? "")
                if let failure = result.failure {
                    text += ConsoleLog.failureBlocks(consoleTail: failure.consoleTail, artifacts: failure.artifacts, indent: "    ")
                }
                printError(text)
            }
        }
    }
}
