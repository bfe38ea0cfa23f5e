import Foundation
import Synchronization
import Testbed
import TestbedTesting
import Testing

/// Where this package lives.
let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// One injected fault and what became of it: a line of the ledger that
/// `make reliability` sums up (scripts/reliability-summary).
struct FaultRecord: Codable, Sendable {
    var fault: String
    var category: String
    var survived: Bool
    var leaks: [String]
    var seconds: Double
    var detail: String
    var figures: [String: Double]
}

/// The ledger: JSON lines, appended by every fault case of the suite.
enum FaultLedger {
    static var file: URL {
        if let path = ProcessInfo.processInfo.environment["NODEOS_RELIABILITY_LEDGER"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        return packageRoot.appendingPathComponent("build/reliability/ledger.jsonl")
    }

    private static let lock = Mutex(())

    static func append(_ record: FaultRecord) {
        lock.withLock { _ in
            let url = file
            try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            guard var line = try? JSONEncoder().encode(record) else { return }
            line.append(UInt8(ascii: "\n"))
            let fd = open(url.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            guard fd >= 0 else { return }
            defer { close(fd) }
            _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        }
    }
}

/// What a fault case wants said in the ledger besides pass/fail.
final class FaultNotes: Sendable {
    private let state = Mutex<(detail: [String], figures: [String: Double])>(([], [:]))
    func say(_ text: String) { state.withLock { $0.detail.append(text) } }
    func figure(_ name: String, _ value: Double) { state.withLock { $0.figures[name] = value } }
    func figure(_ name: String, _ value: Duration) { figure(name, value.milliseconds / 1000) }
    var detail: String { state.withLock { $0.detail.joined(separator: "; ") } }
    var figures: [String: Double] { state.withLock { $0.figures } }
}

/// Runs one fault case: times it, then looks for what it may have leaked
/// (QEMU processes of this process's driver root, dead runs' roots, its
/// scratch folder), and writes the ledger line. A case survives when its body
/// returns: the checks that matter use `try #require`, so a failed one throws.
func injecting(
    _ fault: String, category: String,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (FaultNotes, URL) async throws -> Void
) async throws {
    let notes = FaultNotes()
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("nodeos-rel-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    let clock = ContinuousClock()
    let started = clock.now
    var failure: (any Error)?
    do {
        try await body(notes, scratch)
    } catch {
        failure = error
    }
    try? FileManager.default.removeItem(at: scratch)
    let leaks = await Leaks.find(scratch: scratch)
    let record = FaultRecord(
        fault: fault, category: category, survived: failure == nil, leaks: leaks,
        seconds: (clock.now - started).milliseconds / 1000,
        detail: failure.map { "FAILED: \(String(describing: $0).prefix(2000))" } ?? notes.detail, figures: notes.figures)
    FaultLedger.append(record)
    if !leaks.isEmpty {
        Issue.record(Comment(rawValue: "\(fault): leaked \(leaks.joined(separator: ", "))"), sourceLocation: sourceLocation)
    }
    if let failure { throw failure }
}

enum Leaks {
    /// What is left over now. Waits up to 5 s for QEMU processes to go:
    /// a destroy returns when libvirt has signalled them.
    static func find(scratch: URL?) async -> [String] {
        var leaks: [String] = []
        var qemu: [Int32] = []
        // This process's driver roots are /tmp/nodeos/<pid>-<n>.
        let mine = "\(EmbedRoot.parent)/\(getpid())-"
        let deadline = ContinuousClock.now + .seconds(5)
        repeat {
            qemu = EmbedRoot.processes(mentioning: mine)
            if qemu.isEmpty { break }
            try? await Task.sleep(for: .milliseconds(200))
        } while ContinuousClock.now < deadline
        leaks += qemu.map { "QEMU process \($0)" }
        leaks += deadEmbedRoots().map { "embed root \($0) of a dead process" }
        if let scratch, FileManager.default.fileExists(atPath: scratch.path) { leaks.append("scratch folder \(scratch.path)") }
        return leaks
    }

    /// Roots under /tmp/nodeos whose owner process is gone.
    static func deadEmbedRoots() -> [String] {
        let parent = EmbedRoot.parent
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        return entries.compactMap { entry in
            guard let pid = Int32(entry.split(separator: "-").first ?? "") else { return nil }
            return kill(pid, 0) == 0 || errno == EPERM ? nil : "\(parent)/\(entry)"
        }
    }
}

/// Host-side figures of this process, for the soak and the flood.
enum ProcessFigures {
    static func openFileDescriptors() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).count
    }

    static func status(_ key: String) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            return Double(line.dropFirst(key.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        }
        return nil
    }

    static var threads: Int { Int(status("Threads") ?? 0) }
    static var rssMiB: Double { (status("VmRSS") ?? 0) / 1024 }
    /// The highest RSS since the last ``resetPeak()``.
    static var peakRssMiB: Double { (status("VmHWM") ?? 0) / 1024 }
    /// Resets VmHWM to the current RSS (`/proc/self/clear_refs`, value 5).
    static func resetPeak() {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return }
        _ = write(fd, "5", 1)
        close(fd)
    }
}

/// Runs `body`, which must fail with a ``MachineError``; returns it.
func expectMachineError(_ what: String, _ body: () async throws -> Void) async throws -> MachineError {
    do {
        try await body()
    } catch let error as MachineError {
        return error
    }
    throw ExpectedFailure(what: what)
}

struct ExpectedFailure: Error, CustomStringConvertible {
    var what: String
    var description: String { "expected a failure: \(what), but it succeeded" }
}

/// A check of the suite that failed: thrown, so the case counts as not
/// survived and the ledger carries a readable reason.
struct CheckFailed: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Throws ``CheckFailed`` with `message` unless `condition` holds.
func check(_ condition: Bool, _ message: @autoclosure () -> String = "", file: String = #fileID, line: Int = #line) throws {
    if !condition { throw CheckFailed(message: "check failed at \(file):\(line)" + (message().isEmpty ? "" : ": \(message())")) }
}

/// Every failure message must name its cause and an artifacts folder that exists.
func requireExplained(_ error: MachineError, cause: String) throws {
    let text = error.description
    try check(text.contains(cause), "the message does not name the cause '\(cause)':\n\(text)")
    try check(text.contains("--- artifacts: \(error.artifacts)"), "the message does not end with the artifacts path:\n\(text)")
    try check(FileManager.default.fileExists(atPath: error.artifacts + "/console.log"), "no console.log in \(error.artifacts)")
}
