import Testbed
@testable import TestbedBench
import Testing

@Suite("Bench statistics")
struct StatisticsTests {
    @Test("median and quantiles interpolate between order statistics")
    func quantiles() {
        #expect(Statistics.median([3, 1, 2]) == 2)
        #expect(Statistics.median([4, 1, 3, 2]) == 2.5)
        #expect(Statistics.quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9)! == 9.1)
        #expect(Statistics.median([]) == nil)
    }

    @Test("exact Mann–Whitney p-values match the tables")
    func exactMannWhitney() {
        // Complete separation, 5 vs 5: 1 arrangement of C(10,5) = 252.
        let separated = Statistics.mannWhitneyGreater(candidate: [10, 11, 12, 13, 14], baseline: [1, 2, 3, 4, 5])
        #expect(separated.u == 25)
        #expect(abs(separated.p - 1.0 / 252) < 1e-12)
        // The other direction is as unlikely to be "greater" as it gets.
        #expect(Statistics.mannWhitneyGreater(candidate: [1, 2, 3, 4, 5], baseline: [10, 11, 12, 13, 14]).p == 1)
        // 3 vs 3 with U = 8: P(U ≥ 8) = 2/20.
        let partial = Statistics.mannWhitneyGreater(candidate: [3, 5, 6], baseline: [1, 2, 4])
        #expect(partial.u == 8)
        #expect(abs(partial.p - 0.1) < 1e-12)
    }

    @Test("ties fall back to the normal approximation and stay sane")
    func ties() {
        let same = Statistics.mannWhitneyGreater(candidate: [5, 5, 5, 5], baseline: [5, 5, 5, 5])
        #expect(same.p >= 0.5)
        let shifted = Statistics.mannWhitneyGreater(candidate: Array(repeating: 9, count: 30) + [10], baseline: Array(repeating: 1, count: 30) + [9])
        #expect(shifted.p < 1e-6)
    }

    @Test("a 300 ms delay in one phase is a regression of that phase only")
    func regressionOfOnePhase() {
        let baseline: [String: [Double]] = ["kernel": [1000, 1100, 1050, 990, 1200], "homes": [40, 55, 38, 61, 47]]
        let candidate: [String: [Double]] = ["kernel": [1020, 1090, 1180, 1010, 1005], "homes": [340, 352, 349, 361, 339]]
        let verdicts = Regression.compare(baseline: baseline, candidate: candidate, order: ["kernel", "homes"])
        #expect(verdicts.map(\.phase) == ["kernel", "homes"])
        #expect(verdicts[0].regression == false)
        #expect(verdicts[1].regression == true)
        #expect(verdicts[1].message.hasPrefix("homes: +302 ms (47 → 349 ms median, p = 0.004"))
    }

    @Test("small or unconvincing differences are not regressions")
    func effectSizeAndConfidence() {
        // Separated but tiny: 20 ms.
        let tiny = Regression.compare(baseline: ["x": [100, 101, 102, 103, 104]], candidate: ["x": [120, 121, 122, 123, 124]], order: ["x"])
        #expect(tiny[0].regression == false)
        // Large median shift but overlapping samples: not confident enough.
        let noisy = Regression.compare(baseline: ["x": [100, 900, 120, 880, 130]], candidate: ["x": [500, 140, 910, 600, 150]], order: ["x"])
        #expect(noisy[0].regression == false)
    }

    @Test("phase timestamps become time spent per phase")
    func segments() {
        let s = Regression.segments([("kernel", 1000), ("node", 1100), ("init", 1900)])
        #expect(s == ["kernel": 1000, "node": 100, "init": 800])
    }
}
