import Foundation
import Libvirt
import Synchronization

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
