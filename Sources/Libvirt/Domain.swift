import CLibvirt
import Foundation

/// A libvirt domain handle, owned once and freed once.
public final class Domain: @unchecked Sendable {
    // libvirt domain objects are thread-safe and reference-counted.
    private let handle: OpaquePointer
    /// The domain's name.
    public let name: String

    init(owning handle: OpaquePointer, name: String) {
        self.handle = handle
        self.name = name
    }

    deinit {
        _ = virDomainFree(handle)
    }

    /// Lends the raw handle for the duration of `body`.
    public func withUnsafeHandle<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T {
        try body(handle)
    }

    /// The domain's state as libvirt sees it.
    public enum State: Sendable, Equatable {
        case noState, running, blocked, paused, shuttingDown, shutOff, crashed, suspended, unknown(Int32)

        init(_ raw: Int32) {
            switch raw {
            case Int32(VIR_DOMAIN_NOSTATE.rawValue): self = .noState
            case Int32(VIR_DOMAIN_RUNNING.rawValue): self = .running
            case Int32(VIR_DOMAIN_BLOCKED.rawValue): self = .blocked
            case Int32(VIR_DOMAIN_PAUSED.rawValue): self = .paused
            case Int32(VIR_DOMAIN_SHUTDOWN.rawValue): self = .shuttingDown
            case Int32(VIR_DOMAIN_SHUTOFF.rawValue): self = .shutOff
            case Int32(VIR_DOMAIN_CRASHED.rawValue): self = .crashed
            case Int32(VIR_DOMAIN_PMSUSPENDED.rawValue): self = .suspended
            default: self = .unknown(raw)
            }
        }

        /// Whether QEMU is still there (running, paused, shutting down).
        public var isActive: Bool {
            switch self {
            case .shutOff, .crashed: false
            default: true
            }
        }
    }

    /// The current state.
    public func state() throws(LibvirtError) -> State {
        var state: Int32 = 0
        var reason: Int32 = 0
        try Libvirt.call("reading the state of domain '\(name)'") { virDomainGetState(handle, &state, &reason, 0) }
        return State(state)
    }

    /// Whether the domain is running (QEMU process alive).
    public func isActive() -> Bool {
        virDomainIsActive(handle) == 1
    }

    /// Changes a device of the running domain (e.g. an interface's link state).
    public func updateDevice(xml: String) throws(LibvirtError) {
        try Libvirt.call("updating a device of domain '\(name)'") { virDomainUpdateDeviceFlags(handle, xml, UInt32(VIR_DOMAIN_AFFECT_LIVE.rawValue)) }
    }

    /// Resumes a paused domain.
    public func resume() throws(LibvirtError) {
        try Libvirt.call("resuming domain '\(name)'") { virDomainResume(handle) }
    }

    /// Kills the domain's QEMU process at once (no guest shutdown).
    public func destroy() throws(LibvirtError) {
        try Libvirt.call("destroying domain '\(name)'") { virDomainDestroy(handle) }
    }

    /// Asks the guest to power off through ACPI.
    public func shutdown() throws(LibvirtError) {
        try Libvirt.call("shutting down domain '\(name)'") { virDomainShutdown(handle) }
    }

    /// Resets the machine (like pressing the reset button).
    public func reset() throws(LibvirtError) {
        try Libvirt.call("resetting domain '\(name)'") { virDomainReset(handle, 0) }
    }

    /// The live domain XML, as libvirt completed it.
    public func xmlDescription() throws(LibvirtError) -> String {
        let pointer = try Libvirt.call("reading the XML of domain '\(name)'") { virDomainGetXMLDesc(handle, 0) }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// The domain's numeric id while running.
    public var id: UInt32 { virDomainGetID(handle) }

    /// Memory statistics from the balloon driver and QEMU (`VIR_DOMAIN_MEMORY_STAT_*`, KiB).
    public func memoryStats() throws(LibvirtError) -> MemoryStats {
        var stats = [virDomainMemoryStatStruct](repeating: virDomainMemoryStatStruct(), count: Int(VIR_DOMAIN_MEMORY_STAT_NR.rawValue))
        let count = try Libvirt.call("reading memory statistics of domain '\(name)'") {
            virDomainMemoryStats(handle, &stats, UInt32(stats.count), 0)
        }
        var result = MemoryStats()
        for stat in stats.prefix(Int(count)) {
            switch Int32(stat.tag) {
            case Int32(VIR_DOMAIN_MEMORY_STAT_RSS.rawValue): result.rssKiB = stat.val
            case Int32(VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON.rawValue): result.actualBalloonKiB = stat.val
            case Int32(VIR_DOMAIN_MEMORY_STAT_AVAILABLE.rawValue): result.availableKiB = stat.val
            case Int32(VIR_DOMAIN_MEMORY_STAT_UNUSED.rawValue): result.unusedKiB = stat.val
            case Int32(VIR_DOMAIN_MEMORY_STAT_USABLE.rawValue): result.usableKiB = stat.val
            default: break
            }
        }
        return result
    }

    /// CPU time used by the domain so far (`virDomainGetInfo`).
    public func cpuTime() throws(LibvirtError) -> Duration {
        var info = virDomainInfo()
        try Libvirt.call("reading information of domain '\(name)'") { virDomainGetInfo(handle, &info) }
        return .nanoseconds(Int64(info.cpuTime))
    }

    /// Connects `stream` to the domain's serial console (`serial0`).
    public func openConsole(_ stream: DomainStream, device: String? = "serial0") throws(LibvirtError) {
        _ = try stream.withUnsafeHandle { (st) throws(LibvirtError) in
            try Libvirt.call("opening the console of domain '\(name)'") {
                virDomainOpenConsole(handle, device, st, UInt32(VIR_DOMAIN_CONSOLE_FORCE.rawValue))
            }
        }
    }

    /// Connects `stream` to the virtio-serial channel `channel` (its target name).
    public func openChannel(_ channel: String, _ stream: DomainStream) throws(LibvirtError) {
        _ = try stream.withUnsafeHandle { (st) throws(LibvirtError) in
            try Libvirt.call("opening channel '\(channel)' of domain '\(name)'") {
                virDomainOpenChannel(handle, channel, st, UInt32(VIR_DOMAIN_CHANNEL_FORCE.rawValue))
            }
        }
    }
}

/// Memory statistics of a domain, in KiB; `nil` where libvirt had none.
public struct MemoryStats: Sendable, Equatable, Codable {
    /// Resident set size of the QEMU process on the host.
    public var rssKiB: UInt64?
    public var actualBalloonKiB: UInt64?
    public var availableKiB: UInt64?
    public var unusedKiB: UInt64?
    public var usableKiB: UInt64?
    public init() {}
}
