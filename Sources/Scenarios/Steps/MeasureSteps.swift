import Foundation
import Testbed

/// `boot-phases`: each boot phase happened within its ceiling.
struct BootPhasesStep: StepKind {
    var ceilings: [(phase: String, ceiling: Duration)]
    var keyword: String { "boot-phases" }

    static let keys: [String: Set<String>] = ["boot-phases": ["machine", "name"]]
    static let knownPhases = ["firstConsoleByte", "kernel", "node", "init", "mounts", "config", "homes", "packages", "network", "agent", "ready", "agentReady"]
    // The phase list is rendered from `knownPhases` so the README cannot miss one the parser accepts.
    static let documentation = [
        StepDocumentation(usage: "`boot-phases: {PHASE: CEILING, …}`",
                          meaning: "each phase happened within its ceiling since the host started the machine (phases: \(knownPhases.map { "`\($0)`" }.joined(separator: ", ")))"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: BootPhasesStep, described: String?) {
        let value = input.value
        var ceilings: [(phase: String, ceiling: Duration)] = []
        for (phase, phaseNode, limit) in try reader.entries(value) {
            guard knownPhases.contains(phase) else {
                throw reader.error(at: phaseNode, value.child(phase), "no boot phase '\(phase)'\(Reader.suggestion(phase, knownPhases)) (phases: \(knownPhases.joined(separator: ", ")))")
            }
            ceilings.append((phase, try reader.duration(limit)))
        }
        guard !ceilings.isEmpty else { throw reader.error(value, "name at least one phase and its ceiling, e.g. 'ready: 20s'") }
        return (BootPhasesStep(ceilings: ceilings), "boot phases: " + ceilings.map { "\($0.phase) ≤ \($0.ceiling.scenarioText)" }.joined(separator: ", "))
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let state = try execution.state(step)
        guard let machine = state.current else { throw StepFailure(summary: "machine '\(state.definition.name)' has not booted yet") }
        let report = await machine.bootReport()
        var over: [String] = []
        for (phase, ceiling) in ceilings {
            guard let ms = report[phase] else {
                throw StepFailure(summary: "the boot report has no phase '\(phase)' (it has: \(report.phases.map(\.name).joined(separator: ", ")))", machine: machine)
            }
            if ms > ceiling.milliseconds {
                over.append(String(format: "%@ at %.2f s, over its ceiling of %@", phase, ms / 1000, ceiling.scenarioText))
            }
        }
        if !over.isEmpty {
            throw StepFailure(summary: "boot phases over their ceilings: " + over.joined(separator: "; "),
                              details: "phases (ms since host start): " + report.phases.map { "\($0.name) \(Int($0.milliseconds))" }.joined(separator: ", ")
                                  + " (accelerator: \(report.accelerator.rawValue))", machine: machine)
        }
    }
}

/// `memory`: measures now, each metric under its ceiling.
struct MemoryStep: StepKind {
    var ceilings: [(metric: Step.MemoryMetric, ceilingKiB: UInt64)]
    var keyword: String { "memory" }

    static let keys: [String: Set<String>] = ["memory": ["machine", "name"]]
    static let documentation = [
        StepDocumentation(usage: "`memory: {METRIC: CEILING, …}`",
                          meaning: "measure now; metrics `guest-used` (MemTotal − MemAvailable), `guest-total`, `init-rss`, `qemu-rss`"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: MemoryStep, described: String?) {
        let value = input.value
        var ceilings: [(metric: Step.MemoryMetric, ceilingKiB: UInt64)] = []
        for (metric, metricNode, limit) in try reader.entries(value) {
            guard let parsedMetric = Step.MemoryMetric(rawValue: metric) else {
                let names = Step.MemoryMetric.allCases.map(\.rawValue)
                throw reader.error(at: metricNode, value.child(metric), "no memory metric '\(metric)'\(Reader.suggestion(metric, names)) (metrics: \(names.joined(separator: ", ")))")
            }
            ceilings.append((parsedMetric, try reader.size(limit)))
        }
        guard !ceilings.isEmpty else { throw reader.error(value, "name at least one metric and its ceiling, e.g. 'guest-used: 96MiB'") }
        return (MemoryStep(ceilings: ceilings), "memory: " + ceilings.map { "\($0.metric.rawValue) ≤ \($0.ceilingKiB / 1024) MiB" }.joined(separator: ", "))
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let machine = try await execution.running(step)
        let memory = try await machine.memory()
        execution.lastMemory[machine.name] = memory
        var over: [String] = []
        for (metric, ceiling) in ceilings {
            let value: UInt64? = switch metric {
            case .guestUsed: memory.guestUsedKiB
            case .guestTotal: memory.guestTotalKiB
            case .initRSS: memory.initRssKiB
            case .qemuRSS: memory.qemuRssKiB
            }
            guard let value else { throw StepFailure(summary: "no measurement of \(metric.rawValue)", machine: machine) }
            if value > ceiling {
                over.append("\(metric.rawValue) is \(value / 1024) MiB, over its ceiling of \(ceiling / 1024) MiB")
            }
        }
        if !over.isEmpty { throw StepFailure(summary: over.joined(separator: "; "), machine: machine) }
    }
}
