import Foundation
import Testbed

/// `file`: a file in a user's home, read in the guest or from the volume.
struct FileStep: StepKind {
    var user: String
    var path: String
    var side: Step.FileSide
    var exists: Bool
    var matchers: [OutputMatcher]
    var keyword: String { "file" }

    static let keys: [String: Set<String>] = ["file": lifecycleModifiers.union(["home", "on", "exists", "equals", "contains", "not-contains", "matches"])]
    static let documentation = [
        StepDocumentation(usage: "`file: PATH`, `home: USER`",
                          meaning: "a file in USER's home: `exists: false`, `equals:`, `contains:`, `not-contains:`, `matches:`; read in the guest while the machine runs, from the volume on the host once it stopped (`on: guest` / `on: host` to insist)"),
    ]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: FileStep, described: String?) {
        let keys = input.keys
        let path = try reader.string(input.value)
        guard !path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
            throw reader.error(input.value, "a path inside the home: relative, without '..'")
        }
        guard let homeField = keys["home"] else { throw reader.error(at: input.keyNode, input.step.path, "say whose home: 'home: USER'") }
        let home = try reader.string(homeField)
        if let machine = input.machine, let definition = input.definition, !definition.homes.contains(where: { $0.user == home }) {
            throw reader.error(homeField, "machine '\(machine)' has no home volume for '\(home)' (homes: \(definition.homes.map(\.user).joined(separator: ", ")))")
        }
        var side = Step.FileSide.auto
        if let on = keys["on"] {
            let text = try reader.string(on)
            guard let parsedSide = Step.FileSide(rawValue: text) else { throw reader.error(on, "'guest', 'host' or 'auto', not '\(text)'") }
            side = parsedSide
        }
        let exists = try keys["exists"].map { try reader.bool($0) } ?? true
        var list: [OutputMatcher] = []
        if let v = keys["equals"] { list.append(.equals(try reader.string(v))) }
        if let v = keys["contains"] { list.append(.contains(try reader.string(v))) }
        if let v = keys["not-contains"] { list.append(.notContains(try reader.string(v))) }
        if let v = keys["matches"] { list.append(.matches(try reader.regex(v))) }
        if !exists, !list.isEmpty { throw reader.error(keys["exists"]!, "a file that must not exist has no contents to check") }
        return (FileStep(user: home, path: path, side: side, exists: exists, matchers: list),
                "file ~\(home)/\(path)\(exists ? "" : " is absent")\(side == .auto ? "" : " (on the \(side.rawValue))")")
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let state = try execution.state(step)
        let machine = state.current
        let isRunning: Bool = if let machine { !(await machine.isStopped) } else { false }
        let onGuest = side == .guest || (side == .auto && isRunning)
        let shown = "~\(user)/\(path)"
        var contents: Data?
        if onGuest {
            guard let machine, isRunning else { throw StepFailure(summary: "machine '\(state.definition.name)' is not running: read \(shown) with 'on: host' instead") }
            let full = (user == "root" ? "/root/" : "/home/\(user)/") + path
            do {
                contents = try await machine.readFile(full, timeout: step.timeout)
            } catch let error as MachineError where error.agentCode == "ENOENT" {
                contents = nil
            }
        } else {
            if isRunning {
                throw StepFailure(summary: "machine '\(state.definition.name)' is running: shut it down before reading \(shown) on the host (or use 'on: guest')", machine: machine)
            }
            guard let home = state.homes[user] else { throw StepFailure(summary: "no home volume for \(user)") }
            let volume = home
            contents = try await Task.detached {
                try volume.fileExists(path) ? try volume.readFile(path) : nil
            }.value
        }
        let where_ = onGuest ? "in the guest" : "on the host (\(state.homes[user]?.path.lastPathComponent ?? "volume"))"
        guard exists else {
            if contents != nil { throw StepFailure(summary: "\(shown) exists \(where_) but should not", machine: machine) }
            return
        }
        guard let contents else { throw StepFailure(summary: "\(shown) does not exist \(where_)", machine: machine) }
        let text = String(decoding: contents, as: UTF8.self)
        try execution.check(matchers, text, "\(shown) \(where_)", machine ?? execution.booted.last!, "\n--- \(shown) ---\n\(text.prefix(2000))")
    }
}
