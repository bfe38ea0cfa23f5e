import Foundation
import PropertyBased
import Scenarios
import Synchronization
import Testbed
import Testing

// Inside the serialized suite: a leak check of a booting case must not see
// a fuzz case's moment, nor the other way round.

/// Property-based fuzzing of the three decoders that read what others wrote:
/// the agent protocol, scenario files and pcap captures. Random and damaged
/// inputs: no crash, and every error names its cause.
extension Reliability {
@Suite("Fuzzing")
struct Fuzzing {
    /// Counts inputs and the ones that broke a property.
    final class Tally: Sendable {
        private let state = Mutex<(inputs: Int, broken: [String])>((0, []))
        func input() { state.withLock { $0.inputs += 1 } }
        func broke(_ why: String) { state.withLock { if $0.broken.count < 5 { $0.broken.append(why) } } }
        var inputs: Int { state.withLock { $0.inputs } }
        var broken: [String] { state.withLock { $0.broken } }
    }

    static let bytes = Gen<UInt8>.value(in: 0...255)

    @Test("agent frames: random bytes, damaged frames and any chunking never crash, and errors say what was wrong")
    func agentProtocol() async throws {
        try await injecting("fuzz: agent protocol decoder", category: "fuzz") { notes, _ in
            let tally = Tally()
            await propertyCheck(count: 1500, input: Self.bytes.array(of: 0...400)) { bytes in
                tally.input()
                do {
                    _ = try AgentProtocol.decodeFrame(bytes)
                } catch let error as AgentProtocolError {
                    if !error.description.hasPrefix("the agent sent") { tally.broke("unexplained: \(error)") }
                } catch {
                    tally.broke("not a protocol error: \(error)")
                }
            }
            let valid = Array(#"{"id":7,"ok":true,"result":{"status":0,"stdout":"hi\n","stderr":"","durationMs":1.5}}"#.utf8)
            await propertyCheck(count: 1500, input: Gen.int(in: 0...(valid.count - 1)), Self.bytes, Gen.bool) { position, byte, truncate in
                tally.input()
                var damaged = valid
                if truncate { damaged = Array(damaged.prefix(position)) } else { damaged[position] = byte }
                do {
                    _ = try AgentProtocol.decodeFrame(damaged)
                } catch let error as AgentProtocolError {
                    if !error.description.hasPrefix("the agent sent") { tally.broke("unexplained: \(error)") }
                } catch {
                    tally.broke("not a protocol error: \(error)")
                }
            }
            // Splitting a stream anywhere gives the same lines as reading it whole.
            await propertyCheck(count: 500, input: Gen.int(in: 1...64).array(of: 1...40), Gen.int(in: 0...20)) { cuts, lineCount in
                tally.input()
                let lines = (0..<lineCount).map { #"{"id":\#($0),"ok":true}"# }
                let stream = Array((lines.map { $0 + "\n" }.joined()).utf8)
                var splitter = LineSplitter(maxLineBytes: 1024)
                var seen: [String] = []
                var offset = 0
                var cut = 0
                while offset < stream.count {
                    let end = min(stream.count, offset + cuts[cut % cuts.count])
                    seen += splitter.feed(Array(stream[offset..<end])).lines.map { String(decoding: $0, as: UTF8.self) }
                    offset = end
                    cut += 1
                }
                if seen != lines { tally.broke("chunked at \(cuts): \(seen.count) lines, expected \(lines.count)") }
            }
            try check(tally.broken.isEmpty, tally.broken.joined(separator: "\n"))
            notes.figure("inputs", Double(tally.inputs))
            notes.say("\(tally.inputs) inputs, no crash, every error explained")
        }
    }

    @Test("scenario files: truncated, mutated and spliced shipped scenarios never crash the parser, and errors point into the file")
    func scenarioParser() async throws {
        try await injecting("fuzz: scenario parser", category: "fuzz") { notes, _ in
            let folder = packageRoot.appendingPathComponent("scenarios")
            let texts = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }.sorted()
                .map { try String(contentsOf: folder.appendingPathComponent($0), encoding: .utf8) }
            try check(!texts.isEmpty, "no shipped scenarios in \(folder.path)")
            let tally = Tally()
            let parser = ScenarioParser(checkFiles: false, defaultImage: URL(fileURLWithPath: "/nonexistent-image"))
            let printable = Gen<UInt8>.value(in: 9...126)
            await propertyCheck(count: 1200, input: Gen.int(in: 0...(texts.count - 1)), Gen.int(in: 0...100_000), printable, Gen.int(in: 0...2)) { which, at, byte, how in
                tally.input()
                var bytes = Array(texts[which].utf8)
                let position = at % max(bytes.count, 1)
                switch how {
                case 0: bytes = Array(bytes.prefix(position))
                case 1: if !bytes.isEmpty { bytes.remove(at: position) }
                default: bytes.insert(byte, at: position)
                }
                let text = String(decoding: bytes, as: UTF8.self)
                let lineCount = text.split(separator: "\n", omittingEmptySubsequences: false).count
                do {
                    _ = try parser.parse(yaml: text, file: "fuzz.yaml", directory: folder)
                } catch let error as ScenarioError {
                    if error.location.file != "fuzz.yaml" || error.location.line < 1 || error.location.line > lineCount + 1 || error.message.isEmpty {
                        tally.broke("error outside the file: \(error) (\(lineCount) lines)")
                    }
                } catch {
                    tally.broke("not a scenario error: \(error)")
                }
            }
            try check(tally.broken.isEmpty, tally.broken.joined(separator: "\n"))
            notes.figure("inputs", Double(tally.inputs))
            notes.say("\(tally.inputs) mutated scenarios, no crash, every error at file:line:column inside the file")
        }
    }

    @Test("pcap captures: truncated and bit-flipped files never crash the reader, and errors name the file")
    func pcapReader() async throws {
        try await injecting("fuzz: pcap reader", category: "fuzz") { notes, work in
            let valid = Self.samplePcap()
            let tally = Tally()
            await propertyCheck(count: 400, input: Gen.int(in: 0...(valid.count - 1)), Self.bytes, Gen.int(in: 0...1)) { position, byte, how in
                tally.input()
                var damaged = valid
                if how == 0 { damaged = Array(damaged.prefix(position)) } else { damaged[position] ^= byte | 1 }
                let url = work.appendingPathComponent("fuzz-\(UUID().uuidString.prefix(8)).pcap")
                defer { try? FileManager.default.removeItem(at: url) }
                do {
                    try Data(damaged).write(to: url)
                    let capture = try Capture(contentsOf: url.path)
                    _ = capture.flows
                    _ = capture.httpRequests
                    _ = capture.dnsQueries
                } catch {
                    if !"\(error)".contains(url.path) { tally.broke("error without the file: \(error)") }
                }
            }
            try check(tally.broken.isEmpty, tally.broken.joined(separator: "\n"))
            notes.figure("inputs", Double(tally.inputs))
            notes.say("\(tally.inputs) damaged captures, no crash, every error names the file")
        }
    }

    /// A capture of a guest fetching a packument and a tarball, and one DNS query.
    static func samplePcap() -> [UInt8] {
        func frame(_ proto: UInt8, _ payload: [UInt8]) -> [UInt8] {
            let l4: [UInt8] = proto == 6
                ? [0x9c, 0x40, 0x13, 0x11, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0] + payload
                : [0x9c, 0x40, 0, 53, 0, UInt8(8 + payload.count), 0, 0] + payload
            let total = 20 + l4.count
            let ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 255), 0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2]
            return [0x52, 0x55, 0x0a, 0, 2, 2, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x08, 0x00] + ip + l4
        }
        let frames = [
            frame(6, Array("GET /@nodeos%2fhello-cli HTTP/1.1\r\nHost: 10.0.2.2:4881\r\n\r\n".utf8)),
            frame(6, Array("GET /@nodeos/hello-cli/-/hello-cli-1.0.0.tgz HTTP/1.1\r\nhost: 10.0.2.2:4881\r\n\r\n".utf8)),
            frame(17, [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7] + Array("example".utf8) + [3] + Array("org".utf8) + [0, 0, 1, 0, 1]),
        ]
        var data: [UInt8] = []
        func le32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        func le16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        le32(0xa1b2c3d4); le16(2); le16(4); le32(0); le32(0); le32(65535); le32(1)
        for (i, f) in frames.enumerated() {
            le32(1_800_000_000 + UInt32(i)); le32(0); le32(UInt32(f.count)); le32(UInt32(f.count))
            data.append(contentsOf: f)
        }
        return data
    }
}
}
