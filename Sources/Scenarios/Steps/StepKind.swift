import Foundation
import Yams

/// One kind of scenario step, in the spirit of swift-argument-parser's one
/// type per command: its keywords, the keys it takes, how it is read from
/// YAML, how it runs, and its line in `scenarios/README.md` live together, so
/// adding a step touches one file and ``StepRegistry``.
///
/// A parsed step is a value of its kind (``Step/action``): what the
/// scenario-level checks need from it (``machineEffect``, ``needsRegistry``)
/// it says itself, so nothing outside this file and the kind's own lists the
/// kinds.
protocol StepKind: Sendable {
    /// Each keyword and the keys a step with it accepts besides the keyword.
    static var keys: [String: Set<String>] { get }
    /// Keywords that may stand alone (`- reboot`), taking every default.
    static var bareKeywords: Set<String> { get }
    /// Whether the step acts on a machine (all but `sleep`).
    static var needsMachine: Bool { get }
    /// The rows of the step table in `scenarios/README.md`.
    static var documentation: [StepDocumentation] { get }

    /// Reads the step once the keys, machine, timeout and `as:` user passed the
    /// checks every step shares; `described` is the report label's default.
    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: Self, described: String?)

    /// The keyword it was written with, one of ``keys``.
    var keyword: String { get }
    /// What it does to the set of running machines.
    var machineEffect: MachineEffect { get }
    /// Whether it needs the scenario's registry.
    var needsRegistry: Bool { get }
    /// Whether its machine needs the tunnel's channel (it talks to a guest port).
    var needsTunnel: Bool { get }

    /// Runs it; `step` carries what every step shares (machine, timeout, label).
    func run(_ step: Step, in execution: Execution) async throws
}

enum MachineEffect: Sendable { case none, starts, stops }

extension StepKind {
    static var bareKeywords: Set<String> { [] }
    static var needsMachine: Bool { true }
    var machineEffect: MachineEffect { .none }
    var needsRegistry: Bool { false }
    var needsTunnel: Bool { false }
}

/// Keys every step that waits on a machine accepts.
let lifecycleModifiers: Set<String> = ["machine", "timeout", "name"]

/// One row of the README's step table.
struct StepDocumentation: Sendable, Equatable {
    /// How it is written, as Markdown (e.g. "`fsck: USER`").
    var usage: String
    var meaning: String

    var markdown: String { "| \(usage) | \(meaning) |" }
}

/// What a step kind parses: the step as the parser found and checked it.
struct StepInput {
    var keyword: String
    var keyNode: Node
    /// The keyword's value (`succeed: COMMAND` → `COMMAND`).
    var value: Field
    /// The whole step, for errors about it as a whole.
    var step: Field
    var keys: [String: Field]
    var machine: String?
    var user: String?
    var machines: [MachineDefinition]

    var definition: MachineDefinition? { machine.flatMap { name in machines.first { $0.name == name } } }
}

/// Every step kind. The parser's key table and dispatch, the runner's
/// dispatch and the README's step table all come from ``all``.
enum StepRegistry {
    /// In the README's order.
    static let all: [any StepKind.Type] = [
        BootStep.self, LifecycleStep.self, ExpectStep.self, SendStep.self, ExecStep.self, WaitUntilSucceedsStep.self,
        InstallStep.self, FileStep.self, ServiceStep.self, ServiceControlStep.self, HTTPStep.self, LinkStep.self,
        BootPhasesStep.self, MemoryStep.self, TrafficStep.self, FsckStep.self, SleepStep.self,
    ]

    static let byKeyword: [String: any StepKind.Type] = {
        var out: [String: any StepKind.Type] = [:]
        for kind in all {
            for keyword in kind.keys.keys {
                precondition(out[keyword] == nil, "two step kinds claim '\(keyword)'")
                out[keyword] = kind
            }
        }
        return out
    }()

    /// Keyword → keys it accepts besides itself.
    static let keys: [String: Set<String>] = all.reduce(into: [:]) { table, kind in table.merge(kind.keys) { a, _ in a } }

    static let bareKeywords: Set<String> = all.reduce(into: []) { $0.formUnion($1.bareKeywords) }

    /// The README's step table, header included.
    static var markdownTable: String {
        (["| step | what it does |", "|---|---|"] + all.flatMap { $0.documentation.map(\.markdown) }).joined(separator: "\n")
    }
}
