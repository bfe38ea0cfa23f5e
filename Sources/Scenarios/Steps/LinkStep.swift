import Foundation
import Testbed

/// `link-down`, `link-up`: cut or restore a machine's end of a network.
struct LinkStep: StepKind {
    var network: String
    var up: Bool
    var keyword: String { up ? "link-up" : "link-down" }

    static let keys: [String: Set<String>] = ["link-down": ["machine", "name"], "link-up": ["machine", "name"]]
    static let documentation = [
        StepDocumentation(usage: "`link-down: NETWORK`, `link-up: NETWORK`",
                          meaning: "pull or plug the machine's cable on that network (libvirt's link state: the guest loses its carrier, nothing passes)"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: LinkStep, described: String?) {
        let network = try reader.string(input.value)
        if let definition = input.definition, !definition.networks.contains(where: { $0.network == network }) {
            let known = definition.networks.map(\.network)
            throw reader.error(input.value, "machine '\(definition.name)' is on no network '\(network)'\(Reader.suggestion(network, known))"
                + (known.isEmpty ? " (it is on none: see 'networks:')" : " (networks: \(known.joined(separator: ", ")))"))
        }
        let up = input.keyword == "link-up"
        return (LinkStep(network: network, up: up), "\(up ? "restore" : "cut") \(network)")
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let machine = try await execution.running(step)
        try await machine.setLink(network, up: up)
    }
}
