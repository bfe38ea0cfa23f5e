import Foundation
import Testbed

/// One boot, measured: by the testbed (through libvirt) or by the plain-QEMU
/// runner (`images/qemu-boot`), the baseline the testbed's overhead is
/// measured against.
public struct BootSample: Sendable, Codable, Equatable {
    /// `testbed`, `plain`, or `candidate` (the testbed booting the image under test).
    public var runner: String
    /// Host wall time from starting the machine to reading the ready line.
    public var readyMs: Double
    /// The guest's phase lines, in boot order (guest clock, ms).
    public var phases: [Phase]
    public var guestUsedMiB: Double?
    public var initRssMiB: Double?
    public var qemuRssMiB: Double?
    /// Under TCG, how many blocks of guest code QEMU had translated at the
    /// ready line (the plain runner reads it from QEMU's monitor). Most of a
    /// cold TCG boot goes to translation, and unlike wall time this count
    /// barely moves with the host's load (~0.3% between boots of one image),
    /// so a trend in it is a change in the guest, not in the host.
    public var translationBlocks: Int?

    public struct Phase: Sendable, Codable, Equatable {
        public var name: String
        public var ms: Double
        public init(name: String, ms: Double) {
            self.name = name
            self.ms = ms
        }
    }

    public init(runner: String, readyMs: Double, phases: [Phase], guestUsedMiB: Double? = nil, initRssMiB: Double? = nil, qemuRssMiB: Double? = nil,
                translationBlocks: Int? = nil) {
        self.runner = runner
        self.readyMs = readyMs
        self.phases = phases
        self.guestUsedMiB = guestUsedMiB
        self.initRssMiB = initRssMiB
        self.qemuRssMiB = qemuRssMiB
        self.translationBlocks = translationBlocks
    }

    /// Time spent in each phase (the gap since the previous one).
    public var segments: [String: Double] { Regression.segments(phases.map { ($0.name, $0.ms) }) }
}

/// What a bench run knew about where it ran: results from different hosts,
/// accelerators or images are never compared with each other.
public struct MachineFacts: Sendable, Codable, Equatable {
    public var host: String
    public var cores: Int
    public var accelerator: String
    public var qemuVersion: String
    public var kernelVersion: String
    public var nodeVersion: String
    public var imageHash: String
    public var commit: String
    public var date: String
}

public struct Spread: Sendable, Codable, Equatable {
    public var min: Double
    public var median: Double
    public var p90: Double
    public var n: Int

    public init?(_ values: [Double]) {
        guard let lo = values.min(), let median = Statistics.median(values), let p90 = Statistics.quantile(values, 0.9) else { return nil }
        self.min = lo
        self.median = median
        self.p90 = p90
        self.n = values.count
    }
}

/// The headline figures `testbed bench --json` prints.
public struct BenchSummary: Sendable, Codable, Equatable {
    public struct Memory: Sendable, Codable, Equatable {
        public var guestUsedMiB: Double?
        public var initRssMiB: Double?
        public var qemuRssMiB: Double?
    }

    /// Runner → spread of ready times.
    public var readyMs: [String: Spread]
    /// testbed median / plain median: the testbed's own overhead.
    public var ratio: Double?
    public var memory: Memory
    /// Runner → phase → spread of the time spent in that phase.
    public var phases: [String: [String: Spread]]
    public var phaseOrder: [String]
    /// Runner → spread of `BootSample.translationBlocks`, for the runners
    /// that report it; nil in history written before it existed.
    public var translationBlocks: [String: Spread]?
}

/// `npm install -g` of the fixture tree, timed in the guest and with the
/// host's npm against the same registry, interleaved: the ratio of medians is
/// the headline (both sides suffer the same noise).
public struct NpmInstallBench: Sendable, Codable, Equatable {
    public var package: String
    /// Host wall time of each guest install (the `exec` round trip).
    public var guestMs: [Double]
    /// Host wall time of each install by the host's npm (same node version).
    public var hostMs: [Double]
    public var guest: Spread?
    public var host: Spread?
    /// Guest median / host median.
    public var ratio: Double?

    public init(package: String, guestMs: [Double], hostMs: [Double]) {
        self.package = package
        self.guestMs = guestMs
        self.hostMs = hostMs
        guest = Spread(guestMs)
        host = Spread(hostMs)
        if let g = guest?.median, let h = host?.median, h > 0 { ratio = g / h }
    }
}

public struct BenchResult: Sendable, Codable, Equatable {
    public var facts: MachineFacts
    public var samples: [BootSample]
    public var summary: BenchSummary
    /// Present when the run timed npm installs (`--npm-installs`).
    public var npmInstall: NpmInstallBench?
    /// Present when a baseline and a candidate were compared.
    public var verdicts: [PhaseVerdict]?
    public var comparedWith: String?

    public var regressions: [PhaseVerdict] { verdicts?.filter(\.regression) ?? [] }

    public static func summarize(_ samples: [BootSample]) -> BenchSummary {
        let runners = Array(Set(samples.map(\.runner))).sorted()
        var ready: [String: Spread] = [:]
        var phases: [String: [String: Spread]] = [:]
        var blocks: [String: Spread] = [:]
        var order: [String] = []
        for sample in samples { for phase in sample.phases where !order.contains(phase.name) { order.append(phase.name) } }
        for runner in runners {
            let mine = samples.filter { $0.runner == runner }
            ready[runner] = Spread(mine.map(\.readyMs))
            var perPhase: [String: Spread] = [:]
            for name in order {
                if let spread = Spread(mine.compactMap { $0.segments[name] }) { perPhase[name] = spread }
            }
            phases[runner] = perPhase
            if let spread = Spread(mine.compactMap { $0.translationBlocks.map(Double.init) }) { blocks[runner] = spread }
        }
        let testbed = samples.filter { $0.runner == "testbed" }
        let memory = BenchSummary.Memory(
            guestUsedMiB: Statistics.median(testbed.compactMap(\.guestUsedMiB)),
            initRssMiB: Statistics.median(testbed.compactMap(\.initRssMiB)),
            qemuRssMiB: Statistics.median(testbed.compactMap(\.qemuRssMiB)))
        var ratio: Double?
        if let t = ready["testbed"]?.median, let p = ready["plain"]?.median, p > 0 { ratio = t / p }
        return BenchSummary(readyMs: ready, ratio: ratio, memory: memory, phases: phases, phaseOrder: order,
                            translationBlocks: blocks.isEmpty ? nil : blocks)
    }
}
