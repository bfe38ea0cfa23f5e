import Foundation
import Libvirt
import Synchronization
import TestbedCore

extension Machine {
    // MARK: Lifecycle

    /// Reboots cleanly through init and waits for the agent of the new boot.
    public func reboot(timeout: Duration? = nil) async throws {
        let before = agent.ready.count
        agent.expectNewBoot()
        _ = try await request("reboot", [:], timeout: deadlines.command)
        try await waitUntil(timeout: timeout ?? deadlines.agent, "waiting for the agent after a reboot") { [agent] in
            agent.ready.count > before
        }
    }

    /// Shuts down cleanly through init (the agent's `shutdown`) and waits for
    /// the domain to stop; then saves the artifacts and frees the slot.
    public func shutdown(timeout: Duration? = nil) async throws {
        guard !finished else { return }
        let timeout = timeout ?? deadlines.shutdown
        do {
            _ = try await request("shutdown", [:], timeout: timeout)
        } catch let error as MachineError where error.kind == .machineStopped {
            // The channel may close before the answer arrives: the machine is going down.
        }
        do {
            try await waitUntil(timeout: timeout, "waiting for the machine to power off", failOnProblems: false) { [shared] in
                shared.stopped.withLock { $0 != nil }
            }
        } catch {
            await finish(destroy: true)
            throw error
        }
        await finish(destroy: false)
    }

    /// Lets a machine started with ``MachineSpec/startsPaused`` run.
    public func resume() async throws {
        let domain = self.domain
        do {
            try await Blocking.run { try domain.resume() }
        } catch let error as LibvirtError {
            throw context.failure(.testbed, error.description)
        }
    }

    /// Pulls the plug: destroys the domain at once (no guest shutdown).
    public func crash() async {
        await finish(destroy: true)
    }

    /// Whether the domain has stopped.
    public var isStopped: Bool { shared.stopped.withLock { $0 != nil } }

    /// Stops the machine if it still runs (destroying it), then saves artifacts.
    /// Called by `withMachine` on every exit path.
    public func finish(destroy: Bool = true) async {
        guard !finished else { return }
        finished = true
        let domain = self.domain
        // A stopped event means QEMU is gone (and the transient domain with it).
        if shared.stopped.withLock({ $0 }) == nil {
            _ = try? await Blocking.run {
                if domain.isActive() { try domain.destroy() }
            }
        }
        Cleanup.unregister(domain: domain)
        shared.stopped.withLock { if $0 == nil { $0 = "the machine was destroyed" } }
        testbed.onLifecycle(of: name, nil)
        // The report first: whatever happens next, the artifacts say how it went.
        let report = bootReport(memory: nil)
        try? report.json.write(to: artifacts.appendingPathComponent("report.json"), atomically: true, encoding: .utf8)
        await Self.closeStreams(console, agent, machine: name)
        if let root = testbed.embedRoot {
            Self.copyIfPresent(root.qemuLog(domain: name), to: artifacts.appendingPathComponent("qemu.log"))
        }
        if let log = LibvirtLog.file {
            Self.copyIfPresent(log, to: artifacts.appendingPathComponent("libvirt.log"))
        }
        // Uploaded volumes: written back into the local files, so the host reads what the guest wrote.
        for problem in await staged?.finish(download: true) ?? [] {
            shared.problems.withLock { $0.append("volumes: \(problem)") }
        }
        testbed.releaseName(name)
        await MachineLimiter.shared.release()
    }

    /// Closes the console and agent streams off the cooperative pool, waiting
    /// at most 10 s: a stuck libvirt stream must not keep a test from ending.
    static func closeStreams(_ console: Console, _ agent: AgentClient, machine: String) async {
        final class Once: Sendable {
            private let done = Atomic<Bool>(false)
            func claim() -> Bool { !done.exchange(true, ordering: .acquiringAndReleasing) }
        }
        let once = Once()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                console.detach(reason: "the machine stopped")
                agent.close()
                if once.claim() { continuation.resume() }
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + 10) {
                if once.claim() {
                    LibvirtLog.append("machine '\(machine)': closing its console and agent streams took over 10 s; going on")
                    continuation.resume()
                }
            }
        }
    }

    static func copyIfPresent(_ source: String, to target: URL) {
        guard FileManager.default.fileExists(atPath: source) else { return }
        try? FileManager.default.removeItem(at: target)
        try? FileManager.default.copyItem(atPath: source, toPath: target.path)
    }
}
