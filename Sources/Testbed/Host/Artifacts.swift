import Foundation

/// Where a run keeps what it saw: `artifacts/<run-id>/<machine>/`.
///
/// Each machine's folder holds `console.log` (the whole serial console),
/// `agent.jsonl` (the agent transcript), `domain.xml`, `qemu.log`,
/// `libvirt.log` and `report.json`.
public struct ArtifactsRun: Sendable {
    /// `artifacts/<run-id>`.
    public let root: URL
    public let runID: String

    /// Base folder: `$NODEOS_ARTIFACTS`, else `./artifacts`.
    public static var defaultBase: URL {
        if let env = ProcessInfo.processInfo.environment["NODEOS_ARTIFACTS"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("artifacts")
    }

    /// A run id: UTC time and process id, e.g. `20261128-181500-4242`.
    public static func makeRunID(date: Date = Date(), pid: Int32 = getpid()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return "\(formatter.string(from: date))-\(pid)"
    }

    public init(base: URL = ArtifactsRun.defaultBase, runID: String = ArtifactsRun.makeRunID()) throws {
        self.runID = runID
        self.root = base.appendingPathComponent(runID).standardizedFileURL
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    /// Creates (if needed) and returns the folder for one machine.
    public func folder(for machine: String) throws -> URL {
        let url = root.appendingPathComponent(machine)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// An append-only file written from any thread.
final class AppendFile: @unchecked Sendable {
    // FileHandle writes are serialised by the lock.
    private let handle: FileHandle?
    private let lock = NSLock()
    let path: String

    init(path: String) {
        self.path = path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        handle = FileHandle(forWritingAtPath: path)
    }

    func write(_ bytes: [UInt8]) {
        lock.lock()
        defer { lock.unlock() }
        try? handle?.write(contentsOf: Data(bytes))
    }

    func write(_ text: String) { write(Array(text.utf8)) }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        try? handle?.close()
    }
}
