import Foundation
import HostProcess

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
    /// it could not start or ran past `timeout` (then its process group is
    /// killed: SIGTERM, SIGKILL after 2 s, so the deadline holds even for a
    /// command, or a child of it, that ignores SIGTERM).
    public func result(timeout: Duration = .seconds(120)) throws -> Result {
        let subprocess = Subprocess(HostCommand.resolve(executable), arguments, timeout: timeout, grace: .seconds(2))
        let finished: Subprocess.Result
        do {
            finished = try subprocess.run()
        } catch {
            throw Failure(step: step, command: [executable] + arguments, status: nil, stderr: "could not start: \(error)")
        }
        if finished.timedOut {
            throw Failure(step: step, command: [executable] + arguments, status: nil, stderr: "killed after \(timeout)")
        }
        return Result(status: finished.status, stdout: finished.stdout, stderr: finished.stderrText)
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

    /// `name` when it holds a slash, else found in `PATH`, `/usr/sbin` or `/sbin`.
    static func resolve(_ name: String) -> String {
        Subprocess.resolve(name)
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
