import Foundation
import Testbed
import Yams

/// Reads scenario files: YAML composed into nodes (so every value keeps its
/// line and column), checked strictly, turned into a ``Scenario``.
///
/// Every problem is a ``ScenarioError`` naming `file:line:column` and the
/// field; nothing is booted for a scenario that does not parse.
///
/// ```swift
/// let scenario = try ScenarioParser().parse(file: URL(fileURLWithPath: "scenarios/smoke.yaml"))
/// ```
public struct ScenarioParser: Sendable {
    /// Check that named files exist (images, fixtures, files copied into homes).
    public var checkFiles: Bool
    /// The image machines use when they name none (`nil`: `NodeOSImage.defaultDirectory()`).
    public var defaultImage: URL?
    /// Variables set from outside (the CLI's `--var`), over the file's own.
    public var overrides: [String: String]

    /// Variables the runner fills in: `${registry}` is the registry's URL as guests reach it.
    public static let runtimeVariables: Set<String> = ["registry"]

    public init(checkFiles: Bool = true, defaultImage: URL? = nil, overrides: [String: String] = [:]) {
        self.checkFiles = checkFiles
        self.defaultImage = defaultImage
        self.overrides = overrides
    }

    /// Reads and parses one file.
    public func parse(file url: URL, displayPath: String? = nil) throws(ScenarioError) -> Scenario {
        let display = displayPath ?? url.relativePath
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw ScenarioError(location: SourceLocation(file: display, line: 1, column: 1), field: "",
                                message: "cannot read the scenario file: \(FileManager.default.fileExists(atPath: url.path) ? "not UTF-8 text" : "no such file")")
        }
        return try parse(yaml: text, file: display, directory: url.deletingLastPathComponent())
    }

    /// Parses a scenario from text; `file` names it in errors, `directory` anchors relative paths.
    public func parse(yaml: String, file: String, directory: URL) throws(ScenarioError) -> Scenario {
        var reader = Reader(file: file, directory: directory, options: self)
        do {
            return try reader.scenario(yaml: yaml)
        } catch let error as ScenarioError {
            throw error
        } catch {
            throw ScenarioError(location: SourceLocation(file: file, line: 1, column: 1), field: "", message: "\(error)")
        }
    }
}

/// A node and the path that led to it.
struct Field {
    var node: Node
    var path: String

    func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    func item(_ index: Int) -> String { "\(path)[\(index)]" }
}

struct Reader {
    let file: String
    let directory: URL
    let options: ScenarioParser
    var variables: [String: String] = [:]

    init(file: String, directory: URL, options: ScenarioParser) {
        self.file = file
        self.directory = directory
        self.options = options
    }

    // MARK: Errors and positions

