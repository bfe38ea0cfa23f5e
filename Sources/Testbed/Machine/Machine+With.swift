import Foundation

extension Machine {
    /// Starts a machine for the duration of `body` and finishes it on every
    /// exit path: whatever `body` left running is destroyed, the artifacts
    /// are saved and the slot is given back. `body` may shut the machine down
    /// itself (a clean power-off); finishing twice is harmless.
    ///
    /// ```swift
    /// let version = try await Machine.with(MachineSpec(image: image), in: testbed) { machine in
    ///     try await machine.succeed("node -p process.version")
    /// }
    /// ```
    public static func with<T: Sendable>(
        _ spec: MachineSpec, in testbed: Testbed, waitForAgent: Bool = true, agentTimeout: Duration? = nil,
        _ body: (Machine) async throws -> T
    ) async throws -> T {
        let machine = try await Machine.start(spec, in: testbed)
        do {
            if waitForAgent { try await machine.waitForAgent(timeout: agentTimeout) }
            let result = try await body(machine)
            await machine.finish(destroy: true)
            return result
        } catch {
            await machine.finish(destroy: true)
            throw error
        }
    }
}
