import CLibvirt
import Foundation
import Synchronization

/// A non-blocking libvirt stream (console or channel), owned once, freed once.
///
/// Incoming bytes are delivered by libvirt's event loop through
/// ``startReceiving(onData:onEnd:)``; ``send(_:)`` writes from any thread.
public final class DomainStream: @unchecked Sendable {
    private let handle: OpaquePointer
    private let state = Mutex<StreamState>(.open)
    /// Whole buffers go out one at a time, so concurrent senders never interleave.
    private let sendLock = NSLock()

    private enum StreamState { case open, receiving, closed }

    init(owning handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        close()
        _ = virStreamFree(handle)
    }

    func withUnsafeHandle<T, E: Error>(_ body: (OpaquePointer) throws(E) -> T) throws(E) -> T {
        try body(handle)
    }

    /// Starts delivering received bytes on the event-loop thread.
    ///
    /// `onEnd` runs once when the other side hangs up or the stream fails
    /// (with the error), never after ``close()``.
    public func startReceiving(
        onData: @escaping @Sendable ([UInt8]) -> Void,
        onEnd: @escaping @Sendable (LibvirtError?) -> Void
    ) throws(LibvirtError) {
        let box = Unmanaged.passRetained(StreamBox(onData: onData, onEnd: onEnd)).toOpaque()
        let callback: @convention(c) (OpaquePointer?, Int32, UnsafeMutableRawPointer?) -> Void = { stream, events, opaque in
            guard let stream, let opaque else { return }
            let box = Unmanaged<StreamBox>.fromOpaque(opaque).takeUnretainedValue()
            box.handle(stream: stream, events: events)
        }
        let free: @convention(c) (UnsafeMutableRawPointer?) -> Void = { opaque in
            guard let opaque else { return }
            Unmanaged<StreamBox>.fromOpaque(opaque).release()
        }
        let events = Int32(VIR_STREAM_EVENT_READABLE.rawValue | VIR_STREAM_EVENT_ERROR.rawValue | VIR_STREAM_EVENT_HANGUP.rawValue)
        do {
            try Libvirt.call("watching a stream for input") { virStreamEventAddCallback(handle, events, callback, box, free) }
        } catch {
            Unmanaged<StreamBox>.fromOpaque(box).release()
            throw error
        }
        state.withLock { $0 = .receiving }
    }

    /// Writes all of `bytes`, waiting while the stream's buffer is full.
    public func send(_ bytes: [UInt8]) throws(LibvirtError) {
        sendLock.lock()
        defer { sendLock.unlock() }
        var offset = 0
        var waited = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBufferPointer { buffer in
                buffer.baseAddress!.advanced(by: offset).withMemoryRebound(to: CChar.self, capacity: bytes.count - offset) {
                    virStreamSend(handle, $0, bytes.count - offset)
                }
            }
            if sent == -2 {
                waited += 1
                if waited > 30_000 { throw LibvirtError(operation: "writing to a stream", code: 0, domain: 0, message: "the other side has not read for 30 s") }
                usleep(1000)
                continue
            }
            if sent < 0 { throw LibvirtError.fromLastError("writing to a stream") }
            offset += Int(sent)
        }
    }

    /// Stops receiving and closes the stream. Safe to call more than once.
    public func close() {
        let previous = state.withLock { state in defer { state = .closed }; return state }
        switch previous {
        case .closed: return
        case .receiving:
            _ = virStreamEventRemoveCallback(handle)
            _ = virStreamAbort(handle)
        case .open:
            _ = virStreamAbort(handle)
        }
        virResetLastError()
    }
}

private final class StreamBox: @unchecked Sendable {
    // Touched only on the event-loop thread.
    let onData: @Sendable ([UInt8]) -> Void
    let onEnd: @Sendable (LibvirtError?) -> Void
    private var ended = false
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    init(onData: @escaping @Sendable ([UInt8]) -> Void, onEnd: @escaping @Sendable (LibvirtError?) -> Void) {
        self.onData = onData
        self.onEnd = onEnd
    }

    func handle(stream: OpaquePointer, events: Int32) {
        guard !ended else { return }
        if events & Int32(VIR_STREAM_EVENT_READABLE.rawValue) != 0 || events & Int32(VIR_STREAM_EVENT_HANGUP.rawValue) != 0 {
            while true {
                let count = buffer.withUnsafeMutableBufferPointer { pointer in
                    pointer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: pointer.count) {
                        virStreamRecv(stream, $0, pointer.count)
                    }
                }
                if count > 0 {
                    onData(Array(buffer[0..<Int(count)]))
                    continue
                }
                if count == -2 { break } // would block: wait for the next event
                if count == 0 { finish(stream, nil); return } // end of stream
                finish(stream, LibvirtError.fromLastError("reading from a stream"))
                return
            }
        }
        if events & Int32(VIR_STREAM_EVENT_ERROR.rawValue) != 0 {
            finish(stream, LibvirtError(operation: "reading from a stream", code: 0, domain: 0, message: "the stream reported an error"))
        } else if events & Int32(VIR_STREAM_EVENT_HANGUP.rawValue) != 0 {
            finish(stream, nil)
        }
    }

    private func finish(_ stream: OpaquePointer, _ error: LibvirtError?) {
        guard !ended else { return }
        ended = true
        _ = virStreamEventUpdateCallback(stream, 0)
        onEnd(error)
    }
}