    func location(_ node: Node?) -> SourceLocation {
        let mark = node?.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    func error(_ field: Field, _ message: String) -> ScenarioError {
        ScenarioError(location: location(field.node), field: field.path, message: message)
    }

    func error(at node: Node, _ path: String, _ message: String) -> ScenarioError {
        ScenarioError(location: location(node), field: path, message: message)
    }

    static func kind(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain, scalar.string.isEmpty || scalar.string == "~" || scalar.string == "null" { return "nothing" }
            return "the text '\(scalar.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    // MARK: Document

    mutating func scenario(yaml: String) throws -> Scenario {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                throw ScenarioError(location: SourceLocation(file: file, line: 1, column: 1), field: "", message: "the file is empty: a scenario needs 'steps'")
            }
            root = node
        } catch let error as ScenarioError {
            throw error
        } catch {
            throw yamlError(error)
        }
        let top = Field(node: root, path: "")
        let keys = try mapping(top, allowed: ["name", "description", "timeout", "variables", "registry", "machines", "steps"])

        // Variables first: everything after may use them.
        var declared: [String: String] = [:]
        if let value = keys["variables"] {
            for (key, keyNode, child) in try entries(value) {
                guard key.range(of: #"^[A-Za-z_][A-Za-z0-9_]*$"#, options: .regularExpression) != nil else {
                    throw error(at: keyNode, value.child(key), "a variable name is letters, digits and '_', not starting with a digit")
                }
                guard !ScenarioParser.runtimeVariables.contains(key) else {
                    throw error(at: keyNode, value.child(key), "'\(key)' is set by the runner and cannot be redefined")
                }
                declared[key] = try string(child, substitute: false)
            }
        }
        variables = declared.merging(options.overrides) { _, new in new }
        // Variables may use earlier ones.
        for (key, text) in variables where text.contains("${") {
            if let value = keys["variables"], let node = try? entries(value).first(where: { $0.0 == key })?.2 {
                variables[key] = try substitute(text, node.node, path: node.path)
            }
        }

        let name = try keys["name"].map { try string($0) } ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        let description = try keys["description"].map { try string($0) }
        let timeout = try keys["timeout"].map { try duration($0) }

        var machines: [MachineDefinition] = []
        if let value = keys["machines"] {
            for (key, keyNode, child) in try entries(value) {
                guard key.range(of: #"^[a-z][a-z0-9-]{0,23}$"#, options: .regularExpression) != nil else {
                    throw error(at: keyNode, value.child(key), "a machine name is lower-case letters, digits and '-' (at most 24), starting with a letter")
                }
                machines.append(try machine(key, child, keyNode: keyNode))
            }
        }

        guard let stepsField = keys["steps"] else {
            throw ScenarioError(location: location(root), field: "steps", message: "missing: a scenario needs 'steps', a list of what to do")
        }
        guard case .sequence(let sequence) = stepsField.node else {
            throw error(stepsField, "expected a list of steps, found \(Self.kind(stepsField.node))")
        }
        guard !sequence.isEmpty else { throw error(stepsField, "the list of steps is empty") }
        var steps: [Step] = []
        for (offset, node) in sequence.enumerated() {
            steps.append(try step(Field(node: node, path: stepsField.item(offset + 1)), index: offset + 1, machines: machines))
        }

        // The registry: wanted when a machine installs packages or a step installs or counts requests.
        var registry: URL?
        let needsRegistry = machines.contains { $0.users.contains { !$0.packages.isEmpty } } || steps.contains {
            switch $0.action {
            case .install: true
            case .traffic(let only, let tarballs, let requests): only == .registry || tarballs != nil || requests != nil
            default: false
            }
        } || keys["registry"] != nil || usesRuntimeVariable(yaml, "registry")
        if needsRegistry {
            let folder: URL
            if let value = keys["registry"] {
                if case .scalar(let scalar) = value.node, scalar.style == .plain, scalar.string == "true" {
                    folder = directory.appendingPathComponent("packages")
                } else {
                    folder = resolve(try string(value))
                }
                try requireFile(folder, value, what: "the registry's package fixtures folder", directory: true)
            } else {
                folder = directory.appendingPathComponent("packages")
                try requireFile(folder, stepsField, what: "the registry's package fixtures folder (default: packages/ beside the scenario; set 'registry:')", directory: true)
            }
            registry = folder.standardizedFileURL
        }

        return Scenario(name: name, description: description, file: file, directory: directory, timeout: timeout,
                        variables: variables, registry: registry, machines: machines, steps: steps)
    }

    private func usesRuntimeVariable(_ yaml: String, _ name: String) -> Bool { yaml.contains("${\(name)}") }

    func yamlError(_ error: any Error) -> ScenarioError {
        func at(_ mark: Mark, _ problem: String, _ context: YamlError.Context?) -> ScenarioError {
            var message = "malformed YAML: \(problem)"
            if let context { message += " (\(context.text) at \(context.mark.line):\(context.mark.column))" }
            return ScenarioError(location: SourceLocation(file: file, line: mark.line, column: mark.column), field: "", message: message)
        }
        switch error as? YamlError {
        case .scanner(let context, let problem, let mark, _)?: return at(mark, problem, context)
        case .parser(let context, let problem, let mark, _)?: return at(mark, problem, context)
        case .composer(let context, let problem, let mark, _)?: return at(mark, problem, context)
        case .duplicatedKeysInMapping(let duplicates, let context)?:
            return ScenarioError(location: SourceLocation(file: file, line: context.mark.line, column: context.mark.column), field: "",
                                 message: "malformed YAML: a key appears twice in one mapping: \(duplicates.joined(separator: ", "))")
        case .reader(let problem, let offset, _, _)?:
            return ScenarioError(location: SourceLocation(file: file, line: 1, column: 1), field: "",
                                 message: "malformed YAML: \(problem)\(offset.map { " at byte \($0)" } ?? "")")
        default:
            return ScenarioError(location: SourceLocation(file: file, line: 1, column: 1), field: "", message: "malformed YAML: \(error)")
        }
    }

    // MARK: Machines

