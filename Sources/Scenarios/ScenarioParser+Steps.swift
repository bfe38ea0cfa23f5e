import Foundation
import Testbed
import Yams

extension Reader {
    // MARK: Steps

    func step(_ field: Field, index: Int, machines: [MachineDefinition]) throws -> Step {
        let table = StepRegistry.keys
        // `- reboot` alone.
        if case .scalar(let scalar) = field.node {
            let word = scalar.string
            guard StepRegistry.bareKeywords.contains(word), let kind = StepRegistry.byKeyword[word] else {
                if table[word] != nil { throw error(field, "'\(word)' needs a value: write '\(word): …'") }
                throw error(field, "unknown step '\(word)'\(Self.suggestion(word, Array(table.keys)))")
            }
            let machine = try resolveMachine(nil, field, machines)
            // A bare keyword is the keyword with every default: no keys, no value.
            let input = StepInput(keyword: word, keyNode: field.node, value: field, step: field, keys: [:], machine: machine, user: nil, machines: machines)
            let action = try kind.parse(input, self).action
            return Step(index: index, location: location(field.node), machine: machine, timeout: nil,
                        label: Self.defaultLabel(word, nil, machine, machines.count), action: action)
        }
        guard case .mapping(let map) = field.node else {
            throw error(field, "expected a step (e.g. 'succeed: COMMAND'), found \(Self.kind(field.node))")
        }
        var action: (key: String, keyNode: Node, value: Field)?
        for (keyNode, _) in map {
            guard let key = keyNode.string else { continue }
            if table[key] != nil {
                if let first = action {
                    throw error(at: keyNode, field.path, "a step does one thing: found both '\(first.key)' and '\(key)'; split it into two steps")
                }
                action = (key, keyNode, Field(node: map[keyNode]!, path: "\(field.path).\(key)"))
            }
        }
        guard let action, let kind = StepRegistry.byKeyword[action.key] else {
            let first = map.keys.first
            let word = first?.string ?? "?"
            let allModifiers = Set(table.values.flatMap { $0 })
            if allModifiers.contains(word) {
                throw error(at: first ?? field.node, field.path, "the step has no action ('\(word)' only modifies one); actions: \(table.keys.sorted().joined(separator: ", "))")
            }
            throw error(at: first ?? field.node, field.path, "unknown step '\(word)'\(Self.suggestion(word, Array(table.keys)))")
        }
        let allowed = table[action.key]!.union([action.key])
        let keys = try mapping(field, allowed: allowed, context: "a '\(action.key)' step")
        let value = action.value

        // The machine: `boot: web` names it; any step may say `machine: web`.
        var named: (String, Field)?
        if kind.bareKeywords.contains(action.key), !isNull(value.node) {
            named = (try string(value), value)
        }
        if let m = keys["machine"] {
            if let named { throw error(m, "the machine is already named by '\(action.key): \(named.0)'") }
            named = (try string(m), m)
        }
        let machine: String? = kind.needsMachine ? try resolveMachine(named, field, machines) : nil
        let timeout = try keys["timeout"].map { try duration($0) }
        let user = try keys["as"].map { try string($0) }
        if let user, let asField = keys["as"], let machine, let definition = machines.first(where: { $0.name == machine }) {
            let known = Set(definition.users.map(\.name) + definition.homes.map(\.user) + ["root"])
            guard known.contains(user) else {
                throw error(asField, "machine '\(machine)' has no user '\(user)' (users: \(known.sorted().joined(separator: ", ")))")
            }
        }

        let input = StepInput(keyword: action.key, keyNode: action.keyNode, value: value, step: field, keys: keys,
                              machine: machine, user: user, machines: machines)
        let (parsed, described) = try kind.parse(input, self)
        let label = try keys["name"].map { try string($0) } ?? Self.defaultLabel(action.key, described, machine, machines.count)
        return Step(index: index, location: location(field.node), machine: machine, timeout: timeout, label: label, action: parsed)
    }

    static func defaultLabel(_ keyword: String, _ described: String?, _ machine: String?, _ machineCount: Int) -> String {
        let text = described ?? keyword
        guard let machine, machineCount > 1 else { return text }
        return "\(text) [\(machine)]"
    }

    func resolveMachine(_ named: (String, Field)?, _ step: Field, _ machines: [MachineDefinition]) throws -> String {
        if let (name, field) = named {
            guard machines.contains(where: { $0.name == name }) else {
                let list = machines.map(\.name)
                throw error(field, "unknown machine '\(name)'\(Self.suggestion(name, list))\(list.isEmpty ? " (the scenario defines no machines)" : " (machines: \(list.joined(separator: ", ")))")")
            }
            return name
        }
        switch machines.count {
        case 0: throw error(step, "the scenario defines no machines: add 'machines:'")
        case 1: return machines[0].name
        default: throw error(step, "the scenario has several machines (\(machines.map(\.name).joined(separator: ", "))): say which with 'machine: NAME'")
        }
    }
}
