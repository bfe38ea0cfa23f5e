import Foundation
import Testbed
import Yams

extension Reader {
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