    func machine(_ name: String, _ field: Field, keyNode: Node) throws -> MachineDefinition {
        let keys: [String: Field]
        if case .scalar(let scalar) = field.node, scalar.style == .plain, scalar.string.isEmpty || scalar.string == "~" || scalar.string == "null" {
            keys = [:] // `web:` alone: every default.
        } else {
            keys = try mapping(field, allowed: ["image", "memory", "vcpus", "hostname", "kernel-parameters", "network", "capture",
                                                "users", "homes", "allowed-guest-errors", "ignore-checks"])
        }
        var image: URL
        if let value = keys["image"] {
            image = resolve(try string(value))
            try requireFile(image.appendingPathComponent("manifest.json"), value, what: "the NodeOS image (its manifest.json)", directory: false)
        } else {
            image = options.defaultImage ?? NodeOSImage.defaultDirectory()
            if options.checkFiles, !FileManager.default.fileExists(atPath: image.appendingPathComponent("manifest.json").path) {
                throw error(at: keyNode, field.path, "no NodeOS image at \(image.path): build it with '\(NodeOSImage.buildCommand)', set NODEOS_IMAGE, or give 'image:'")
            }
        }
        var definition = MachineDefinition(name: name, location: location(keyNode), image: image.standardizedFileURL)
        if let value = keys["memory"] {
            let kib = try size(value)
            guard kib >= 64 * 1024 else { throw error(value, "at least 64 MiB, got \(kib / 1024) MiB") }
            definition.memoryMiB = Int(kib / 1024)
        }
        if let value = keys["vcpus"] {
            let n = try int(value)
            guard (1...8).contains(n) else { throw error(value, "between 1 and 8, got \(n)") }
            definition.vcpus = n
        }
        if let value = keys["hostname"] {
            let host = try string(value)
            guard host.range(of: #"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"#, options: .regularExpression) != nil else {
                throw error(value, "'\(host)' is not a host name (lower-case letters, digits, '-')")
            }
            definition.hostname = host
        }
        if let value = keys["kernel-parameters"] { definition.kernelParameters = try stringList(value) }
        if let value = keys["network"] { definition.network = try bool(value) }
        if let value = keys["capture"] { definition.capture = try bool(value) }
        if definition.capture && !definition.network, let value = keys["capture"] {
            throw error(value, "capturing traffic needs a NIC: drop 'network: false'")
        }
        if let value = keys["allowed-guest-errors"] { definition.allowedGuestErrors = try stringList(value) }
        if let value = keys["ignore-checks"] {
            let names = try stringList(value)
            let known = Set(ConsoleCheck.defaults.map(\.name))
            for name in names where !known.contains(name) {
                throw error(value, "no default check named '\(name)' (checks: \(known.sorted().joined(separator: ", ")))")
            }
            definition.ignoredChecks = names
        }
        if let value = keys["users"] {
            for (user, userKey, child) in try entries(value) {
                try checkUserName(user, userKey, value.child(user))
                let fields = try mapping(child, allowed: ["uid", "password", "packages"], allowEmpty: true)
                var entry = MachineDefinition.User(name: user, uid: nil, password: nil, packages: [])
                if let uid = fields["uid"] { entry.uid = try uidValue(uid) }
                if let password = fields["password"] { entry.password = try string(password) }
                if let packages = fields["packages"] { entry.packages = try stringList(packages) }
                definition.users.append(entry)
            }
        }
        if let value = keys["homes"] {
            for (index, (user, userKey, child)) in try entries(value).enumerated() {
                try checkUserName(user, userKey, value.child(user))
                let fields = try mapping(child, allowed: ["uid", "size", "files"], allowEmpty: true)
                let declaredUID = definition.users.first { $0.name == user }?.uid
                var uid = declaredUID ?? 1000 + index
                if let value = fields["uid"] {
                    uid = try uidValue(value)
                    if let declaredUID, declaredUID != uid {
                        throw error(value, "\(user)'s home has uid \(uid) but users.\(user).uid is \(declaredUID)")
                    }
                }
                var sizeMiB = 64
                if let value = fields["size"] {
                    let kib = try size(value)
                    guard kib >= 8 * 1024 else { throw error(value, "a home volume is at least 8 MiB") }
                    sizeMiB = Int(kib / 1024)
                }
                var files: [(path: String, source: MachineDefinition.FileSource)] = []
                if let value = fields["files"] {
                    for (path, pathNode, content) in try entries(value) {
                        let filePath = value.child(path)
                        guard !path.hasPrefix("/"), !path.split(separator: "/").contains(".."), !path.isEmpty else {
                            throw error(at: pathNode, filePath, "a path inside the home: relative, without '..'")
                        }
                        if case .mapping = content.node {
                            let source = try mapping(content, allowed: ["from"])
                            guard let from = source["from"] else { throw error(content, "expected 'from: HOST-PATH' or the file's text") }
                            let url = resolve(try string(from))
                            try requireFile(url, from, what: "the file to copy into the home", directory: false)
                            files.append((path, .host(url)))
                        } else {
                            files.append((path, .text(try string(content))))
                        }
                    }
                }
                definition.homes.append(.init(user: user, uid: uid, sizeMiB: sizeMiB, files: files))
            }
        }
        return definition
    }

