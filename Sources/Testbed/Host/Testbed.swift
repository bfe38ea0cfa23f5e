import Dispatch
import Foundation
import Libvirt
@_exported import TestbedCore
import Synchronization

/// Where machines run: one libvirt connection (by default libvirt's embedded
/// QEMU driver under a private root), the run's artifacts folder, and the
/// cleanup that destroys every machine on every exit path.
///
/// ```swift
/// let testbed = try await Testbed.shared()
/// let machine = try await Machine.start(MachineSpec(image: image), in: testbed)
/// ```
public final class Testbed: Sendable {
    /// The libvirt URI machines run on.
    public let uri: String
    /// The embedded driver's root, when the testbed made one.
    public let embedRoot: EmbedRoot?
    /// Where artifacts of this run go.
    public let artifacts: ArtifactsRun
    /// The storage pool machines' volumes are uploaded to, when they travel
    /// through libvirt's storage API (a remote URI; see ``VolumeStagingMode``).
    public let staging: VolumeStaging?
    let connection: Connection
    private final class Handlers: Sendable {
        let map = Mutex<[String: @Sendable (LifecycleEvent) -> Void]>([:])
    }

    private let lifecycleHandlers = Handlers()
    private let names = Mutex<Set<String>>([])
    private let acceleratorChoice = Mutex<Accelerator?>(nil)
    private let acceleratorLock = Slots(limit: 1)
    private let closed = Atomic<Bool>(false)

    /// The URI to use: `$NODEOS_LIBVIRT_URI` if set, else the embedded driver.
    public static var configuredURI: String? {
        ProcessInfo.processInfo.environment["NODEOS_LIBVIRT_URI"].flatMap { $0.isEmpty ? nil : $0 }
    }

    private static let sharedInstance = Mutex<Testbed?>(nil)
    private static let sharedLock = Slots(limit: 1)

    /// The process-wide testbed, made on first use and closed at exit.
    public static func shared() async throws -> Testbed {
        try await sharedLock.withSlots(what: "waiting for the shared testbed's lock") {
            if let existing = sharedInstance.withLock({ $0 }) { return existing }
            let testbed = try await Testbed()
            sharedInstance.withLock { $0 = testbed }
            return testbed
        }
    }

    /// Opens a testbed.
    /// - Parameters:
    ///   - uri: a libvirt URI; `nil` means `$NODEOS_LIBVIRT_URI` or a new embedded driver root.
    ///   - artifacts: where this run's artifacts go.
    ///   - stageVolumes: when volumes are uploaded through libvirt's storage API
    ///     (default `$NODEOS_STAGE_VOLUMES`, else only for a remote URI).
    public init(uri: String? = Testbed.configuredURI, artifacts: ArtifactsRun? = nil, stageVolumes: VolumeStagingMode? = nil) async throws {
        let stageVolumes = try stageVolumes ?? VolumeStagingMode.configured
        let artifacts = try artifacts ?? ArtifactsRun()
        self.artifacts = artifacts
        LibvirtLog.redirect(to: artifacts.root.appendingPathComponent("libvirt.log").path)
        Cleanup.installOnce()
        let root: EmbedRoot?
        if let uri {
            root = nil
            self.uri = uri
        } else {
            // libvirt allows one embedded driver root per process: every
            // embedded testbed of this process shares it.
            let shared = try EmbeddedDriver.root()
            root = shared
            self.uri = shared.uri
        }
        self.embedRoot = root
        let uri = self.uri
        do {
            connection = try await Blocking.run { try Connection(uri: uri) }
        } catch let error as LibvirtError {
            throw TestbedError.libvirt(error)
        }
        staging = stageVolumes.stages(uri: uri) ? VolumeStaging(connection: connection, uri: uri) : nil
        try connection.onLifecycleEvent { [lifecycleHandlers] event in
            let handler = lifecycleHandlers.map.withLock { $0[event.domain] }
            handler?(event)
        }
    }

    /// Destroys every machine this testbed started that still runs and closes
    /// its connection. The embedded driver's root is shared by the process
    /// and removed when the process exits (or is interrupted).
    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let connection = self.connection
        let root = embedRoot
        let mine = names.withLock { $0 }
        _ = try? await Blocking.run {
            for domain in (try? connection.allDomains()) ?? [] where mine.contains(domain.name) && domain.isActive() {
                try? domain.destroy()
            }
            connection.close()
            if let root { QEMUCapabilitiesCache.save(from: root) }
        }
    }

    /// Runs `hook` when the process exits or is interrupted (SIGINT/SIGTERM),
    /// before machines are destroyed: e.g. to restore the terminal.
    public static func onExit(_ hook: @escaping @Sendable () -> Void) {
        Cleanup.installOnce()
        Cleanup.addHook(hook)
    }

    /// A domain name not used yet in this testbed: `name`, `name-2`, …
    func reserveName(_ name: String) -> String {
        names.withLock { names in
            var candidate = name
            var n = 2
            while names.contains(candidate) {
                candidate = "\(name)-\(n)"
                n += 1
            }
            names.insert(candidate)
            return candidate
        }
    }

    func releaseName(_ name: String) {
        _ = names.withLock { $0.remove(name) }
    }

    func onLifecycle(of domain: String, _ handler: (@Sendable (LifecycleEvent) -> Void)?) {
        lifecycleHandlers.map.withLock { $0[domain] = handler }
    }

    /// Uploads the files `spec` needs to the libvirt host when this testbed
    /// stages volumes; `nil` when the host sees this host's paths.
    func stageVolumes(of spec: MachineSpec, machine: String) async throws -> StagedVolumes? {
        guard let staging else { return nil }
        return try await staging.stage(spec, machine: machine)
    }

    /// The accelerator machines use, decided once per testbed (see ``AcceleratorProbe``).
    public func accelerator(for image: NodeOSImage) async throws -> Accelerator {
        // One decision per testbed, however many machines start at once.
        try await acceleratorLock.withSlots(what: "waiting for the accelerator probe") {
            if let known = acceleratorChoice.withLock({ $0 }) { return known }
            let (host, offered) = try await acceleratorHost()
            let decision = await AcceleratorProbe.decide(host: host, kvmOffered: offered) { [self] in await probeBoot(image) }
            LibvirtLog.append("accelerator: \(decision.accelerator) for \(host)\(decision.probed ? " after a probe boot" : ""): \(decision.reason)")
            acceleratorChoice.withLock { $0 = decision.accelerator }
            return decision.accelerator
        }
    }
}
