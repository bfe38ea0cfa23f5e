import Foundation
@testable import Testbed
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
}