    func checkUserName(_ user: String, _ node: Node, _ path: String) throws {
        guard user.range(of: #"^[a-z_][a-z0-9_-]{0,31}$"#, options: .regularExpression) != nil else {
            throw error(at: node, path, "a user name is lower-case letters, digits, '_' and '-', starting with a letter or '_'")
        }
    }

    func uidValue(_ field: Field) throws -> Int {
        let uid = try int(field)
        guard (1...65_533).contains(uid) else { throw error(field, "a uid between 1 and 65533, got \(uid)") }
        return uid
    }

    // MARK: Steps

    static let lifecycleModifiers: Set<String> = ["machine", "timeout", "name"]
    static let actions: [String: Set<String>] = [
        "boot": lifecycleModifiers.union(["wait"]),
        "reboot": lifecycleModifiers,
        "shutdown": lifecycleModifiers,
        "crash": ["machine", "name"],
        "expect": lifecycleModifiers.union(["failure"]),
        "send": ["machine", "name"],
        "type": ["machine", "name"],
        "exec": lifecycleModifiers.union(["as", "status", "stdout", "stderr"]),
        "succeed": lifecycleModifiers.union(["as", "stdout", "stderr"]),
        "fail": lifecycleModifiers.union(["as", "status", "stdout", "stderr"]),
        "wait-until-succeeds": lifecycleModifiers.union(["as", "stdout"]),
        "install": lifecycleModifiers.union(["as"]),
        "file": lifecycleModifiers.union(["home", "on", "exists", "equals", "contains", "not-contains", "matches"]),
        "boot-phases": ["machine", "name"],
        "memory": ["machine", "name"],
        "traffic": ["machine", "name"],
        "sleep": ["name"],
        "fsck": ["machine", "name", "needs-recovery"],
    ]
    static let scalarSteps: Set<String> = ["boot", "reboot", "shutdown", "crash"]
    static let knownPhases = ["firstConsoleByte", "kernel", "node", "init", "mounts", "config", "homes", "packages", "network", "agent", "ready", "agentReady"]

