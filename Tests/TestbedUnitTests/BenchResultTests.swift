import Foundation
@testable import Testbed
@testable import TestbedBench
import Testing

@Suite("Bench results")
struct BenchResultTests {
    static let facts = MachineFacts(host: "h", cores: 2, accelerator: "tcg", qemuVersion: "7.2", kernelVersion: "6.1", nodeVersion: "v24",
                                    imageHash: "abc", commit: "c0ffee", date: "2026-11-28T00:00:00Z")

    static func result(npm: NpmInstallBench?) -> BenchResult {
        let samples = [
            BootSample(runner: "testbed", readyMs: 3000, phases: [.init(name: "kernel", ms: 1000), .init(name: "ready", ms: 2500)], guestUsedMiB: 22),
            BootSample(runner: "plain", readyMs: 2800, phases: [.init(name: "kernel", ms: 1000), .init(name: "ready", ms: 2400)]),
        ]
        var result = BenchResult(facts: facts, samples: samples, summary: BenchResult.summarize(samples))
        result.npmInstall = npm
        return result
    }

    @Test("the npm benchmark's ratio is guest median over host median")
    func npmRatio() throws {
        let npm = NpmInstallBench(package: "@nodeos/hello-cli", guestMs: [30_000, 24_000, 26_000], hostMs: [2_000, 1_500, 2_500])
        #expect(npm.guest?.median == 26_000)
        #expect(npm.host?.median == 2_000)
        #expect(npm.ratio == 13)
        #expect(NpmInstallBench(package: "p", guestMs: [], hostMs: [1]).ratio == nil)
    }

    @Test("history written before the npm benchmark existed still reads; new results round-trip")
    func historyCompatibility() throws {
        let old = try JSONEncoder().encode(Self.result(npm: nil))
        #expect(try JSONDecoder().decode(BenchResult.self, from: old).npmInstall == nil)
        let npm = NpmInstallBench(package: "@nodeos/hello-cli", guestMs: [25_000], hostMs: [2_000])
        let new = try JSONDecoder().decode(BenchResult.self, from: JSONEncoder().encode(Self.result(npm: npm)))
        #expect(new.npmInstall == npm)
    }

    @Test("the report shows the npm table only when the run timed installs")
    func reportSection() {
        let npm = NpmInstallBench(package: "@nodeos/hello-cli", guestMs: [25_000], hostMs: [2_000])
        let with = BenchReport.html(latest: Self.result(npm: npm), history: [])
        #expect(with.contains("npm install -g @nodeos/hello-cli"))
        #expect(with.contains("<b>12.5×</b>"))
        #expect(!BenchReport.html(latest: Self.result(npm: nil), history: []).contains("npm install -g"))
    }

    @Test("translation blocks are summarized per runner that reports them, and charted only then")
    func translationBlocks() throws {
        let samples = [
            BootSample(runner: "testbed", readyMs: 3000, phases: [.init(name: "ready", ms: 2500)]),
            BootSample(runner: "plain", readyMs: 2800, phases: [.init(name: "ready", ms: 2400)], translationBlocks: 120_400),
            BootSample(runner: "plain", readyMs: 3900, phases: [.init(name: "ready", ms: 3500)], translationBlocks: 120_100),
            BootSample(runner: "plain", readyMs: 2500, phases: [.init(name: "ready", ms: 2200)], translationBlocks: 120_300),
        ]
        let summary = BenchResult.summarize(samples)
        #expect(summary.translationBlocks?["plain"]?.median == 120_300)
        #expect(summary.translationBlocks?["plain"]?.min == 120_100)
        #expect(summary.translationBlocks?["testbed"] == nil)
        #expect(BenchResult.summarize(Array(samples.prefix(1))).translationBlocks == nil)

        let with = BenchResult(facts: Self.facts, samples: samples, summary: summary)
        let page = BenchReport.html(latest: with, history: [])
        #expect(page.contains("TCG translation blocks at the ready line"))
        // The axis fits the values: a 0.3% spread must not sit flat on a zero-based axis.
        #expect(page.contains(">119097<"), "the lowest tick is 1% under the one median charted")
        #expect(!BenchReport.html(latest: Self.result(npm: nil), history: []).contains("translation blocks"))
    }

    @Test("samples and summaries written before translation blocks existed still read")
    func translationBlocksCompatibility() throws {
        let sample = #"{"runner":"plain","readyMs":2800,"phases":[{"name":"ready","ms":2400}]}"#
        #expect(try JSONDecoder().decode(BootSample.self, from: Data(sample.utf8)).translationBlocks == nil)
        let summary = #"{"readyMs":{},"memory":{},"phases":{},"phaseOrder":[]}"#
        #expect(try JSONDecoder().decode(BenchSummary.self, from: Data(summary.utf8)).translationBlocks == nil)
        let counted = BootSample(runner: "plain", readyMs: 1, phases: [], translationBlocks: 5)
        #expect(try JSONDecoder().decode(BootSample.self, from: JSONEncoder().encode(counted)) == counted)
    }
}
