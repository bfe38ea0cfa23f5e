import Foundation
@testable import Scenarios
import Testing

@Suite("The step watchdog")
struct WatchdogTests {
    struct Boom: Error {}

    @Test("a body that finishes in time gives its value or its error")
    func inTime() async throws {
        #expect(try await abandoning(after: .seconds(5)) { 42 } == 42)
        await #expect(throws: Boom.self) { try await abandoning(after: .seconds(5)) { () async throws -> Int in throw Boom() } }
    }

    @Test("a body that ignores cancellation is abandoned at the limit")
    func abandoned() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let result = try await abandoning(after: .milliseconds(200)) {
            // Ignores cancellation, like a blocked libvirt call. It finishes
            // long after the limit, so a loaded host (the timer task waits for a
            // free thread in the cooperative pool) cannot make it win the race.
            await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
                DispatchQueue.global().asyncAfter(deadline: .now() + 60) { continuation.resume(returning: 1) }
            }
        }
        #expect(result == nil)
        #expect(clock.now - started < .seconds(45))
    }
}
