import Foundation
import Testbed

/// Where something is in a scenario file: `file:line:column` (1-based).
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// A scenario file that cannot be run: where, which field, and what is wrong.
///
/// ```
/// scenarios/homes.yaml:12:5: steps[3].succeed: unknown key 'stdot' (did you mean 'stdout'?)
/// ```
public struct ScenarioError: Error, Sendable, Equatable, CustomStringConvertible {
    public var location: SourceLocation
    /// The field's path in the document, e.g. `machines.web.memory` or `steps[2].timeout`.
    public var field: String
    public var message: String

    public init(location: SourceLocation, field: String, message: String) {
        self.location = location
        self.field = field
        self.message = message
    }

    public var description: String {
        field.isEmpty ? "\(location): \(message)" : "\(location): \(field): \(message)"
    }
}

/// One scenario: machines, then steps run in order against them.
///
/// Scenarios are read from YAML by ``ScenarioParser``; the format is
/// documented in `scenarios/README.md`.
public struct Scenario: Sendable {
    public var name: String
    public var description: String?
    /// The file it came from, as given.
    public var file: String
    /// The file's folder: relative paths in the scenario are relative to it.
    public var directory: URL
    /// A deadline for the whole scenario.
    public var timeout: Duration?
    public var variables: [String: String]
    /// The npm fixtures folder the scenario's registry serves, when it needs one.
    public var registry: URL?
    public var machines: [MachineDefinition]
    public var steps: [Step]

    /// A name usable in file and domain names: lower-case letters, digits, dashes.
    public var slug: String { Scenario.slug(URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent) }

    static func slug(_ text: String) -> String {
        var out = ""
        for ch in text.lowercased() {
            if ch.isASCII && (ch.isLetter || ch.isNumber) { out.append(ch) } else if !out.hasSuffix("-") { out.append("-") }
        }
        let trimmed = out.trimmingCharacters(in: CharacterSet(charactersIn: "-"))
        return trimmed.isEmpty ? "scenario" : String(trimmed.prefix(40))
    }

    public func machine(named name: String) -> MachineDefinition? { machines.first { $0.name == name } }

    /// The most machines the steps have running at once (`boot` starts one,
    /// `shutdown` and `crash` stop it): the machine slots the scenario needs.
    public var peakMachines: Int {
        var running: Set<String> = []
        var peak = 0
        for step in steps {
            guard let machine = step.machine else { continue }
            switch step.action.machineEffect {
            case .starts: running.insert(machine)
            case .stops: running.remove(machine)
            case .none: break
            }
            peak = max(peak, running.count)
        }
        return peak
    }

    /// Why the scenario cannot run under a bound of `slots` machines at once, if it cannot.
    public func slotProblem(slots: Int) -> String? {
        let peak = peakMachines
        guard peak > slots else { return nil }
        return "\(file): the steps run \(peak) machines at once, but only \(slots) may run at a time (NODEOS_MAX_MACHINES, default the number of cores): raise the bound or stop a machine before booting the next"
    }
}

/// A machine as a scenario describes it; becomes a ``MachineSpec`` at run time.
public struct MachineDefinition: Sendable {
    public struct User: Sendable, Equatable {
        public var name: String
        public var uid: Int?
        /// Clear text from the scenario; hashed with scrypt before it goes into the config volume.
        public var password: String?
        public var packages: [String]
    }

    public enum FileSource: Sendable, Equatable {
        case text(String)
        case host(URL)
    }

    public struct Home: Sendable, Equatable {
        public var user: String
        public var uid: Int
        public var sizeMiB: Int
        public var files: [(path: String, source: FileSource)]

        public static func == (a: Home, b: Home) -> Bool {
            a.user == b.user && a.uid == b.uid && a.sizeMiB == b.sizeMiB
                && a.files.elementsEqual(b.files) { $0.path == $1.path && $0.source == $1.source }
        }
    }

    public var name: String
    public var location: SourceLocation
    public var image: URL
    public var memoryMiB: Int = 256
    public var vcpus: Int = 1
    public var hostname: String?
    public var kernelParameters: [String] = []
    public var network: Bool = true
    public var capture: Bool = false
    public var users: [User] = []
    public var homes: [Home] = []
    /// `nodeos: error STEP:` lines the scenario provokes on purpose.
    public var allowedGuestErrors: [String] = []
    /// Default console checks switched off by name (see ``ConsoleCheck``).
    public var ignoredChecks: [String] = []

