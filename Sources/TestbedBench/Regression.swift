import Foundation
import Testbed

/// The nightly question: did this phase get slower? Asked of two sets of
/// samples taken in the same run (interleaved boots of baseline and
/// candidate), never of absolute times from different runs.
public struct RegressionPolicy: Sendable, Equatable, Codable {
    /// One-sided Mann–Whitney p-value below which a difference counts.
    public var alpha: Double = 0.01
    /// The smallest slow-down worth a red build, in milliseconds…
    public var minimumEffectMs: Double = 100
    /// …and as a fraction of the baseline's median (both must be exceeded).
    public var minimumEffectRatio: Double = 0.10

    public init(alpha: Double = 0.01, minimumEffectMs: Double = 100, minimumEffectRatio: Double = 0.10) {
        self.alpha = alpha
        self.minimumEffectMs = minimumEffectMs
        self.minimumEffectRatio = minimumEffectRatio
    }
}

public struct PhaseVerdict: Sendable, Equatable, Codable {
    public var phase: String
    public var baselineMedianMs: Double
    public var candidateMedianMs: Double
    public var differenceMs: Double
    public var pValue: Double
    public var regression: Bool

    /// "homes: +301 ms (31 → 332 ms median, p = 0.004, confidence 99.6%)"
    public var message: String {
        String(format: "%@: %+.0f ms (%.0f → %.0f ms median, p = %.3f, confidence %.1f%%)",
               phase, differenceMs, baselineMedianMs, candidateMedianMs, pValue, (1 - pValue) * 100)
    }
}

public enum Regression {
    /// Compares per-phase durations (`phase → samples`); phases missing on
    /// either side are skipped.
    public static func compare(baseline: [String: [Double]], candidate: [String: [Double]],
                               order: [String], policy: RegressionPolicy = RegressionPolicy()) -> [PhaseVerdict] {
        order.compactMap { phase in
            guard let b = baseline[phase], let c = candidate[phase], !b.isEmpty, !c.isEmpty,
                  let bm = Statistics.median(b), let cm = Statistics.median(c) else { return nil }
            let (_, p) = Statistics.mannWhitneyGreater(candidate: c, baseline: b)
            let difference = cm - bm
            let regression = p < policy.alpha && difference >= policy.minimumEffectMs
                && difference >= policy.minimumEffectRatio * max(bm, 1)
            return PhaseVerdict(phase: phase, baselineMedianMs: bm, candidateMedianMs: cm, differenceMs: difference, pValue: p, regression: regression)
        }
    }

    /// Turns phase timestamps (ms, in boot order) into the time spent in each
    /// phase: the gap since the previous phase. The first phase keeps its time.
    public static func segments(_ phases: [(name: String, milliseconds: Double)]) -> [String: Double] {
        var result: [String: Double] = [:]
        var previous = 0.0
        for (name, ms) in phases {
            result[name] = ms - previous
            previous = ms
        }
        return result
    }
}
