import Dispatch
import Foundation
import Libvirt
@_exported import TestbedCore
import Synchronization

/// Something in the testbed itself went wrong (not a test's assertion).
public enum TestbedError: Error, CustomStringConvertible, Sendable {
    case setup(String)
    case libvirt(LibvirtError)

    public var description: String {
        switch self {
        case .setup(let message): "testbed setup: \(message)"
        case .libvirt(let error): error.description
        }
    }
}

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
    private let acceleratorLock = AsyncLock()
    private let closed = Atomic<Bool>(false)

    /// The URI to use: `$NODEOS_LIBVIRT_URI` if set, else the embedded driver.
    public static var configuredURI: String? {
        ProcessInfo.processInfo.environment["NODEOS_LIBVIRT_URI"].flatMap { $0.isEmpty ? nil : $0 }
    }

    private static let sharedInstance = Mutex<Testbed?>(nil)
    private static let sharedLock = AsyncLock()

    /// The process-wide testbed, made on first use and closed at exit.
    public static func shared() async throws -> Testbed {
        try await sharedLock.withLock {
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
        try await acceleratorLock.withLock {
            if let known = acceleratorChoice.withLock({ $0 }) { return known }
            let (host, offered) = try await acceleratorHost()
            let decision = await AcceleratorProbe.decide(host: host, kvmOffered: offered) { [self] in await probeBoot(image) }
            LibvirtLog.append("accelerator: \(decision.accelerator) for \(host)\(decision.probed ? " after a probe boot" : ""): \(decision.reason)")
            acceleratorChoice.withLock { $0 = decision.accelerator }
            return decision.accelerator
        }
    }
}

/// Destroys the testbed's machines and removes its embedded roots on every
/// exit path: normal exit (`atexit`) and the signals that end a run: SIGINT
/// (130), SIGTERM (143), SIGHUP (129: the terminal went away) and SIGQUIT (131).
enum Cleanup {
    private struct State {
        var domains: [ObjectIdentifier: Domain] = [:]
        var roots: [String: EmbedRoot] = [:]
        var staged: [ObjectIdentifier: StagedVolumes] = [:]
        var hooks: [@Sendable () -> Void] = []
        var installed = false
    }

    private static let state = Mutex(State())
    /// The exit status a signal asked for (128 + its number), 0 before any.
    static let interruption = Atomic<Int32>(0)
    /// One cleanup at a time: a second caller waits until the first is done.
    private static let cleaning = Mutex(())
    /// The signals that end a run with a cleanup.
    static let endingSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]

    static func installOnce() {
        let first = state.withLock { state in
            defer { state.installed = true }
            return !state.installed
        }
        guard first else { return }
        // A signal decides the exit status, even when the work it interrupted
        // (a step failing because its machine was destroyed) reaches exit()
        // first: that exit waits for the cleanup, then exits as the signal says.
        atexit {
            Cleanup.runNow()
            let code = Cleanup.interruption.load(ordering: .sequentiallyConsistent)
            if code != 0 { _exit(code) }
        }
        SignalRelay.install(endingSignals) { signo in
            let code = 128 + signo
            Cleanup.interruption.store(code, ordering: .sequentiallyConsistent)
            Cleanup.runNow()
            _exit(code)
        }
    }

    static func addHook(_ hook: @escaping @Sendable () -> Void) { state.withLock { $0.hooks.append(hook) } }
    static func register(domain: Domain) { state.withLock { $0.domains[ObjectIdentifier(domain)] = domain } }
    static func unregister(domain: Domain) { _ = state.withLock { $0.domains.removeValue(forKey: ObjectIdentifier(domain)) } }
    static func register(staged: StagedVolumes) { state.withLock { $0.staged[ObjectIdentifier(staged)] = staged } }
    static func unregister(staged: StagedVolumes) { _ = state.withLock { $0.staged.removeValue(forKey: ObjectIdentifier(staged)) } }
    static func register(root: EmbedRoot) { state.withLock { $0.roots[root.path] = root } }
    static func unregister(root: EmbedRoot) { _ = state.withLock { $0.roots.removeValue(forKey: root.path) } }

    /// Destroys every registered domain, deletes machines' uploaded volumes
    /// and removes every registered root.
    static func runNow() {
        cleaning.withLock { _ in cleanUp() }
    }

    private static func cleanUp() {
        let (domains, roots, hooks, staged) = state.withLock { state in
            defer { state.domains = [:]; state.roots = [:]; state.hooks = []; state.staged = [:] }
            return (Array(state.domains.values), Array(state.roots.values), state.hooks, Array(state.staged.values))
        }
        for hook in hooks { hook() }
        for domain in domains where domain.isActive() {
            try? domain.destroy()
        }
        for volumes in staged { volumes.deleteNow() }
        for root in roots {
            QEMUCapabilitiesCache.save(from: root)
            // QEMU processes of this root that libvirt did not know about (or could not reach).
            for pid in EmbedRoot.processes(mentioning: root.path + "/") { kill(pid, SIGKILL) }
            root.remove()
        }
    }
}

/// The process's one embedded-driver root (libvirt refuses a second one in
/// the same process), made on first use after sweeping earlier runs' leftovers.
enum EmbeddedDriver {
    private static let made = Mutex<EmbedRoot?>(nil)

    static func root() throws -> EmbedRoot {
        try made.withLock { made in
            if let made { return made }
            for line in EmbedRoot.sweepLeftovers() { LibvirtLog.append("sweep: \(line)") }
            let root = try EmbedRoot.create()
            QEMUCapabilitiesCache.restore(into: root)
            Cleanup.register(root: root)
            made = root
            return root
        }
    }
}

/// Keeps QEMU's capability probe (libvirt runs QEMU once to learn what it can
/// do, about a second) across runs: each new embedded root starts with the
/// last run's cache. libvirt re-validates it against the QEMU binary itself.
enum QEMUCapabilitiesCache {
    static var directory: String {
        let base = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")
        return base + "/nodeos/qemu-capabilities"
    }

    static func restore(into root: EmbedRoot) {
        let target = root.path + "/cache/qemu/capabilities"
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory), !files.isEmpty else { return }
        try? FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        for file in files {
            try? FileManager.default.copyItem(atPath: directory + "/" + file, toPath: target + "/" + file)
        }
    }

    static func save(from root: EmbedRoot) {
        let source = root.path + "/cache/qemu/capabilities"
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: source), !files.isEmpty else { return }
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for file in files {
            try? FileManager.default.removeItem(atPath: directory + "/" + file)
            try? FileManager.default.copyItem(atPath: source + "/" + file, toPath: directory + "/" + file)
        }
    }
}

/// A lock held across `await`s (one holder at a time, FIFO).
final class AsyncLock: Sendable {
    private struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func withLock<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { state in
                if !state.locked { state.locked = true; return true }
                state.waiters.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty { state.locked = false; return nil }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