    /// A guest port led to a host port (0: any free one) through the tunnel.
    public struct Forward: Sendable, Equatable {
        public var guestPort: Int
        public var hostPort: Int
    }

    /// What init runs at boot (the boot configuration's `services`).
    public var services: [BootConfig.Service] = []
    public var forwards: [Forward] = []
    /// Whether the machine gets the tunnel's channel: it forwards ports, or a step talks to one.
    public var tunnel = false
    /// One end of a scenario network: the `index`th network, this machine at
    /// `end` (0 or 1), `peer` at the other.
    public struct NetworkEnd: Sendable, Equatable {
        public var network: String
        public var index: Int
        public var end: Int
        public var peer: String

        /// 192.168.(60+index).(end+1)/24, and a MAC to match.
        public var address: String { "192.168.\(60 + index).\(end + 1)" }
        public var peerAddress: String { "192.168.\(60 + index).\(2 - end)" }
        public var mac: String { String(format: "52:54:00:%02x:00:%02x", 60 + index, end + 1) }
    }

    /// The networks it is on.
    public var networks: [NetworkEnd] = []
    /// `egress: open`: the NIC reaches the host's loopback and beyond; by
    /// default it lets the guest open no connection at all.
    public var openEgress = false
}

/// Compares text a command printed or a file holds.
public enum OutputMatcher: Sendable, Equatable, CustomStringConvertible {
    /// Equal once trailing newlines are dropped on both sides.
    case equals(String)
    case contains(String)
    case notContains(String)
    /// A Swift `Regex`, searched anywhere in the text.
    case matches(String)

    public func check(_ text: String) -> Bool {
        switch self {
        case .equals(let expected): return Self.trimmed(text) == Self.trimmed(expected)
        case .contains(let part): return text.contains(part)
        case .notContains(let part): return !text.contains(part)
        case .matches(let pattern):
            guard let regex = try? Regex(pattern) else { return false }
            return text.contains(regex)
        }
    }

    static func trimmed(_ text: String) -> Substring {
        var end = text.endIndex
        while end > text.startIndex, text[text.index(before: end)] == "\n" || text[text.index(before: end)] == "\r\n" {
            end = text.index(before: end)
        }
        return text[..<end]
    }

    public var description: String {
        switch self {
        case .equals(let text): "equals \(Self.quote(text))"
        case .contains(let text): "contains \(Self.quote(text))"
        case .notContains(let text): "does not contain \(Self.quote(text))"
        case .matches(let pattern): "matches /\(pattern)/"
        }
    }

    static func quote(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\n", with: "\\n") + "\""
    }
}

/// One step of a scenario.
public struct Step: Sendable {
    public enum ExecMode: String, Sendable { case exec, succeed, fail }
    public enum FileSide: String, Sendable { case auto, guest, host }

    public enum MemoryMetric: String, Sendable, CaseIterable {
        case guestUsed = "guest-used"
        case guestTotal = "guest-total"
        case initRSS = "init-rss"
        case qemuRSS = "qemu-rss"
    }

    public enum TrafficScope: String, Sendable { case registry, none }

    public struct CountBound: Sendable, Equatable, CustomStringConvertible {
        public var atLeast: Int?
        public var atMost: Int?
        public func check(_ n: Int) -> Bool { (atLeast.map { n >= $0 } ?? true) && (atMost.map { n <= $0 } ?? true) }
        public var description: String {
            switch (atLeast, atMost) {
            case let (a?, b?) where a == b: "exactly \(a)"
            case let (a?, b?): "between \(a) and \(b)"
            case let (a?, nil): "at least \(a)"
            case let (nil, b?): "at most \(b)"
            default: "any number"
            }
        }
    }

    /// 1-based position in the scenario.
    public var index: Int
    public var location: SourceLocation
    /// The machine it acts on (`nil` only for `sleep`).
    public var machine: String?
    public var timeout: Duration?
    /// What the step is called in reports: its `name:`, else a description.
    public var label: String
    /// What it does: a value of its kind (``ExecStep``, ``BootStep``, …).
    var action: any StepKind

    /// The step's keyword, e.g. `succeed`.
    public var keyword: String { action.keyword }
}

extension Duration {
    /// "2 s", "500 ms", "1.5 min".
    var scenarioText: String {
        let ms = milliseconds
        if ms < 1000 { return "\(Int(ms)) ms" }
        if ms < 120_000 { return ms.truncatingRemainder(dividingBy: 1000) == 0 ? "\(Int(ms / 1000)) s" : String(format: "%.1f s", ms / 1000) }
        return String(format: "%.1f min", ms / 60_000)
    }
}
