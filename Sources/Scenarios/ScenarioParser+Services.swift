import Foundation
import Testbed
import Yams

extension Reader {
    // MARK: Services and forwarded ports

    /// `services: {NAME: {command | argv, user, cwd, env, restart}}`: what
    /// init runs at boot, written into the machine's boot configuration.
    func services(_ field: Field, users: Set<String>) throws -> [BootConfig.Service] {
        var out: [BootConfig.Service] = []
        for (name, nameNode, child) in try entries(field) {
            guard name.range(of: #"^[a-z0-9][a-z0-9_-]{0,31}$"#, options: .regularExpression) != nil else {
                throw error(at: nameNode, child.path, "a service name is lower-case letters, digits, '_' and '-', at most 32 (it names its log file)")
            }
            let keys = try mapping(child, allowed: ["command", "argv", "user", "cwd", "env", "restart"])
            let argv: [String]
            switch (keys["command"], keys["argv"]) {
            case (let command?, nil): argv = CommandWords.split(try string(command))
            case (nil, let list?): argv = try stringList(list)
            case (_?, _?): throw error(child, "give 'command' or 'argv', not both")
            case (nil, nil): throw error(at: nameNode, child.path, "say what service '\(name)' runs: 'command: …' or 'argv: […]'")
            }
            guard let program = argv.first, !program.isEmpty else { throw error(keys["command"] ?? keys["argv"]!, "the command is empty") }
            let user = try keys["user"].map { try string($0) }
            if let user, let userField = keys["user"], !users.contains(user) {
                throw error(userField, "no user '\(user)' on this machine (users: \(users.sorted().joined(separator: ", ")))")
            }
            var env: [String: String]?
            if let value = keys["env"] {
                env = [:]
                for (variable, _, text) in try entries(value) { env?[variable] = try string(text) }
            }
            let restart = try keys["restart"].map { value in
                let policy = try string(value)
                guard ["always", "on-failure", "never"].contains(policy) else { throw error(value, "'always', 'on-failure' or 'never', not '\(policy)'") }
                return policy
            }
            out.append(BootConfig.Service(name: name, user: user, argv: argv, cwd: try keys["cwd"].map { try string($0) }, env: env, restart: restart))
        }
        return out
    }

    /// `forward: [8080]` (any free host port) or `forward: {8080: 18080}` (guest → host).
    func forwards(_ field: Field) throws -> [MachineDefinition.Forward] {
        if case .sequence(let items) = field.node {
            return try items.enumerated().map { index, node in
                MachineDefinition.Forward(guestPort: try port(Field(node: node, path: field.item(index + 1)), allowZero: false), hostPort: 0)
            }
        }
        return try entries(field).map { guest, guestNode, host in
            guard let guestPort = Int(guest), (1...65_535).contains(guestPort) else {
                throw error(at: guestNode, host.path, "a guest port is 1–65535, not '\(guest)'")
            }
            return MachineDefinition.Forward(guestPort: guestPort, hostPort: try port(host, allowZero: true))
        }
    }

    func port(_ field: Field, allowZero: Bool) throws -> Int {
        let value = try int(field)
        guard ((allowZero ? 0 : 1)...65_535).contains(value) else {
            throw error(field, "a port is \(allowZero ? "0 (any free one)" : "1")–65535, not \(value)")
        }
        return value
    }
}
