import Foundation
import Libvirt
import Synchronization

/// The host side of the guest agent channel: sends requests, matches answers
/// by id (they may come in any order), follows `ready`/`shutdown` events and
/// keeps a transcript (`agent.jsonl`).
final class AgentClient: Sendable {
    private struct State {
        var splitter = LineSplitter()
        var nextID = 1
        var pending: [Int: CheckedContinuation<JSONValue, any Error>] = [:]
        var readyBootID: String?
        var readyAt: ContinuousClock.Instant?
        var readyCount = 0
        var shutdownEvent: String?
        /// Writes a frame to the guest (the channel stream, or a test's fake).
        var send: (@Sendable ([UInt8]) throws -> Void)?
        var stream: DomainStream?
        var closed: String?
        /// When the last bytes came from the guest.
        var lastInput: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    private let eventHandler = Mutex<(@Sendable (String, [String: JSONValue]) -> Void)?>(nil)
    let notifier = ChangeNotifier()
    private let transcript: AppendFile
    private let hostStart: ContinuousClock.Instant

    init(transcriptPath: String, hostStart: ContinuousClock.Instant) {
        transcript = AppendFile(path: transcriptPath)
        self.hostStart = hostStart
    }

    /// Connects the client to an opened channel stream.
    func attach(_ stream: DomainStream) throws {
        state.withLock { state in
            state.stream = stream
            state.send = { bytes in try stream.send(bytes) }
            state.closed = nil
            state.splitter.reset()
        }
        try stream.startReceiving(
            onData: { [weak self] bytes in self?.receive(bytes) },
            onEnd: { [weak self] error in self?.fail("the agent channel closed\(error.map { ": \($0.message)" } ?? "")") })
    }

    /// Connects the client to any transport (unit tests use this).
    func attach(sender: @escaping @Sendable ([UInt8]) throws -> Void) {
        state.withLock { state in
            state.send = sender
            state.closed = nil
            state.splitter.reset()
        }
    }

    /// Calls `handler` with every event other than `ready` and `shutdown`
    /// (`kmsg`, …), on the thread that reads the channel.
    func onEvent(_ handler: @escaping @Sendable (_ event: String, _ body: [String: JSONValue]) -> Void) {
        eventHandler.withLock { $0 = handler }
    }

    /// The boot id of the last `ready` event, and how many were seen.
    var ready: (bootID: String?, at: ContinuousClock.Instant?, count: Int) {
        state.withLock { ($0.readyBootID, $0.readyAt, $0.readyCount) }
    }

    /// The reason in the last `shutdown` event, if any.
    var shutdownEvent: String? { state.withLock { $0.shutdownEvent } }

    private func log(_ direction: String, _ line: [UInt8]) {
        let ms = (ContinuousClock.now - hostStart).milliseconds
        let frame = (try? JSONDecoder().decode(JSONValue.self, from: Data(line))) != nil
            ? String(decoding: line, as: UTF8.self)
            : JSONValue.string(String(decoding: line, as: UTF8.self)).jsonText
        transcript.write(String(format: "{\"t\":%.3f,\"dir\":\"%@\",\"frame\":", ms, direction) + frame + "}\n")
    }

    /// Called on the event-loop thread with bytes from the guest.
    func receive(_ bytes: [UInt8]) {
        let batch = state.withLock { $0.splitter.feed(bytes) }
        state.withLock { $0.lastInput = .now }
        defer {
            // After the lines that completed before it: their answers are good.
            if let overflow = batch.overflow {
                transcript.write("{\"error\":\(JSONValue.string("\(overflow)").jsonText)}\n")
                failPending("\(overflow); the requests waiting for an answer were failed")
            }
        }
        for line in batch.lines {
            log("in", line)
            let frame: AgentFrame
            do {
                frame = try AgentProtocol.decodeFrame(line)
            } catch {
                transcript.write("{\"error\":\(JSONValue.string("\(error)").jsonText)}\n")
                continue
            }
            switch frame {
            case .response(let id?, let result):
                let continuation = state.withLock { $0.pending.removeValue(forKey: id) }
                continuation?.resume(with: result.mapError { $0 as any Error })
            case .response(nil, _):
                break // an answer to a line the agent could not parse: logged above
            case .event(let name, let body):
                let known = state.withLock { state in
                    switch name {
                    case "ready":
                        state.readyBootID = body["bootId"]?.stringValue
                        state.readyAt = .now
                        state.readyCount += 1
                    case "shutdown":
                        state.shutdownEvent = body["reason"]?.stringValue ?? "?"
                    default:
                        return false
                    }
                    return true
                }
                if !known, let handler = eventHandler.withLock({ $0 }) { handler(name, body) }
                notifier.notify()
            }
        }
    }

    /// Fails every pending request (the channel or the machine went away).
    func fail(_ reason: String) {
        let pending = state.withLock { state in
            defer { state.pending = [:] }
            if state.closed == nil { state.closed = reason }
            return state.pending
        }
        for (_, continuation) in pending { continuation.resume(throwing: AgentChannelClosed(reason: reason)) }
        notifier.notify()
    }

    /// Fails the requests waiting now; the channel stays open for new ones.
    func failPending(_ reason: String) {
        let pending = state.withLock { state in
            defer { state.pending = [:] }
            return state.pending
        }
        for (_, continuation) in pending { continuation.resume(throwing: AgentProtocolFailure(reason: reason)) }
        notifier.notify()
    }

    /// When the guest last sent anything on the channel.
    var lastInput: ContinuousClock.Instant? { state.withLock { $0.lastInput } }

    /// Forgets the last boot's `ready` (before a reboot).
    func expectNewBoot() {
        state.withLock { $0.shutdownEvent = nil }
    }

    /// Why the channel is closed, if it is.
    var closedReason: String? { state.withLock { $0.closed } }

    /// Sends one request and waits for its answer (no deadline: the caller brings it).
    func request(_ op: String, _ fields: [String: JSONValue] = [:]) async throws -> JSONValue {
        let (id, send, closed) = state.withLock { state in
            defer { state.nextID += 1 }
            return (state.nextID, state.send, state.closed)
        }
        if let closed { throw AgentChannelClosed(reason: closed) }
        guard let send else { throw AgentChannelClosed(reason: "the agent channel is not open") }
        let bytes = AgentProtocol.encodeRequest(id: id, op: op, fields: fields)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<JSONValue, any Error>) in
                state.withLock { $0.pending[id] = continuation }
                if Task.isCancelled {
                    state.withLock { $0.pending.removeValue(forKey: id) }?.resume(throwing: CancellationError())
                    return
                }
                log("out", Array(bytes.dropLast()))
                Task.detached { [weak self] in
                    do {
                        try await Blocking.run { try send(bytes) }
                    } catch {
                        self?.state.withLock { $0.pending.removeValue(forKey: id) }?.resume(throwing: error)
                    }
                }
            }
        } onCancel: {
            state.withLock { $0.pending.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }

    func close() {
        let stream = state.withLock { state in defer { state.stream = nil; state.send = nil }; return state.stream }
        stream?.close()
        fail("the machine is gone")
        transcript.close()
    }
}

/// The agent channel closed while a request was waiting.
public struct AgentChannelClosed: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var description: String { reason }
}

/// The agent broke the protocol (a line over the limit) while a request waited.
public struct AgentProtocolFailure: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var description: String { reason }
}