    func step(_ field: Field, index: Int, machines: [MachineDefinition]) throws -> Step {
        // `- reboot` alone.
        if case .scalar(let scalar) = field.node {
            let word = scalar.string
            guard Self.scalarSteps.contains(word) else {
                if Self.actions[word] != nil { throw error(field, "'\(word)' needs a value: write '\(word): …'") }
                throw error(field, "unknown step '\(word)'\(Self.suggestion(word, Array(Self.actions.keys)))")
            }
            let machine = try resolveMachine(nil, field, machines)
            let action: Step.Action = switch word {
            case "boot": .boot(waitForAgent: true)
            case "reboot": .reboot
            case "shutdown": .shutdown
            default: .crash
            }
            return Step(index: index, location: location(field.node), machine: machine, timeout: nil,
                        label: Self.defaultLabel(word, nil, machine, machines.count), action: action)
        }
        guard case .mapping(let map) = field.node else {
            throw error(field, "expected a step (e.g. 'succeed: COMMAND'), found \(Self.kind(field.node))")
        }
        var action: (key: String, keyNode: Node, value: Field)?
        for (keyNode, _) in map {
            guard let key = keyNode.string else { continue }
            if Self.actions[key] != nil {
                if let first = action {
                    throw error(at: keyNode, field.path, "a step does one thing: found both '\(first.key)' and '\(key)'; split it into two steps")
                }
                action = (key, keyNode, Field(node: map[keyNode]!, path: "\(field.path).\(key)"))
            }
        }
        guard let action else {
            let first = map.keys.first
            let word = first?.string ?? "?"
            let allModifiers = Set(Self.actions.values.flatMap { $0 })
            if allModifiers.contains(word) {
                throw error(at: first ?? field.node, field.path, "the step has no action ('\(word)' only modifies one); actions: \(Self.actions.keys.sorted().joined(separator: ", "))")
            }
            throw error(at: first ?? field.node, field.path, "unknown step '\(word)'\(Self.suggestion(word, Array(Self.actions.keys)))")
        }
        let allowed = Self.actions[action.key]!.union([action.key])
        let keys = try mapping(field, allowed: allowed, context: "a '\(action.key)' step")
        let value = action.value

        // The machine: `boot: web` names it; any step may say `machine: web`.
        var named: (String, Field)?
        if Self.scalarSteps.contains(action.key), !isNull(value.node) {
            named = (try string(value), value)
        }
        if let m = keys["machine"] {
            if let named { throw error(m, "the machine is already named by '\(action.key): \(named.0)'") }
            named = (try string(m), m)
        }
        let machine: String? = action.key == "sleep" ? nil : try resolveMachine(named, field, machines)
        let timeout = try keys["timeout"].map { try duration($0) }
        let user = try keys["as"].map { try string($0) }
        if let user, let asField = keys["as"], let machine, let definition = machines.first(where: { $0.name == machine }) {
            let known = Set(definition.users.map(\.name) + definition.homes.map(\.user) + ["root"])
            guard known.contains(user) else {
                throw error(asField, "machine '\(machine)' has no user '\(user)' (users: \(known.sorted().joined(separator: ", ")))")
            }
        }

        let parsed: Step.Action
        var described: String?
        switch action.key {
        case "boot":
            var wait = true
            if let w = keys["wait"] {
                switch try string(w) {
                case "agent": wait = true
                case "console": wait = false
                case let other: throw error(w, "'agent' (the default: wait until the agent is ready) or 'console' (start it, wait for nothing), not '\(other)'")
                }
            }
            parsed = .boot(waitForAgent: wait)
        case "reboot": parsed = .reboot
        case "shutdown": parsed = .shutdown
        case "crash": parsed = .crash
        case "expect":
            let success = try patterns(value)
            let failure = try keys["failure"].map { try patterns($0) } ?? []
            parsed = .expect(success: success, failure: failure)
            described = "expect " + success.map(\.description).joined(separator: " or ")
        case "send", "type":
            var text = try string(value)
            if action.key == "type" { text += "\n" }
            parsed = .send(text)
            described = "\(action.key) \(OutputMatcher.quote(action.key == "type" ? String(text.dropLast()) : text))"
        case "exec", "succeed", "fail":
            let command = try string(value)
            guard !command.trimmingCharacters(in: .whitespaces).isEmpty else { throw error(value, "the command is empty") }
            let status = try keys["status"].map { try int($0) }
            if action.key == "fail", status == 0, let s = keys["status"] { throw error(s, "a 'fail' step expects a non-zero status") }
            let stdout = try keys["stdout"].map { try matchers($0) } ?? []
            let stderr = try keys["stderr"].map { try matchers($0) } ?? []
            parsed = .exec(Step.ExecMode(rawValue: action.key)!, command: command, user: user, status: status, stdout: stdout, stderr: stderr)
            described = "\(action.key) '\(command)'\(user.map { " as \($0)" } ?? "")"
        case "wait-until-succeeds":
            let command = try string(value)
            let stdout = try keys["stdout"].map { try matchers($0) } ?? []
            parsed = .waitUntilSucceeds(command: command, user: user, stdout: stdout)
            described = "wait until '\(command)' succeeds\(user.map { " as \($0)" } ?? "")"
        case "install":
            let packages = try stringList(value)
            guard !packages.isEmpty else { throw error(value, "name at least one package") }
            guard let user else { throw error(at: action.keyNode, field.path, "say who installs: 'as: USER' (npm install -g puts packages in that user's home)") }
            parsed = .install(packages: packages, user: user)
            described = "install \(packages.joined(separator: " ")) as \(user)"
        case "file":
            let path = try string(value)
            guard !path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
                throw error(value, "a path inside the home: relative, without '..'")
            }
            guard let homeField = keys["home"] else { throw error(at: action.keyNode, field.path, "say whose home: 'home: USER'") }
            let home = try string(homeField)
            if let machine, let definition = machines.first(where: { $0.name == machine }), !definition.homes.contains(where: { $0.user == home }) {
                throw error(homeField, "machine '\(machine)' has no home volume for '\(home)' (homes: \(definition.homes.map(\.user).joined(separator: ", ")))")
            }
            var side = Step.FileSide.auto
            if let on = keys["on"] {
                let text = try string(on)
                guard let parsedSide = Step.FileSide(rawValue: text) else { throw error(on, "'guest', 'host' or 'auto', not '\(text)'") }
                side = parsedSide
            }
            let exists = try keys["exists"].map { try bool($0) } ?? true
            var list: [OutputMatcher] = []
            if let v = keys["equals"] { list.append(.equals(try string(v))) }
            if let v = keys["contains"] { list.append(.contains(try string(v))) }
            if let v = keys["not-contains"] { list.append(.notContains(try string(v))) }
            if let v = keys["matches"] { list.append(.matches(try regex(v))) }
            if !exists, !list.isEmpty { throw error(keys["exists"]!, "a file that must not exist has no contents to check") }
            parsed = .file(user: home, path: path, side: side, exists: exists, matchers: list)
            described = "file ~\(home)/\(path)\(exists ? "" : " is absent")\(side == .auto ? "" : " (on the \(side.rawValue))")"
        case "boot-phases":
            var ceilings: [(phase: String, ceiling: Duration)] = []
            for (phase, phaseNode, limit) in try entries(value) {
                guard Self.knownPhases.contains(phase) else {
                    throw error(at: phaseNode, value.child(phase), "no boot phase '\(phase)'\(Self.suggestion(phase, Self.knownPhases)) (phases: \(Self.knownPhases.joined(separator: ", ")))")
                }
                ceilings.append((phase, try duration(limit)))
            }
            guard !ceilings.isEmpty else { throw error(value, "name at least one phase and its ceiling, e.g. 'ready: 20s'") }
            parsed = .bootPhases(ceilings)
            described = "boot phases: " + ceilings.map { "\($0.phase) ≤ \($0.ceiling.scenarioText)" }.joined(separator: ", ")
        case "memory":
            var ceilings: [(metric: Step.MemoryMetric, ceilingKiB: UInt64)] = []
            for (metric, metricNode, limit) in try entries(value) {
                guard let parsedMetric = Step.MemoryMetric(rawValue: metric) else {
                    let names = Step.MemoryMetric.allCases.map(\.rawValue)
                    throw error(at: metricNode, value.child(metric), "no memory metric '\(metric)'\(Self.suggestion(metric, names)) (metrics: \(names.joined(separator: ", ")))")
                }
                ceilings.append((parsedMetric, try size(limit)))
            }
            guard !ceilings.isEmpty else { throw error(value, "name at least one metric and its ceiling, e.g. 'guest-used: 96MiB'") }
            parsed = .memory(ceilings)
            described = "memory: " + ceilings.map { "\($0.metric.rawValue) ≤ \($0.ceilingKiB / 1024) MiB" }.joined(separator: ", ")
        case "traffic":
            let fields = try mapping(value, allowed: ["only", "tarballs", "requests"])
            var only: Step.TrafficScope?
            if let o = fields["only"] {
                let text = try string(o)
                guard let scope = Step.TrafficScope(rawValue: text) else { throw error(o, "'registry' or 'none', not '\(text)'") }
                if let machine, let definition = machines.first(where: { $0.name == machine }), !definition.capture {
                    throw error(o, "checking where traffic went needs 'capture: true' on machine '\(machine)'")
                }
                only = scope
            }
            let tarballs = try fields["tarballs"].map { try countBound($0) }
            let requests = try fields["requests"].map { try countBound($0) }
            guard only != nil || tarballs != nil || requests != nil else { throw error(value, "say what to check: 'only', 'tarballs' or 'requests'") }
            parsed = .traffic(only: only, tarballs: tarballs, requests: requests)
            var parts: [String] = []
            if let only { parts.append("only \(only.rawValue)") }
            if let tarballs { parts.append("tarballs \(tarballs)") }
            if let requests { parts.append("requests \(requests)") }
            described = "traffic: " + parts.joined(separator: ", ")
        case "fsck":
            let home = try string(value)
            if let machine, let definition = machines.first(where: { $0.name == machine }), !definition.homes.contains(where: { $0.user == home }) {
                throw error(value, "machine '\(machine)' has no home volume for '\(home)' (homes: \(definition.homes.map(\.user).joined(separator: ", ")))")
            }
            let recovery = try keys["needs-recovery"].map { try bool($0) }
            parsed = .fsck(user: home, needsRecovery: recovery)
            described = "fsck \(home)'s home\(recovery == false ? ", nothing left in the journal" : recovery == true ? ", journal to replay" : "")"
        case "sleep":
            let pause = try duration(value)
            parsed = .sleep(pause)
            described = "sleep \(pause.scenarioText)"
        default:
            throw error(at: action.keyNode, field.path, "unknown step '\(action.key)'")
        }
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

