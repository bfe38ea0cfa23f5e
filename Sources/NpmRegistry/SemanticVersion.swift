// Just enough semver to pick `latest`: major.minor.patch, prerelease ordering
// per semver 2.0.0 section 11, build metadata ignored.

struct SemanticVersion: Comparable, Sendable, CustomStringConvertible {
    let major: Int
    let minor: Int
    let patch: Int
    let prerelease: [String]
    let description: String

    init?(_ string: String) {
        var core = Substring(string)
        if let plus = core.firstIndex(of: "+") { core = core[..<plus] }
        var pre: [String] = []
        if let dash = core.firstIndex(of: "-") {
            pre = core[core.index(after: dash)...].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            core = core[..<dash]
            if pre.contains(where: \.isEmpty) { return nil }
        }
        let numbers = core.split(separator: ".", omittingEmptySubsequences: false)
        guard numbers.count == 3, let major = Int(numbers[0]), let minor = Int(numbers[1]), let patch = Int(numbers[2]),
            major >= 0, minor >= 0, patch >= 0
        else { return nil }
        (self.major, self.minor, self.patch, self.prerelease, self.description) = (major, minor, patch, pre, string)
    }

    var isPrerelease: Bool { !prerelease.isEmpty }

    static func == (a: Self, b: Self) -> Bool { !(a < b) && !(b < a) }

    static func < (a: Self, b: Self) -> Bool {
        if (a.major, a.minor, a.patch) != (b.major, b.minor, b.patch) {
            return (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch)
        }
        // A version without prerelease ranks above any prerelease of it.
        if a.prerelease.isEmpty || b.prerelease.isEmpty { return !a.prerelease.isEmpty && b.prerelease.isEmpty }
        for (x, y) in zip(a.prerelease, b.prerelease) where x != y {
            switch (Int(x), Int(y)) {
            case let (i?, j?): return i < j
            case (.some, nil): return true
            case (nil, .some): return false
            case (nil, nil): return x < y
            }
        }
        return a.prerelease.count < b.prerelease.count
    }

    /// The version npm should install by default: the highest release, or the
    /// highest prerelease when there is no release.
    static func latest(of versions: some Sequence<String>) -> String? {
        let parsed = versions.compactMap(SemanticVersion.init)
        let releases = parsed.filter { !$0.isPrerelease }
        return (releases.isEmpty ? parsed : releases).max()?.description
    }
}
