import Foundation

/// A program run on the host (mkfs.ext4, debugfs, e2fsck, …) with its output
/// kept apart, a deadline, and an error that names the step when it fails.
public struct HostCommand: Sendable {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: Data
        public var stderr: String
        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var step: String
        public var command: [String]
        public var status: Int32?
        public var stderr: String
        public var description: String {
            let how = status.map { "exited with status \($0)" } ?? "did not finish in time"
            let tail = stderr.split(separator: "\n").suffix(5).joined(separator: "\n")
            return "\(step): `\(command.joined(separator: " "))` \(how)\(tail.isEmpty ? "" : ":\n\(tail)")"
        }
    }

    public var executable: String
    public var arguments: [String]
    public var step: String

    /// - Parameter step: what this command does, for error messages ("creating
    ///   alice's home volume").
    public init(_ executable: String, _ arguments: [String], step: String) {
        self.executable = executable
        self.arguments = arguments
        self.step = step
    }

    /// Runs the command to completion and returns its result; throws only when
    /// it could not start or ran past `timeout` (then it is killed).
    public func result(timeout: Duration = .seconds(120)) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: HostCommand.resolve(executable))
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw Failure(step: step, command: [executable] + arguments, status: nil, stderr: "could not start: \(error)")
        }
        // Drain both pipes while waiting, so a chatty command cannot block.
        let group = DispatchGroup()
        let collected = LockedBox((Data(), Data()))
        group.enter()
        DispatchQueue.global().async {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            collected.mutate { $0.0 = data }
            group.leave()
        }
        group.enter()
        DispatchQueue.global().async {
            let data = err.fileHandleForReading.readDataToEndOfFile()
            collected.mutate { $0.1 = data }
            group.leave()
        }
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        if group.wait(timeout: .now() + seconds) == .timedOut {
            Self.stop(process)
            throw Failure(step: step, command: [executable] + arguments, status: nil, stderr: "killed after \(timeout)")
        }
        process.waitUntilExit()
        let (stdout, stderr) = collected.value
        return Result(status: process.terminationStatus, stdout: stdout, stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Runs the command and throws unless it exits 0.
    @discardableResult
    public func run(timeout: Duration = .seconds(120)) throws -> Result {
        let result = try result(timeout: timeout)
        guard result.status == 0 else {
            throw Failure(step: step, command: [executable] + arguments, status: result.status, stderr: result.stderr)
        }
        return result
    }

    /// SIGTERM, then SIGKILL for a command still there after a grace period:
    /// the deadline holds even for one that ignores SIGTERM.
    static func stop(_ process: Process, grace: Duration = .seconds(2)) {
        process.terminate()
        let deadline = ContinuousClock.now + grace
        while process.isRunning && ContinuousClock.now < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    static func resolve(_ name: String) -> String {
        if name.contains("/") { return name }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in (path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]) {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return "/usr/bin/\(name)"
    }
}

/// A value shared between threads behind a lock.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func mutate(_ body: (inout Value) -> Void) { lock.withLock { body(&stored) } }
}