    // MARK: Values

    func isNull(_ node: Node) -> Bool {
        if case .scalar(let scalar) = node, scalar.style == .plain, scalar.string.isEmpty || scalar.string == "~" || scalar.string == "null" { return true }
        return false
    }

    /// The keys of a mapping, each checked against `allowed`.
    func mapping(_ field: Field, allowed: Set<String>, allowEmpty: Bool = false, context: String? = nil) throws -> [String: Field] {
        if allowEmpty, isNull(field.node) { return [:] }
        guard case .mapping(let map) = field.node else {
            throw error(field, "expected a mapping (key: value) with \(allowed.sorted().map { "'\($0)'" }.joined(separator: ", ")), found \(Self.kind(field.node))")
        }
        var out: [String: Field] = [:]
        for (keyNode, valueNode) in map {
            guard case .scalar(let keyScalar) = keyNode else { throw error(at: keyNode, field.path, "a key must be text, found \(Self.kind(keyNode))") }
            let key = keyScalar.string
            guard allowed.contains(key) else {
                throw error(at: keyNode, field.child(key), "unknown key '\(key)'\(context.map { " in \($0)" } ?? "")\(Self.suggestion(key, Array(allowed))) (expected: \(allowed.sorted().joined(separator: ", ")))")
            }
            out[key] = Field(node: valueNode, path: field.child(key))
        }
        return out
    }

