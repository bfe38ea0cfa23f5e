import Foundation
import Testbed
import Yams

extension Reader {
    // MARK: Networks

    /// `networks: {NAME: [MACHINE, MACHINE]}`: a private link between two
    /// machines (libvirt's udp interface is point to point), recorded on both.
    func networks(_ field: Field, machines: inout [MachineDefinition]) throws {
        for (index, (name, nameNode, members)) in try entries(field).enumerated() {
            guard name.range(of: #"^[a-z][a-z0-9-]{0,14}$"#, options: .regularExpression) != nil else {
                throw error(at: nameNode, members.path, "a network name is lower-case letters, digits and '-' (at most 15), starting with a letter")
            }
            let names = try stringList(members)
            guard names.count == 2, names[0] != names[1] else {
                throw error(members, "a network joins exactly two machines (libvirt's udp link is point to point), got \(names.count == 2 ? "the same one twice" : "\(names.count)")")
            }
            for machine in names where !machines.contains(where: { $0.name == machine }) {
                throw error(members, "no machine '\(machine)' in this scenario\(Reader.suggestion(machine, machines.map(\.name))) (machines: \(machines.map(\.name).joined(separator: ", ")))")
            }
            guard index < 100 else { throw error(field, "at most 100 networks") }
            for (end, machine) in names.enumerated() {
                let i = machines.firstIndex { $0.name == machine }!
                machines[i].networks.append(MachineDefinition.NetworkEnd(network: name, index: index, end: end, peer: names[1 - end]))
            }
        }
    }
}
