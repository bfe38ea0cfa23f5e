import Foundation
import Testbed

/// `http`: one HTTP request from the host to a machine's port, through the tunnel.
struct HTTPStep: StepKind {
    var request: HTTPRequest
    var port: Int
    var status: Int?
    var body: [OutputMatcher]
    var headers: [(name: String, matcher: OutputMatcher)]
    var json: [(path: String, expected: String)]
    var keyword: String { "http" }
    var needsTunnel: Bool { true }

    static let keys: [String: Set<String>] = ["http": lifecycleModifiers.union(["port", "headers", "body", "status", "response", "response-headers", "json"])]
    static let documentation = [
        StepDocumentation(usage: "`http: METHOD PATH`, `port: PORT`",
                          meaning: "send the request from the host to the machine's port (forwarded through libvirt, so a remote host works too), with `headers:` and `body:`; check `status:` (default: below 400), `response:` (as `stdout:`), `response-headers: {NAME: TEXT}` (contains) and `json: {FIELD.PATH: VALUE}`"),
    ]

    static let methods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    static func parse(_ input: StepInput, _ reader: Reader) throws -> (action: HTTPStep, described: String?) {
        let line = try reader.string(input.value)
        let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard words.count == 2, methods.contains(words[0].uppercased()), words[1].hasPrefix("/") else {
            throw reader.error(input.value, "write 'METHOD /path' (methods: \(methods.sorted().joined(separator: ", "))), not '\(line)'")
        }
        let keys = input.keys
        let port: Int
        if let field = keys["port"] {
            port = try reader.port(field, allowZero: false)
        } else if let only = input.definition?.forwards.first, input.definition?.forwards.count == 1 {
            port = only.guestPort
        } else {
            throw reader.error(at: input.keyNode, input.step.path, "say which guest port: 'port: N'")
        }
        var request = HTTPRequest(method: words[0].uppercased(), path: words[1])
        if let field = keys["headers"] {
            for (name, _, value) in try reader.entries(field) { request.headers[name] = try reader.string(value) }
        }
        if let field = keys["body"] { request.body = Array(try reader.string(field).utf8) }
        let status = try keys["status"].map { field in
            let code = try reader.int(field)
            guard (100...599).contains(code) else { throw reader.error(field, "an HTTP status is 100–599, not \(code)") }
            return code
        }
        let body = try keys["response"].map { try reader.matchers($0) } ?? []
        var headers: [(String, OutputMatcher)] = []
        if let field = keys["response-headers"] {
            for (name, _, value) in try reader.entries(field) { headers.append((name, .contains(try reader.string(value)))) }
        }
        var json: [(String, String)] = []
        if let field = keys["json"] {
            for (path, _, value) in try reader.entries(field) { json.append((path, try reader.string(value))) }
        }
        return (HTTPStep(request: request, port: port, status: status, body: body, headers: headers, json: json),
                "http \(request.method) \(request.path) on port \(port)")
    }

    func run(_ step: Step, in execution: Execution) async throws {
        let machine = try await execution.running(step)
        let state = try execution.state(step)
        let forward: PortForward
        if let existing = state.forwards[port] {
            forward = existing
        } else {
            forward = try machine.forward(guestPort: port)
            state.forwards[port] = forward
        }
        var request = self.request
        request.path = execution.expand(request.path)
        let response = try await forward.exchange(request, timeout: step.timeout ?? machine.deadlines.command)
        let shown = "\n--- \(response.status) \(response.reason) ---\n"
            + response.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n") + "\n\n" + String(response.text.prefix(2000))
        let what = "\(request.method) \(request.path) (guest port \(port), host \(forward.url.absoluteString))"
        if let status, response.status != status {
            throw StepFailure(summary: "\(what) answered \(response.status), expected \(status)", details: shown, machine: machine)
        }
        if status == nil, response.status >= 400 {
            throw StepFailure(summary: "\(what) answered \(response.status) \(response.reason)", details: shown, machine: machine)
        }
        for (name, matcher) in headers where !matcher.check(response.header(name) ?? "") {
            throw StepFailure(summary: "\(what): header \(name) \(response.header(name).map { "'\($0)'" } ?? "is missing"), expected it to \(matcher)",
                              details: shown, machine: machine)
        }
        try execution.check(body, response.text, "the body of \(what)", machine, shown)
        guard !json.isEmpty else { return }
        guard let document = try? JSONDecoder().decode(JSONValue.self, from: Data(response.body)) else {
            throw StepFailure(summary: "\(what): the body is not JSON", details: shown, machine: machine)
        }
        for (path, expected) in json {
            let found = Self.lookup(document, path)
            guard let found, Self.text(found) == expected else {
                throw StepFailure(summary: "\(what): \(path) is \(found.map { Self.text($0) } ?? "missing"), expected \(expected)", details: shown, machine: machine)
            }
        }
    }

    /// `a.b.0.c` in a JSON document.
    static func lookup(_ value: JSONValue, _ path: String) -> JSONValue? {
        var current: JSONValue? = value
        for part in path.split(separator: ".") {
            guard let here = current else { return nil }
            if case .array(let items) = here, let index = Int(part) {
                current = items.indices.contains(index) ? items[index] : nil
            } else {
                current = here[String(part)]
            }
        }
        return current
    }

    /// A JSON value as a scenario writes it: strings bare, the rest as JSON.
    static func text(_ value: JSONValue) -> String {
        if let string = value.stringValue { return string }
        if let number = value.doubleValue { return number == number.rounded() && abs(number) < 1e15 ? String(Int(number)) : String(number) }
        return value.jsonText
    }
}
