import Foundation
@testable import Testbed
@testable import TestbedCore
import Testing

@Suite("Agent protocol codec")
struct AgentProtocolTests {
    @Test("a request is one JSON object with id and op, newline-terminated")
    func encodesRequest() throws {
        let bytes = AgentProtocol.encodeRequest(id: 7, op: "exec", fields: ["argv": ["node", "-e", "1"]])
        #expect(bytes.last == UInt8(ascii: "\n"))
        #expect(bytes.dropLast().contains(UInt8(ascii: "\n")) == false)
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes.dropLast()))
        #expect(value["id"] == 7)
        #expect(value["op"] == "exec")
        #expect(value["argv"] == ["node", "-e", "1"])
    }

    @Test("a success answer")
    func decodesSuccess() throws {
        let frame = try AgentProtocol.decodeFrame(Array(#"{"id":7,"ok":true,"result":{"status":0,"signal":null,"stdout":"hi\n","stderr":"","durationMs":12.4}}"#.utf8))
        guard case .response(let id, .success(let result)) = frame else { Issue.record("not a success: \(frame)"); return }
        #expect(id == 7)
        let exec = try ExecResult(agentResult: result)
        #expect(exec.status == 0)
        #expect(exec.signal == nil)
        #expect(exec.stdout == "hi\n")
        #expect(exec.stderr == "")
        #expect(exec.duration == .microseconds(12_400))
        #expect(exec.succeeded)
    }

    @Test("an error answer keeps the errno name and message")
    func decodesError() throws {
        let frame = try AgentProtocol.decodeFrame(Array(#"{"id":8,"ok":false,"error":{"code":"ENOENT","message":"spawn nope ENOENT"}}"#.utf8))
        #expect(frame == .response(id: 8, .failure(AgentError(code: "ENOENT", message: "spawn nope ENOENT"))))
    }

    @Test("an EPROTO answer has a null id")
    func decodesNullID() throws {
        let frame = try AgentProtocol.decodeFrame(Array(#"{"id":null,"ok":false,"error":{"code":"EPROTO","message":"bad frame"}}"#.utf8))
        #expect(frame == .response(id: nil, .failure(AgentError(code: "EPROTO", message: "bad frame"))))
    }

    @Test("events have no id")
    func decodesEvent() throws {
        let frame = try AgentProtocol.decodeFrame(Array(#"{"event":"ready","bootId":"3f0c"}"#.utf8))
        guard case .event(let name, let body) = frame else { Issue.record("not an event"); return }
        #expect(name == "ready")
        #expect(body["bootId"] == "3f0c")
    }

    @Test("a signal ends a command: status null, signal named")
    func signalled() throws {
        let result = try ExecResult(agentResult: ["status": nil, "signal": "SIGKILL", "stdout": "", "stderr": "", "durationMs": 5, "timedOut": true])
        #expect(result.status == nil)
        #expect(result.signal == "SIGKILL")
        #expect(result.timedOut)
        #expect(!result.succeeded)
        #expect(result.description.contains("SIGKILL"))
    }

    @Test("malformed frames are errors, not crashes", arguments: ["not json", "[1,2]", #"{"id":1}"#])
    func malformed(line: String) {
        #expect(throws: AgentProtocolError.self) { try AgentProtocol.decodeFrame(Array(line.utf8)) }
    }

    @Test("lines split across chunks and CRLF endings")
    func splitsLines() throws {
        var splitter = LineSplitter()
        #expect(splitter.feed(Array("{\"a\":".utf8)).lines.isEmpty)
        let lines = splitter.feed(Array("1}\r\n{\"b\":2}\n\n{\"c\"".utf8)).lines
        #expect(lines.map { String(decoding: $0, as: UTF8.self) } == [#"{"a":1}"#, #"{"b":2}"#])
        #expect(splitter.feed(Array(":3}\n".utf8)).lines.map { String(decoding: $0, as: UTF8.self) } == [#"{"c":3}"#])
    }

    @Test("a line over the limit is reported once, skipped to its end, and the lines around it survive")
    func lineTooLong() throws {
        var splitter = LineSplitter(maxLineBytes: 8)
        let first = splitter.feed(Array("before\n0123456789".utf8))
        #expect(first.lines.map { String(decoding: $0, as: UTF8.self) } == ["before"])
        #expect(first.overflow == .lineTooLong(10))
        // The rest of the same line: dropped without a second report.
        #expect(splitter.feed(Array(repeating: UInt8(ascii: "x"), count: 100)) == LineSplitter.Batch())
        let after = splitter.feed(Array("tail\nok\n".utf8))
        #expect(after.lines.map { String(decoding: $0, as: UTF8.self) } == ["ok"])
        #expect(after.overflow == nil)
    }

    @Test("a flood far over the limit keeps the splitter's memory bounded")
    func floodStaysBounded() throws {
        var splitter = LineSplitter(maxLineBytes: 1024)
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 4096)
        var reports = 0
        for _ in 0..<2_000 { if splitter.feed(chunk).overflow != nil { reports += 1 } }
        #expect(reports == 1)
        #expect(splitter.feed(Array("\n{\"id\":1}\n".utf8)).lines.count == 1)
    }

    @Test("JSON values round-trip, integers stay integers")
    func jsonRoundTrip() throws {
        let value: JSONValue = ["n": 3, "f": 1.5, "s": "x", "b": true, "z": nil, "a": [1, "two"]]
        #expect(value.jsonText == #"{"a":[1,"two"],"b":true,"f":1.5,"n":3,"s":"x","z":null}"#)
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(value.jsonText.utf8)) == value)
    }
}
