import Foundation
@testable import Testbed
@testable import TestbedCore
import Testing

/// The agent client's multiplexing, against a fake transport: no machine.
@Suite("Agent client")
struct AgentClientTests {
    final class Sent: @unchecked Sendable {
        private let lock = NSLock()
        private var frames: [JSONValue] = []
        func append(_ bytes: [UInt8]) {
            let value = try! JSONDecoder().decode(JSONValue.self, from: Data(bytes.dropLast()))
            lock.lock(); frames.append(value); lock.unlock()
        }
        var all: [JSONValue] { lock.lock(); defer { lock.unlock() }; return frames }
    }

    func client() -> (AgentClient, Sent, String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("agent-\(UUID().uuidString).jsonl").path
        let client = AgentClient(transcriptPath: path, hostStart: .now)
        let sent = Sent()
        client.attach(sender: { sent.append($0) })
        return (client, sent, path)
    }

    func waitForFrames(_ sent: Sent, _ count: Int) async throws {
        for _ in 0..<500 where sent.all.count < count { try await Task.sleep(for: .milliseconds(2)) }
    }

    @Test("pipelined requests get their own answers, whatever the order")
    func outOfOrder() async throws {
        let (client, sent, path) = client()
        defer { try? FileManager.default.removeItem(atPath: path) }
        async let first = client.request("ping")
        async let second = client.request("hello")
        try await waitForFrames(sent, 2)
        let ids = sent.all.compactMap { $0["id"]?.intValue }
        let hello = try #require(sent.all.first { $0["op"] == "hello" }?["id"]?.intValue)
        let ping = try #require(sent.all.first { $0["op"] == "ping" }?["id"]?.intValue)
        #expect(Set(ids).count == 2)
        // Answer the second request first, split across two chunks.
        let answer = #"{"id":\#(hello),"ok":true,"result":{"protocol":1}}"# + "\n"
        client.receive(Array(answer.utf8.prefix(10)))
        client.receive(Array(answer.utf8.dropFirst(10)) + Array(#"{"id":\#(ping),"ok":true,"result":{}}"#.utf8) + [10])
        let (a, b) = try await (first, second)
        #expect(a == .object([:]))
        #expect(b["protocol"] == 1)
        let transcript = try String(contentsOfFile: path, encoding: .utf8)
        #expect(transcript.split(separator: "\n").count == 4)
        #expect(transcript.contains(#""dir":"out""#) && transcript.contains(#""dir":"in""#))
    }

    @Test("an error answer throws the agent's code and message")
    func errorAnswer() async throws {
        let (client, sent, path) = client()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = Task { try await client.request("exec", ["argv": ["nope"]]) }
        try await waitForFrames(sent, 1)
        let id = try #require(sent.all.first?["id"]?.intValue)
        client.receive(Array(#"{"id":\#(id),"ok":false,"error":{"code":"ENOENT","message":"spawn nope ENOENT"}}"#.utf8) + [10])
        await #expect(throws: AgentError(code: "ENOENT", message: "spawn nope ENOENT")) { try await result.value }
    }

    @Test("ready and shutdown events are followed")
    func events() {
        let (client, _, path) = client()
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(client.ready.count == 0)
        client.receive(Array(#"{"event":"ready","bootId":"b-1"}"#.utf8) + [10])
        #expect(client.ready.count == 1)
        #expect(client.ready.bootID == "b-1")
        client.receive(Array(#"{"event":"shutdown","reason":"poweroff"}"#.utf8) + [10])
        #expect(client.shutdownEvent == "poweroff")
    }

    @Test("a closed channel fails the requests still waiting")
    func closedChannel() async throws {
        let (client, sent, path) = client()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = Task { try await client.request("ping") }
        try await waitForFrames(sent, 1)
        client.fail("the machine stopped")
        await #expect(throws: AgentChannelClosed.self) { try await result.value }
        await #expect(throws: AgentChannelClosed.self) { try await client.request("ping") }
    }

    @Test("garbage from the guest is logged and skipped")
    func garbage() async throws {
        let (client, sent, path) = client()
        defer { try? FileManager.default.removeItem(atPath: path) }
        async let result = client.request("ping")
        try await waitForFrames(sent, 1)
        let id = try #require(sent.all.first?["id"]?.intValue)
        client.receive(Array("not json\n".utf8) + Array(#"{"id":\#(id),"ok":true,"result":{}}"#.utf8) + [10])
        #expect(try await result == .object([:]))
    }
}
