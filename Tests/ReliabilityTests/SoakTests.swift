import Foundation
import Testbed
import TestbedTesting
import Testing

extension Reliability {
    /// Many machines, one after another: the testbed's own resources stay flat.
    @Suite("Soak")
    struct Soak {
        static var cycles: Int { Int(ProcessInfo.processInfo.environment["NODEOS_SOAK_CYCLES"] ?? "") ?? 50 }

        @Test("sequential boot, exec, shutdown cycles: file descriptors, threads and RSS stay flat")
        func soak() async throws {
            let cycles = Self.cycles
            try await injecting("soak: \(cycles) boot-exec-shutdown cycles", category: "soak") { notes, _ in
                var start: (fds: Int, threads: Int, rss: Double)?
                var bootSeconds: [Double] = []
                let clock = ContinuousClock()
                for cycle in 1...cycles {
                    let began = clock.now
                    try await withMachine(named: "soak") { machine in
                        let answer = try await machine.succeed(["node", "-p", "\(cycle) * 2"])
                        try check(answer == "\(cycle * 2)\n", "cycle \(cycle): the guest answered \(answer)")
                        try await machine.shutdown()
                    }
                    bootSeconds.append((clock.now - began).milliseconds / 1000)
                    // The first cycle warms caches, pools and libvirt's state: count from after it.
                    if cycle == 1 { start = (ProcessFigures.openFileDescriptors(), ProcessFigures.threads, ProcessFigures.rssMiB) }
                    if cycle % 10 == 0 {
                        print("soak: cycle \(cycle)/\(cycles): fds \(ProcessFigures.openFileDescriptors()), threads \(ProcessFigures.threads), RSS \(Int(ProcessFigures.rssMiB)) MiB")
                    }
                }
                let end = (fds: ProcessFigures.openFileDescriptors(), threads: ProcessFigures.threads, rss: ProcessFigures.rssMiB)
                let first = try #require(start)
                notes.figure("cycles", Double(cycles))
                notes.figure("fdsStart", Double(first.fds)); notes.figure("fdsEnd", Double(end.fds))
                notes.figure("threadsStart", Double(first.threads)); notes.figure("threadsEnd", Double(end.threads))
                notes.figure("rssStartMiB", first.rss); notes.figure("rssEndMiB", end.rss)
                notes.figure("cycleMedianS", bootSeconds.sorted()[bootSeconds.count / 2])
                notes.say(String(format: "after cycle 1 → after cycle %d: fds %d → %d, threads %d → %d, RSS %.0f → %.0f MiB; median cycle %.1f s",
                                 cycles, first.fds, end.fds, first.threads, end.threads, first.rss, end.rss, bootSeconds.sorted()[bootSeconds.count / 2]))
                // Flat: no descriptor or thread per cycle, and no steady memory growth.
                try check(end.fds - first.fds <= 5, "file descriptors grew \(first.fds) → \(end.fds) over \(cycles) cycles")
                try check(end.threads - first.threads <= 4, "threads grew \(first.threads) → \(end.threads)")
                try check(end.rss - first.rss <= 64, "RSS grew \(Int(first.rss)) → \(Int(end.rss)) MiB")
            }
        }
    }
}
