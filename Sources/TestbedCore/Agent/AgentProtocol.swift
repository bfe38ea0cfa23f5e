import Foundation

/// The guest agent's wire format (`images/PROTOCOL.md`, "Guest agent"):
/// one JSON object per `\n`-terminated line.
public enum AgentProtocol {
    /// The protocol version this host speaks.
    public static let version = 1
    /// The agent's channel name (virtio-serial target name).
    public static let channelName = "org.nodeos.agent"
    /// No line may be longer than this.
    public static let maxLineBytes = 64 * 1024 * 1024

    /// Encodes a request: `{"id":7,"op":"exec",...}` plus a newline.
    public static func encodeRequest(id: Int, op: String, fields: [String: JSONValue] = [:]) -> [UInt8] {
        var object = fields
        object["id"] = .number(Double(id))
        object["op"] = .string(op)
        return Array(JSONValue.object(object).jsonText.utf8) + [UInt8(ascii: "\n")]
    }

    /// Decodes one line from the agent.
    public static func decodeFrame(_ line: [UInt8]) throws(AgentProtocolError) -> AgentFrame {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(line))
        } catch {
            throw .malformed(String(decoding: line.prefix(200), as: UTF8.self))
        }
        guard case .object(let object) = value else { throw .malformed(String(decoding: line.prefix(200), as: UTF8.self)) }
        if let event = object["event"]?.stringValue {
            return .event(name: event, body: object)
        }
        guard let ok = object["ok"]?.boolValue else { throw .missingField("ok") }
        let id = object["id"]?.intValue
        if ok {
            return .response(id: id, .success(object["result"] ?? .object([:])))
        }
        let error = object["error"]
        return .response(id: id, .failure(AgentError(
            code: error?["code"]?.stringValue ?? "EUNKNOWN",
            message: error?["message"]?.stringValue ?? "the agent gave no message")))
    }
}

/// One decoded frame from the agent.
public enum AgentFrame: Sendable, Equatable {
    /// An answer to the request with `id` (`nil` for unparseable requests).
    case response(id: Int?, Result<JSONValue, AgentError>)
    /// An unsolicited event: `ready`, `shutdown`, …
    case event(name: String, body: [String: JSONValue])
}

/// An error the agent answered with (`"ok": false`): an errno name and a message.
public struct AgentError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var description: String { "\(code): \(message)" }
}

/// A frame the host could not understand.
public enum AgentProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    case missingField(String)
    case lineTooLong(Int)

    public var description: String {
        switch self {
        case .malformed(let text): "the agent sent a line that is not a JSON object: \(text)"
        case .missingField(let field): "the agent sent a frame without '\(field)'"
        case .lineTooLong(let count): "the agent sent a line of more than \(count) bytes, over the \(AgentProtocol.maxLineBytes >> 20) MiB limit: the line was discarded"
        }
    }
}

/// Splits a byte stream into `\n`-terminated lines.
///
/// Memory stays bounded whatever the peer sends: a line that grows past
/// `maxLineBytes` is reported once and then skipped up to its end, so the
/// stream resynchronises on the next line.
public struct LineSplitter: Sendable {
    private var pending: [UInt8] = []
    /// Inside an over-long line: bytes are dropped until its `\n`.
    private var skipping = false
    public let maxLineBytes: Int

    public init(maxLineBytes: Int = AgentProtocol.maxLineBytes) {
        self.maxLineBytes = maxLineBytes
    }

    /// What one chunk completed: lines (without `\n`, `\r` trimmed), and the
    /// over-long line that started in it, if any.
    public struct Batch: Sendable, Equatable {
        public var lines: [[UInt8]] = []
        public var overflow: AgentProtocolError?
    }

    /// Feeds bytes; returns the complete lines and whether a line crossed the limit.
    public mutating func feed(_ bytes: [UInt8]) -> Batch {
        var lines: [[UInt8]] = []
        var start = bytes.startIndex
        for index in bytes.indices where bytes[index] == UInt8(ascii: "\n") {
            if skipping {
                skipping = false
            } else {
                var line = pending + bytes[start..<index]
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                if !line.isEmpty { lines.append(line) }
            }
            pending = []
            start = index + 1
        }
        if skipping { return Batch(lines: lines) }
        pending.append(contentsOf: bytes[start...])
        if pending.count > maxLineBytes {
            let count = pending.count
            pending = []
            skipping = true
            return Batch(lines: lines, overflow: .lineTooLong(count))
        }
        return Batch(lines: lines)
    }

    /// Drops a partial line (after the guest rebooted).
    public mutating func reset() {
        pending = []
        skipping = false
    }
}

/// What a command run through the agent returned. Output streams stay apart.
public struct ExecResult: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The exit status, `nil` when a signal ended the process.
    public var status: Int32?
    /// The signal's name (`SIGKILL`), `nil` when it exited.
    public var signal: String?
    public var stdout: String
    public var stderr: String
    /// How long the command ran, as the guest measured it.
    public var duration: Duration
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool
    public var timedOut: Bool

    public init(status: Int32?, signal: String? = nil, stdout: String = "", stderr: String = "", duration: Duration = .zero,
                stdoutTruncated: Bool = false, stderrTruncated: Bool = false, timedOut: Bool = false) {
        self.status = status
        self.signal = signal
        self.stdout = stdout
        self.stderr = stderr
        self.duration = duration
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
        self.timedOut = timedOut
    }

    /// Whether the command exited with status 0.
    public var succeeded: Bool { status == 0 }

    /// Builds the result from the agent's `exec` answer.
    public init(agentResult result: JSONValue) throws(AgentProtocolError) {
        guard case .object = result else { throw .malformed(result.jsonText) }
        self.init(
            status: result["status"]?.intValue.map(Int32.init),
            signal: result["signal"]?.stringValue,
            stdout: result["stdout"]?.stringValue ?? "",
            stderr: result["stderr"]?.stringValue ?? "",
            duration: .microseconds(Int64((result["durationMs"]?.doubleValue ?? 0) * 1000)),
            stdoutTruncated: result["stdoutTruncated"]?.boolValue ?? false,
            stderrTruncated: result["stderrTruncated"]?.boolValue ?? false,
            timedOut: result["timedOut"]?.boolValue ?? false)
    }

    /// Both streams under their headings, for failure messages.
    public var transcript: String {
        "--- stdout ---\n\(stdout)\(stdout.hasSuffix("\n") || stdout.isEmpty ? "" : "\n")--- stderr ---\n\(stderr)"
    }

    public var description: String {
        let how = status.map { "exit status \($0)" } ?? "signal \(signal ?? "?")"
        return "\(how)\(timedOut ? " (timed out)" : "") after \(duration.formattedSeconds)"
    }
}
