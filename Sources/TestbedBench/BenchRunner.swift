import Foundation
import Testbed

/// Boots an image N times through the testbed and N times through the plain
/// QEMU runner, interleaved so that the host's noise lands on both alike, and
/// optionally a candidate (another image, or extra kernel parameters) to
/// decide whether it regressed against the baseline in the same run.
public struct BenchRunner: Sendable {
    public var image: NodeOSImage
    public var boots: Int = 5
    /// `images/qemu-boot`; nil skips the plain baseline.
    public var plainRunner: URL?
    /// The image under test when comparing (default: `image` itself).
    public var candidateImage: NodeOSImage?
    /// Extra kernel parameters for the candidate (e.g. `nodeos.test.delay=homes:300`).
    public var candidateParameters: [String] = []
    public var policy = RegressionPolicy()
    public var memoryMiB = 256

    public var comparing: Bool { candidateImage != nil || !candidateParameters.isEmpty }

    public init(image: NodeOSImage, boots: Int = 5, plainRunner: URL? = nil) {
        self.image = image
        self.boots = boots
        self.plainRunner = plainRunner
    }

    /// Runs the bench; `progress` gets one line per boot.
    public func run(progress: @Sendable (String) -> Void = { _ in }) async throws -> BenchResult {
        let testbed = try await Testbed.shared()
        let accelerator = try await testbed.accelerator(for: image)
        var samples: [BootSample] = []
        var kinds = ["testbed"]
        if plainRunner != nil { kinds.append("plain") }
        if comparing { kinds.append("candidate") }
        for round in 0..<boots {
            // Rotate the order each round: no runner always goes first.
            let order = (0..<kinds.count).map { kinds[($0 + round) % kinds.count] }
            for kind in order {
                let sample: BootSample
                switch kind {
                case "plain": sample = try plainBoot(accelerator: accelerator)
                case "candidate": sample = try await testbedBoot(candidateImage ?? image, extra: candidateParameters, runner: "candidate", testbed: testbed, round: round)
                default: sample = try await testbedBoot(image, extra: [], runner: "testbed", testbed: testbed, round: round)
                }
                samples.append(sample)
                progress(String(format: "bench: boot %d/%d %@: ready after %.0f ms", round + 1, boots, kind, sample.readyMs))
            }
        }
        var result = BenchResult(facts: try facts(accelerator: accelerator), samples: samples, summary: BenchResult.summarize(samples))
        if comparing {
            let order = result.summary.phaseOrder
            func segments(_ runner: String) -> [String: [Double]] {
                var out: [String: [Double]] = [:]
                for sample in samples where sample.runner == runner {
                    for (name, ms) in sample.segments { out[name, default: []].append(ms) }
                }
                return out
            }
            result.verdicts = Regression.compare(baseline: segments("testbed"), candidate: segments("candidate"), order: order, policy: policy)
            result.comparedWith = candidateImage.map { "image \($0.manifest.imageHash)" } ?? "parameters \(candidateParameters.joined(separator: " "))"
        }
        return result
    }

    private func testbedBoot(_ image: NodeOSImage, extra: [String], runner: String, testbed: Testbed, round: Int) async throws -> BootSample {
        var spec = MachineSpec(name: "bench-\(runner)-\(round + 1)", image: image)
        spec.memoryMiB = memoryMiB
        spec.kernelParameters += extra
        spec.network = false
        return try await Machine.with(spec, in: testbed) { machine in
            let memory = try await machine.memory()
            let report = await machine.bootReport(memory: memory)
            try await machine.shutdown()
            let mib = { (kib: UInt64?) in kib.map { Double($0) / 1024 } }
            return BootSample(
                runner: runner, readyMs: report["ready"] ?? .nan,
                phases: report.guestPhases.map { BootSample.Phase(name: $0.name, ms: $0.milliseconds) },
                guestUsedMiB: mib(memory.guestUsedKiB), initRssMiB: mib(memory.initRssKiB), qemuRssMiB: mib(memory.qemuRssKiB))
        }
    }

    private func plainBoot(accelerator: Accelerator) throws -> BootSample {
        guard let plainRunner else { throw BenchError(description: "bench: no plain runner") }
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("nodeos-bench-\(UUID().uuidString.prefix(8)).json")
        defer { try? FileManager.default.removeItem(at: report) }
        var arguments = ["--until-ready", "--quiet", "--image", image.directory.path, "--report", report.path]
        if accelerator == .kvm { arguments.append("--kvm") }
        try HostCommand(plainRunner.path, arguments, step: "booting with the plain-QEMU runner").run(timeout: .seconds(600))
        struct PlainReport: Decodable {
            var readyMs: Double
            var phases: [String: Double]
            var guestUsedMiB: Double?
            var initRssMiB: Double?
            var tcg: TCG?
            struct TCG: Decodable { var translationBlocks: Int }
        }
        let decoded = try JSONDecoder().decode(PlainReport.self, from: Data(contentsOf: report))
        return BootSample(
            runner: "plain", readyMs: decoded.readyMs,
            phases: decoded.phases.sorted { $0.value < $1.value }.map { BootSample.Phase(name: $0.key, ms: $0.value) },
            guestUsedMiB: decoded.guestUsedMiB, initRssMiB: decoded.initRssMiB, translationBlocks: decoded.tcg?.translationBlocks)
    }

    private func facts(accelerator: Accelerator) throws -> MachineFacts {
        let qemu = (try? HostCommand("qemu-system-x86_64", ["--version"], step: "reading QEMU's version").run().stdoutText) ?? "unknown"
        let commit = (try? HostCommand("git", ["rev-parse", "--short", "HEAD"], step: "reading the commit").run().stdoutText) ?? "unknown"
        return MachineFacts(
            host: ProcessInfo.processInfo.hostName, cores: ProcessInfo.processInfo.activeProcessorCount,
            accelerator: accelerator.rawValue, qemuVersion: qemu.split(separator: "\n").first.map(String.init) ?? qemu,
            kernelVersion: image.manifest.kernelVersion, nodeVersion: image.manifest.nodeVersion,
            imageHash: image.manifest.imageHash, commit: commit.trimmingCharacters(in: .whitespacesAndNewlines),
            date: ISO8601DateFormatter().string(from: Date()))
    }
}

public struct BenchError: Error, CustomStringConvertible, Sendable {
    public var description: String
}