    /// A mapping's entries in document order (names chosen by the author: machines, users, files, variables).
    func entries(_ field: Field) throws -> [(String, Node, Field)] {
        if isNull(field.node) { return [] }
        guard case .mapping(let map) = field.node else {
            throw error(field, "expected a mapping (name: value), found \(Self.kind(field.node))")
        }
        var out: [(String, Node, Field)] = []
        for (keyNode, valueNode) in map {
            guard case .scalar(let keyScalar) = keyNode else { throw error(at: keyNode, field.path, "a key must be text, found \(Self.kind(keyNode))") }
            out.append((keyScalar.string, keyNode, Field(node: valueNode, path: field.child(keyScalar.string))))
        }
        return out
    }

    func string(_ field: Field, substitute doSubstitute: Bool = true) throws -> String {
        guard case .scalar(let scalar) = field.node else {
            throw error(field, "expected text, found \(Self.kind(field.node))")
        }
        if scalar.style == .plain, scalar.string == "~" || scalar.string == "null" || scalar.string.isEmpty {
            throw error(field, "expected text, found nothing")
        }
        return doSubstitute ? try substitute(scalar.string, field.node, path: field.path) : scalar.string
    }

    /// Replaces `${name}` with the variable's value; `$${` is a literal `${`.
    /// Runtime variables (`${registry}`) are left for the runner.
    func substitute(_ text: String, _ node: Node, path: String = "") throws -> String {
        guard text.contains("${") else { return text }
        var out = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            if start.lowerBound > rest.startIndex, rest[rest.index(before: start.lowerBound)] == "$" {
                out += rest[..<rest.index(before: start.lowerBound)] + "${"
                rest = rest[start.upperBound...]
                continue
            }
            out += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                throw error(at: node, path, "'${' without a closing '}' in '\(text)'")
            }
            let name = String(rest[start.upperBound..<end])
            if let value = variables[name] {
                out += value
            } else if ScenarioParser.runtimeVariables.contains(name) {
                out += "${\(name)}"
            } else {
                let known = variables.keys.sorted() + ScenarioParser.runtimeVariables.sorted()
                throw error(at: node, path, "undefined variable '${\(name)}'\(Self.suggestion(name, known)) (defined: \(known.joined(separator: ", ")))")
            }
            rest = rest[rest.index(after: end)...]
        }
        return out + rest
    }

    func int(_ field: Field) throws -> Int {
        guard case .scalar = field.node else { throw error(field, "expected a whole number, found \(Self.kind(field.node))") }
        let text = try string(field)
        guard let value = Int(text) else {
            throw error(field, "expected a whole number, found \(Self.kind(field.node))")
        }
        return value
    }

    func bool(_ field: Field) throws -> Bool {
        guard case .scalar = field.node else { throw error(field, "expected true or false, found \(Self.kind(field.node))") }
        let text = try string(field)
        switch text {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error(field, "expected true or false, found \(Self.kind(field.node))")
        }
    }

    func stringList(_ field: Field) throws -> [String] {
        if case .sequence(let sequence) = field.node {
            var out: [String] = []
            for (i, node) in sequence.enumerated() { out.append(try string(Field(node: node, path: field.item(i + 1)))) }
            return out
        }
        return [try string(field)]
    }

    /// `30s`, `500ms`, `2m`, `1h`, or a plain number of seconds.
    func duration(_ field: Field) throws -> Duration {
        let text = try string(field).trimmingCharacters(in: .whitespaces)
        guard let match = text.wholeMatch(of: /([0-9]+(?:\.[0-9]+)?)\s*(ms|s|sec|m|min|h)?/), let number = Double(match.1) else {
            throw error(field, "'\(text)' is not a duration: write e.g. 30s, 500ms, 2m or 1h")
        }
        let scale: Double = switch match.2.map(String.init) {
        case "ms": 0.001
        case "m", "min": 60
        case "h": 3600
        default: 1
        }
        let ms = number * scale * 1000
        guard ms >= 1 else { throw error(field, "a duration must be more than zero") }
        return .milliseconds(Int64(ms.rounded()))
    }

    /// A size in KiB: `256` (MiB), `256MiB`, `1GiB`, `512KiB`, `64M`.
    func size(_ field: Field) throws -> UInt64 {
        let text = try string(field).trimmingCharacters(in: .whitespaces)
        guard let match = text.wholeMatch(of: /([0-9]+(?:\.[0-9]+)?)\s*(KiB|MiB|GiB|K|M|G|KB|MB|GB)?/), let number = Double(match.1) else {
            throw error(field, "'\(text)' is not a size: write e.g. 256MiB, 1GiB, 512KiB (a plain number is MiB)")
        }
        let scale: Double = switch match.2.map(String.init) {
        case "KiB", "K", "KB": 1
        case "GiB", "G", "GB": 1024 * 1024
        default: 1024
        }
        return UInt64((number * scale).rounded())
    }

    func countBound(_ field: Field) throws -> Step.CountBound {
        if case .mapping = field.node {
            let keys = try mapping(field, allowed: ["at-least", "at-most"])
            let bound = Step.CountBound(atLeast: try keys["at-least"].map { try int($0) }, atMost: try keys["at-most"].map { try int($0) })
            guard bound.atLeast != nil || bound.atMost != nil else { throw error(field, "give 'at-least', 'at-most' or both") }
            return bound
        }
        let n = try int(field)
        return Step.CountBound(atLeast: n, atMost: n)
    }

    func regex(_ field: Field) throws -> String {
        let pattern = try string(field)
        do { _ = try Regex(pattern) } catch let problem { throw self.error(field, "not a valid regular expression: \(problem)") }
        return pattern
    }

    /// A console pattern: text, `{regex: …}`, or a list of those (any of them).
    func patterns(_ field: Field) throws -> [ConsolePattern] {
        if case .sequence(let sequence) = field.node {
            var out: [ConsolePattern] = []
            for (i, node) in sequence.enumerated() { out += try patterns(Field(node: node, path: field.item(i + 1))) }
            guard !out.isEmpty else { throw error(field, "the list of patterns is empty") }
            return out
        }
        if case .mapping = field.node {
            let keys = try mapping(field, allowed: ["regex", "text"])
            if let r = keys["regex"] { return [.regex(try regex(r))] }
            if let t = keys["text"] { return [.text(try string(t))] }
            throw error(field, "expected 'regex: PATTERN' or 'text: TEXT'")
        }
        return [.text(try string(field))]
    }

    /// Output matchers: text (equals), or a mapping of `equals`, `contains`, `not-contains`, `matches`.
    func matchers(_ field: Field) throws -> [OutputMatcher] {
        if case .mapping = field.node {
            let keys = try mapping(field, allowed: ["equals", "contains", "not-contains", "matches"])
            var out: [OutputMatcher] = []
            if let v = keys["equals"] { out.append(.equals(try string(v))) }
            if let v = keys["contains"] { out += try stringList(v).map(OutputMatcher.contains) }
            if let v = keys["not-contains"] { out += try stringList(v).map(OutputMatcher.notContains) }
            if let v = keys["matches"] { out.append(.matches(try regex(v))) }
            guard !out.isEmpty else { throw error(field, "give 'equals', 'contains', 'not-contains' or 'matches'") }
            return out
        }
        return [.equals(try string(field))]
    }

    // MARK: Files

    func resolve(_ path: String) -> URL {
        if path.hasPrefix("/") { return URL(fileURLWithPath: path) }
        return directory.appendingPathComponent(path)
    }

    func requireFile(_ url: URL, _ field: Field, what: String, directory wantDirectory: Bool) throws {
        guard options.checkFiles else { return }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw error(field, "\(what) does not exist: \(url.standardizedFileURL.path)")
        }
        if isDirectory.boolValue != wantDirectory {
            throw error(field, "\(what) must be a \(wantDirectory ? "folder" : "file"): \(url.standardizedFileURL.path)")
        }
    }

    // MARK: Suggestions

    static func suggestion(_ word: String, _ candidates: [String]) -> String {
        let best = candidates.map { ($0, distance(word.lowercased(), $0.lowercased())) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= max(2, word.count / 3), best.1 > 0 else { return "" }
        return " (did you mean '\(best.0)'?)"
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
