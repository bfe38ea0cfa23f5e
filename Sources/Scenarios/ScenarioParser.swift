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

    /// Variables the runner fills in: `${registry}` is the registry's URL as
    /// guests reach it (through the tunnel); `${registry-host-port}` its port
    /// on the host's loopback, which guests are not offered (for scenarios
    /// that show they cannot reach it).
    public static let runtimeVariables: Set<String> = ["registry", "registry-host-port"]

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
        let keys = try mapping(top, allowed: ["name", "description", "timeout", "variables", "registry", "machines", "networks", "steps"])

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

        if let value = keys["networks"] { try networks(value, machines: &machines) }

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
        for step in steps where step.action.needsTunnel {
            if let index = machines.firstIndex(where: { $0.name == step.machine }) { machines[index].tunnel = true }
        }

        // The registry: wanted when a machine installs packages or a step installs or counts requests.
        var registry: URL?
        let needsRegistry = machines.contains { $0.users.contains { !$0.packages.isEmpty } } || steps.contains { $0.action.needsRegistry } || keys["registry"] != nil || usesRuntimeVariable(yaml, "registry") || usesRuntimeVariable(yaml, "registry-host-port")
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
}
