import Foundation

/// Order statistics and the Mann–Whitney U test, for deciding on a handful of
/// noisy boot timings. Pure functions, unit-tested.
public enum Statistics {
    /// The median (mean of the middle two for an even count); nil when empty.
    public static func median(_ values: [Double]) -> Double? { quantile(values, 0.5) }

    /// The p-quantile with linear interpolation between order statistics.
    public static func quantile(_ values: [Double], _ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let position = p * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down))
        let upper = min(lower + 1, sorted.count - 1)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
    }

    /// One-sided Mann–Whitney U test that `candidate` tends to be larger than
    /// `baseline`. Returns U for the candidate and the p-value: exact (by
    /// counting arrangements) for small samples, normal approximation with
    /// tie correction above 400 arrangements per side.
    public static func mannWhitneyGreater(candidate: [Double], baseline: [Double]) -> (u: Double, p: Double) {
        let n1 = candidate.count, n2 = baseline.count
        guard n1 > 0, n2 > 0 else { return (0, 1) }
        var u = 0.0
        for c in candidate {
            for b in baseline {
                if c > b { u += 1 } else if c == b { u += 0.5 }
            }
        }
        let hasTies = Set(candidate + baseline).count < n1 + n2
        if n1 * n2 <= 400 && !hasTies {
            return (u, exactUpperTail(u: u, n1: n1, n2: n2))
        }
        // Normal approximation with continuity and tie corrections.
        let all = (candidate + baseline).sorted()
        var tieTerm = 0.0
        var i = 0
        while i < all.count {
            var j = i
            while j + 1 < all.count && all[j + 1] == all[i] { j += 1 }
            let t = Double(j - i + 1)
            tieTerm += t * t * t - t
            i = j + 1
        }
        let n = Double(n1 + n2)
        let mean = Double(n1 * n2) / 2
        let variance = Double(n1 * n2) / 12 * ((n + 1) - tieTerm / (n * (n - 1)))
        guard variance > 0 else { return (u, 1) }
        let z = (u - mean - 0.5) / variance.squareRoot()
        return (u, 0.5 * erfc(z / 2.0.squareRoot()))
    }

    /// P(U ≥ u) under the null hypothesis, by counting: the number of ways
    /// to pick which n1 of n1+n2 ranks belong to the first sample with a given U.
    static func exactUpperTail(u: Double, n1: Int, n2: Int) -> Double {
        // counts[i][j][s]: arrangements of i first-sample and j second-sample
        // items with U = s; built up one item at a time.
        let maxU = n1 * n2
        var table = [[[Double]]](repeating: [[Double]](repeating: [], count: n2 + 1), count: n1 + 1)
        for i in 0...n1 {
            for j in 0...n2 {
                var row = [Double](repeating: 0, count: maxU + 1)
                if i == 0 || j == 0 {
                    row[0] = 1
                } else {
                    // The largest item is from the first sample (it beats all j) or the second.
                    let withFirst = table[i - 1][j]
                    let withSecond = table[i][j - 1]
                    for s in 0...maxU {
                        if s >= j { row[s] += withFirst[s - j] }
                        row[s] += withSecond[s]
                    }
                }
                table[i][j] = row
            }
        }
        let distribution = table[n1][n2]
        let total = distribution.reduce(0, +)
        let threshold = Int(u.rounded(.up))
        let tail = distribution[min(threshold, maxU)...].reduce(0, +)
        return tail / total
    }
}
