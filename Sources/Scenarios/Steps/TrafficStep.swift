import Foundation
import NpmRegistry
import Testbed

/// `traffic`: where the guest's packets went, and what the registry served.
struct TrafficStep: StepKind {
    var only: Step.TrafficScope?
    var tarballs: Step.CountBound?
    var requests: Step.CountBound?
    var keyword: String { "traffic" }
    var needsRegistry: Bool { only == .registry || tarballs != nil || requests != nil }

    static let keys: [String: Set<String>] = ["traffic": ["machine", "name"]]
    static let documentation = [
        StepDocumentation(usage: "`traffic: {…}`",
                          meaning: "`only: registry` (every packet the guest sent went to the registry; needs `capture: true`) or `only: none`; `tarballs: N` and `requests: N` (or `{at-least: N, at-most: M}`) count what the registry served since the previous `traffic` step"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: TrafficStep, described: String?) {
        let value = input.value
        let fields = try reader.mapping(value, allowed: ["only", "tarballs", "requests"])
        var only: Step.TrafficScope?
        if let o = fields["only"] {
            let text = try reader.string(o)
            guard let scope = Step.TrafficScope(rawValue: text) else { throw reader.error(o, "'registry' or 'none', not '\(text)'") }
            if let machine = input.machine, let definition = input.definition, !definition.capture {
                throw reader.error(o, "checking where traffic went needs 'capture: true' on machine '\(machine)'")
            }
            only = scope
        }
        let tarballs = try fields["tarballs"].map { try reader.countBound($0) }
        let requests = try fields["requests"].map { try reader.countBound($0) }
        guard only != nil || tarballs != nil || requests != nil else { throw reader.error(value, "say what to check: 'only', 'tarballs' or 'requests'") }
        var parts: [String] = []
        if let only { parts.append("only \(only.rawValue)") }
        if let tarballs { parts.append("tarballs \(tarballs)") }
        if let requests { parts.append("requests \(requests)") }
        return (TrafficStep(only: only, tarballs: tarballs, requests: requests), "traffic: " + parts.joined(separator: ", "))
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let state = try execution.state(step)
        let machine = state.current
        if let only {
            guard let machine else { throw StepFailure(summary: "machine '\(state.definition.name)' has not booted yet") }
            let pcap = machine.artifacts.appendingPathComponent("capture.pcap").path
            let destinations = try Capture(contentsOf: pcap).destinations(sentBy: DomainSpec.Network.guestAddress)
            let allowed: Set<String> = switch only {
            // The registry comes through the tunnel: on the NIC nothing is the registry's,
            // except on a machine with `egress: open`, where it may be asked at the gateway.
            case .registry: execution.registry.map { ["\(Registry.guestGatewayHost):\($0.port)"] } ?? []
            case .none: []
            }
            let unexpected = destinations.keys.filter { !allowed.contains($0) }.sorted()
            if !unexpected.isEmpty {
                throw StepFailure(summary: "the machine sent traffic \(only == .none ? "although it should send none" : "to more than the registry (\(allowed.sorted().joined()))"): "
                                      + unexpected.map { "\($0) (\(destinations[$0]!) packets)" }.joined(separator: ", "),
                                  details: "capture: \(pcap)", machine: machine)
            }
        }
        if tarballs != nil || requests != nil {
            guard let registry = execution.registry else { throw StepFailure(summary: "the scenario has no registry", kind: .error) }
            let all = registry.requests
            let recent = Array(all.dropFirst(min(execution.requestMark, all.count)))
            execution.requestMark = all.count
            let tarballCount = recent.filter(\.isTarball).count
            if let tarballs, !tarballs.check(tarballCount) {
                throw StepFailure(summary: "\(tarballCount) tarball\(tarballCount == 1 ? " was" : "s were") fetched from the registry since the last traffic check, expected \(tarballs)",
                                  details: recent.filter(\.isTarball).map(\.description).joined(separator: "\n"), machine: machine)
            }
            if let requests, !requests.check(recent.count) {
                throw StepFailure(summary: "the registry got \(recent.count) request\(recent.count == 1 ? "" : "s") since the last traffic check, expected \(requests)",
                                  details: recent.map(\.description).joined(separator: "\n"), machine: machine)
            }
        }
    }
}
