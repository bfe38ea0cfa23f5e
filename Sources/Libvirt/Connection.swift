import CLibvirt
import Foundation
import Synchronization

/// A libvirt connection, owned once and closed once.
///
/// ```swift
/// let connection = try Connection(uri: "qemu:///embed?root=/run/nodeos/1234")
/// let domain = try connection.createDomain(xml: xml, startPaused: true)
/// ```
public final class Connection: @unchecked Sendable {
    // libvirt connections are thread-safe; the pointer itself never changes.
    private let handle: OpaquePointer
    private let closed = Atomic<Bool>(false)
    /// The URI this connection was opened with.
    public let uri: String
    private let callbackIDs = Mutex<[Int32]>([])
    private static let openLock = NSLock()

    /// Opens a connection; starts the event loop first if needed.
    public init(uri: String) throws(LibvirtError) {
        try EventLoop.ensureRunning()
        self.uri = uri
        // Opening the embedded driver initialises it in-process; libvirt 9.0
        // crashes or says "state driver is not active" when two threads race
        // through that, so connections open one at a time.
        Connection.openLock.lock()
        defer { Connection.openLock.unlock() }
        self.handle = try Libvirt.call("connecting to '\(uri)'") { virConnectOpen(uri) }
    }

    deinit {
        close()
    }

    /// Closes the connection. Safe to call more than once; later calls do nothing.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for id in callbackIDs.withLock({ ids in defer { ids = [] }; return ids }) {
            _ = virConnectDomainEventDeregisterAny(handle, id)
        }
        _ = virConnectClose(handle)
        virResetLastError()
    }

    /// Lends the raw handle for the duration of `body`.
    public func withUnsafeHandle<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T {
        precondition(!closed.load(ordering: .acquiring), "libvirt connection used after close()")
        return try body(handle)
    }

    /// Lends the raw handle to `body`, keeping its typed error.
    func withHandle<T, E: Error>(_ body: (OpaquePointer) throws(E) -> T) throws(E) -> T {
        precondition(!closed.load(ordering: .acquiring), "libvirt connection used after close()")
        return try body(handle)
    }

    /// Starts a transient domain from XML.
    /// - Parameters:
    ///   - startPaused: start with its vCPUs stopped, so consoles can be attached before it runs.
    ///   - autodestroy: destroy the domain when this connection closes (not
    ///     supported by the embedded driver in libvirt 9.0).
    public func createDomain(xml: String, name: String, startPaused: Bool = false, autodestroy: Bool = false) throws(LibvirtError) -> Domain {
        var flags: UInt32 = 0
        if startPaused { flags |= VIR_DOMAIN_START_PAUSED.rawValue }
        if autodestroy { flags |= VIR_DOMAIN_START_AUTODESTROY.rawValue }
        let pointer = try Libvirt.call("starting domain '\(name)'") { virDomainCreateXML(handle, xml, flags) }
        return Domain(owning: pointer, name: name)
    }

    /// Looks a domain up by name.
    public func lookupDomain(name: String) throws(LibvirtError) -> Domain {
        let pointer = try Libvirt.call("looking up domain '\(name)'") { virDomainLookupByName(handle, name) }
        return Domain(owning: pointer, name: name)
    }

    /// Every domain this connection sees, running or not.
    public func allDomains() throws(LibvirtError) -> [Domain] {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = try Libvirt.call("listing domains on '\(uri)'") { virConnectListAllDomains(handle, &list, 0) }
        guard let list else { return [] }
        defer { free(list) }
        return (0..<Int(count)).compactMap { index in
            guard let pointer = list[index] else { return nil }
            let name = virDomainGetName(pointer).map { String(cString: $0) } ?? "?"
            return Domain(owning: pointer, name: name)
        }
    }

    /// Opens a new stream on this connection (non-blocking).
    public func newStream() throws(LibvirtError) -> DomainStream {
        let pointer = try Libvirt.call("creating a stream on '\(uri)'") { virStreamNew(handle, UInt32(VIR_STREAM_NONBLOCK.rawValue)) }
        return DomainStream(owning: pointer)
    }

    /// Calls `handler` on the event-loop thread for every lifecycle event of
    /// every domain on this connection, until the connection closes.
    public func onLifecycleEvent(_ handler: @escaping @Sendable (LifecycleEvent) -> Void) throws(LibvirtError) {
        let box = Unmanaged.passRetained(LifecycleBox(handler)).toOpaque()
        let callback: @convention(c) (OpaquePointer?, OpaquePointer?, Int32, Int32, UnsafeMutableRawPointer?) -> Int32 = { _, domain, event, detail, opaque in
            guard let opaque, let domain else { return 0 }
            let box = Unmanaged<LifecycleBox>.fromOpaque(opaque).takeUnretainedValue()
            let name = virDomainGetName(domain).map { String(cString: $0) } ?? "?"
            box.handler(LifecycleEvent(domain: name, event: event, detail: detail))
            return 0
        }
        let free: @convention(c) (UnsafeMutableRawPointer?) -> Void = { opaque in
            guard let opaque else { return }
            Unmanaged<LifecycleBox>.fromOpaque(opaque).release()
        }
        let generic = unsafeBitCast(callback, to: virConnectDomainEventGenericCallback.self)
        let id: Int32
        do {
            id = try Libvirt.call("registering for lifecycle events on '\(uri)'") {
                virConnectDomainEventRegisterAny(handle, nil, Int32(VIR_DOMAIN_EVENT_ID_LIFECYCLE.rawValue), generic, box, free)
            }
        } catch {
            Unmanaged<LifecycleBox>.fromOpaque(box).release()
            throw error
        }
        callbackIDs.withLock { $0.append(id) }
    }
}

private final class LifecycleBox: Sendable {
    let handler: @Sendable (LifecycleEvent) -> Void
    init(_ handler: @escaping @Sendable (LifecycleEvent) -> Void) { self.handler = handler }
}

/// A domain lifecycle event (`VIR_DOMAIN_EVENT_*`).
public struct LifecycleEvent: Sendable, CustomStringConvertible {
    public var domain: String
    public var event: Int32
    public var detail: Int32

    /// Whether the domain stopped (shut off, crashed, destroyed).
    public var isStopped: Bool { event == Int32(VIR_DOMAIN_EVENT_STOPPED.rawValue) }
    public var isStarted: Bool { event == Int32(VIR_DOMAIN_EVENT_STARTED.rawValue) }

    public var description: String {
        let names = ["defined", "undefined", "started", "suspended", "resumed", "stopped", "shutdown", "pmsuspended", "crashed"]
        let name = (0..<names.count).contains(Int(event)) ? names[Int(event)] : "event \(event)"
        return "\(domain): \(name) (detail \(detail))"
    }
}
