import ArgumentParser
import Foundation
import Testbed
import TestbedBench

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boots an image N times, interleaved with the plain-QEMU runner, and reports boot phases and memory.",
        discussion: """
            Every boot of the testbed is paired with a boot of images/qemu-boot in the \
            same run, so the testbed/plain ratio is measured under the same noise. With \
            --candidate-param or --candidate-image, a candidate is booted in the same \
            run too and each boot phase is tested for a regression (one-sided \
            Mann–Whitney U plus a minimum effect size); --fail-on-regression then exits 1.
            Under TCG the plain runner also reports how many blocks of guest code QEMU \
            had translated by the ready line: a count the host's load barely moves, \
            charted over the history next to the ready time.
            Each result is appended to the history folder and rendered, with the \
            history's trend, into an HTML report with SVG charts.
            """)

    @Option(help: "Boots per runner.")
    var boots = 5

    @Option(name: .customLong("image"), help: "The image folder (default: $NODEOS_IMAGE or ./build/image).")
    var imageDirectory: String?

    @Option(help: "The plain-QEMU runner.")
    var plainRunner = "images/qemu-boot"

    @Flag(help: "Skip the plain-QEMU baseline.")
    var noPlain = false

    @Option(name: .customLong("candidate-param"), help: "Boot a candidate with this extra kernel parameter (repeatable), e.g. nodeos.test.delay=homes:300.")
    var candidateParameters: [String] = []

    @Option(help: "Boot this image folder as the candidate, against --image as the baseline.")
    var candidateImage: String?

    @Option(help: "Smallest slow-down that counts, in ms.")
    var minEffectMs = 100.0

    @Option(help: "Significance level of the one-sided Mann–Whitney test.")
    var alpha = 0.01

    @Flag(help: "Exit 1 when a phase regressed.")
    var failOnRegression = false

    @Option(help: "Folder of past results (one JSON file per run).")
    var history = "build/bench/history"

    @Option(help: "Where the HTML report goes.")
    var report = "build/bench/report.html"

    @Flag(help: "Print the summary as JSON on stdout.")
    var json = false

    @Option(help: "Also time this many npm installs of --npm-package in a fresh guest home, each against the host's npm from the same registry (0: none).")
    var npmInstalls = 0

    @Option(help: "The package the npm benchmark installs.")
    var npmPackage = "@nodeos/hello-cli"

    @Option(help: "The registry's package fixtures for the npm benchmark.")
    var npmFixtures = "scenarios/packages"

    func validate() throws {
        guard (1...100).contains(boots) else { throw ValidationError("--boots must be between 1 and 100") }
        guard (0.0001...0.5).contains(alpha) else { throw ValidationError("--alpha must be between 0.0001 and 0.5") }
        guard (0...20).contains(npmInstalls) else { throw ValidationError("--npm-installs must be between 0 and 20") }
        if candidateImage != nil && !candidateParameters.isEmpty {
            throw ValidationError("give either --candidate-image or --candidate-param, not both")
        }
    }

    func run() async throws {
        let image = try imageDirectory.map { try NodeOSImage(directory: URL(fileURLWithPath: $0)) } ?? NodeOSImage.load()
        var runner = BenchRunner(image: image, boots: boots, plainRunner: noPlain ? nil : URL(fileURLWithPath: plainRunner))
        if !noPlain && !FileManager.default.isExecutableFile(atPath: plainRunner) {
            throw ValidationError("--plain-runner \(plainRunner) is not an executable (run from the repository root, or pass --no-plain)")
        }
        runner.candidateParameters = candidateParameters
        runner.candidateImage = try candidateImage.map { try NodeOSImage(directory: URL(fileURLWithPath: $0)) }
        runner.policy = RegressionPolicy(alpha: alpha, minimumEffectMs: minEffectMs)
        let progress: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        var result = try await runner.run(progress: progress)
        if npmInstalls > 0 {
            // The pinned node that `make image` unpacked: the guest's own version.
            let node = URL(fileURLWithPath: "build/node")
            result.npmInstall = try await NpmBenchmark(
                image: image, packages: URL(fileURLWithPath: npmFixtures), package: npmPackage, installs: npmInstalls,
                hostNode: node.appendingPathComponent("bin/node").path,
                hostNpmCLI: node.appendingPathComponent("lib/node_modules/npm/bin/npm-cli.js").path
            ).run(progress: progress)
        }

        let store = BenchHistory(folder: URL(fileURLWithPath: history))
        let saved = try store.append(result)
        let past = store.load().results.filter { $0.facts.accelerator == result.facts.accelerator && $0.facts.host == result.facts.host }
        let reportURL = URL(fileURLWithPath: report)
        try FileManager.default.createDirectory(at: reportURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        try BenchReport.html(latest: result, history: past).write(to: reportURL, atomically: true, encoding: .utf8)

        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(JSONSummary(result)), as: UTF8.self))
        } else {
            print(table(result))
            print("history: \(saved.path)\nreport:  \(reportURL.path)")
        }
        let regressions = result.regressions
        for r in regressions { FileHandle.standardError.write(Data("bench: REGRESSION \(r.message)\n".utf8)) }
        if failOnRegression && !regressions.isEmpty { throw ExitCode(1) }
    }

    func table(_ r: BenchResult) -> String {
        var lines = ["image \(r.facts.imageHash), \(r.facts.accelerator), \(r.facts.cores) cores, \(boots) boots per runner", ""]
        let runners = r.summary.phases.keys.sorted(by: >)
        lines.append("phase".padding(toLength: 12, withPad: " ", startingAt: 0) + runners.map { "\($0) min/median/p90 ms".padding(toLength: 30, withPad: " ", startingAt: 0) }.joined())
        for phase in r.summary.phaseOrder {
            var line = phase.padding(toLength: 12, withPad: " ", startingAt: 0)
            for runner in runners {
                let cell = r.summary.phases[runner]?[phase].map { String(format: "%.0f / %.0f / %.0f", $0.min, $0.median, $0.p90) } ?? "-"
                line += cell.padding(toLength: 30, withPad: " ", startingAt: 0)
            }
            lines.append(line)
        }
        lines.append("")
        for (runner, s) in r.summary.readyMs.sorted(by: { $0.key > $1.key }) {
            lines.append(String(format: "ready (%@): min %.0f, median %.0f, p90 %.0f ms", runner, s.min, s.median, s.p90))
        }
        if let ratio = r.summary.ratio { lines.append(String(format: "testbed/plain ratio (median ready): %.3f", ratio)) }
        let m = r.summary.memory
        lines.append(String(format: "memory: guest used %.1f MiB, init RSS %.1f MiB, QEMU RSS %.1f MiB", m.guestUsedMiB ?? .nan, m.initRssMiB ?? .nan, m.qemuRssMiB ?? .nan))
        for (runner, s) in (r.summary.translationBlocks ?? [:]).sorted(by: { $0.key > $1.key }) {
            lines.append(String(format: "TCG translation blocks at ready (%@): median %.0f, min %.0f, p90 %.0f (host load barely moves this count)", runner, s.median, s.min, s.p90))
        }
        if let npm = r.npmInstall, let g = npm.guest, let h = npm.host {
            lines.append(String(format: "npm install -g %@ (%d each): guest median %.1f s (min %.1f), host npm median %.1f s (min %.1f), guest/host %.1f×",
                                npm.package, g.n, g.median / 1000, g.min / 1000, h.median / 1000, h.min / 1000, npm.ratio ?? .nan))
        }
        for v in r.verdicts ?? [] { lines.append((v.regression ? "REGRESSION " : "ok         ") + v.message) }
        return lines.joined(separator: "\n")
    }
}

/// The documented shape of `testbed bench --json`.
struct JSONSummary: Encodable {
    struct Ready: Encodable { var median: Double; var p90: Double; var min: Double; var n: Int }
    var readyMs: [String: Ready]
    var ratio: Double?
    var memory: BenchSummary.Memory
    var phases: [String: [String: Spread]]
    var translationBlocks: [String: Spread]?
    var facts: MachineFacts
    var regressions: [String]
    var verdicts: [PhaseVerdict]?
    var npmInstall: NpmInstallBench?

    init(_ r: BenchResult) {
        readyMs = r.summary.readyMs.mapValues { Ready(median: $0.median, p90: $0.p90, min: $0.min, n: $0.n) }
        ratio = r.summary.ratio
        memory = r.summary.memory
        phases = r.summary.phases
        translationBlocks = r.summary.translationBlocks
        facts = r.facts
        regressions = r.regressions.map(\.message)
        verdicts = r.verdicts
        npmInstall = r.npmInstall
    }
}
