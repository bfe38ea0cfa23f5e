import Foundation
import HostProcess
import Testbed
import Testing

/// Where this package lives, to find `build/image` from any working directory.
private let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Test-time facts: is there an image, are we in CI.
public enum TestbedEnvironment {
    /// `CI=true`: a missing image is a failure, not a skip.
    public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// The image folder tests use.
    public static var imageDirectory: URL { NodeOSImage.defaultDirectory(packageRoot: packageRoot) }

    /// The built `testbed` binary: `$TESTBED_BINARY`, else beside the test
    /// bundle, else `.build/debug/testbed`.
    public static var testbedBinary: URL {
        if let env = ProcessInfo.processInfo.environment["TESTBED_BINARY"], !env.isEmpty { return URL(fileURLWithPath: env) }
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("testbed")
        if FileManager.default.isExecutableFile(atPath: besideTests.path) { return besideTests }
        return packageRoot.appendingPathComponent(".build/debug/testbed")
    }

    /// Whether `make image` has produced an image.
    public static var imageExists: Bool {
        FileManager.default.fileExists(atPath: imageDirectory.appendingPathComponent("manifest.json").path)
    }

    /// The message a skipped test carries.
    public static var skipMessage: String {
        "no NodeOS image at \(imageDirectory.path): build it with '\(NodeOSImage.buildCommand)' (in CI, CI=true, this fails instead)"
    }

    /// Loads the image, or skips the current test (outside CI) / fails it (in CI).
    public static func requireImage(sourceLocation: SourceLocation = #_sourceLocation) throws -> NodeOSImage {
        if !imageExists && !isCI {
            try Test.cancel(Comment(rawValue: skipMessage), sourceLocation: sourceLocation)
        }
        return try NodeOSImage(directory: imageDirectory)
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test only where a NodeOS image exists — or always in CI
    /// (`CI=true`), where a missing image must fail the test.
    ///
    /// ```swift
    /// @Test(.requiresNodeOSImage) func boots() async throws { … }
    /// ```
    public static var requiresNodeOSImage: Self {
        .enabled(if: TestbedEnvironment.imageExists || TestbedEnvironment.isCI,
                 Comment(rawValue: TestbedEnvironment.skipMessage))
    }
}

/// Boots a machine for the duration of `body`, then tears it down on every
/// exit path (destroying it if `body` left it running) and keeps its artifacts.
///
/// ```swift
/// @Test func nodeRuns() async throws {
///     try await withMachine { machine in
///         #expect(try await machine.succeed("node -p 1+1") == "2\n")
///     }
/// }
/// ```
///
/// - Parameters:
///   - name: the machine's name (default: from the current test's name).
///   - configure: adjusts the spec (memory, kernel parameters, disks, checks).
///   - waitForAgent: wait for the agent before `body` runs (default `true`).
///   - checkProblems: record an issue when a default check fired (a kernel
///     warning, an uncaught exception in init, …) even if `body` passed.
/// - Without an image the test is skipped with the command that builds it;
///   with `CI=true` it fails instead.
public func withMachine<T: Sendable>(
    named name: String? = nil,
    _ configure: (inout MachineSpec) -> Void = { _ in },
    waitForAgent: Bool = true,
    checkProblems: Bool = true,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (Machine) async throws -> T
) async throws -> T {
    let image = try TestbedEnvironment.requireImage(sourceLocation: sourceLocation)
    let testbed = try await Testbed.shared()
    var spec = MachineSpec(name: name ?? defaultMachineName(), image: image)
    configure(&spec)
    return try await Machine.with(spec, in: testbed, waitForAgent: waitForAgent) { machine in
        let result = try await body(machine)
        let problems = await machine.problems
        if checkProblems, !problems.isEmpty {
            Issue.record(Comment(rawValue: "machine '\(machine.name)' showed trouble on its console:\n" + problems.joined(separator: "\n")
                + "\n--- artifacts: \(machine.artifacts.path)"), sourceLocation: sourceLocation)
        }
        return result
    }
}

/// A machine name from the running test: letters, digits and dashes, at most 24.
func defaultMachineName() -> String {
    let raw = Test.current?.name ?? "nodeos"
    let base = raw.split(separator: "(").first.map(String.init) ?? raw
    let cleaned = String(base.map { $0.isLetter || $0.isNumber ? $0 : "-" }.prefix(24))
    return cleaned.isEmpty ? "nodeos" : cleaned
}

/// How a finished `testbed` command exited and what it printed.
public struct TestbedCommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

extension TestbedEnvironment {
    /// The environment a `testbed` run in `directory` gets: this process's,
    /// with its artifacts under `directory` and the test image.
    static func testbedEnvironment(in directory: URL) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["NODEOS_ARTIFACTS"] = directory.appendingPathComponent("artifacts").path
        environment["NODEOS_IMAGE"] = imageDirectory.path
        return environment
    }

    /// A `testbed ARGS` program, not started: it runs in `directory` (in a
    /// process group of its own), keeps its artifacts under it and boots the
    /// test image; stdin is empty and both outputs are collected. Its group is
    /// not killed when it exits (`killsGroupOnExit` is off), so a test that
    /// looks for what the testbed left running still finds it.
    ///
    /// - Parameter underTerminal: run it in a pseudo-terminal of its own
    ///   (util-linux `script`), as a person's shell would: the started program
    ///   is then `script`, whose child is the testbed; killing `script` closes
    ///   the terminal, and the kernel hangs up on the testbed. Its output, both
    ///   streams, comes as standard output.
    public static func testbedSubprocess(_ arguments: [String], in directory: URL, underTerminal: Bool = false,
                                         timeout: Duration? = nil) -> Subprocess {
        var subprocess = Subprocess(testbedBinary.path, arguments, environment: testbedEnvironment(in: directory),
                                    currentDirectory: directory.path, timeout: timeout, killsGroupOnExit: false)
        if underTerminal {
            let command = ([testbedBinary.path] + arguments).map { "'\($0)'" }.joined(separator: " ")
            subprocess.executable = "/usr/bin/script"
            subprocess.arguments = ["-qfec", "exec \(command)", "/dev/null"]
            subprocess.standardError = .standardOutput
        }
        return subprocess
    }

    /// A `testbed ARGS` process, not started, as `testbedSubprocess` describes,
    /// for callers that still drive a Foundation `Process` (new code: `testbedSubprocess`).
    public static func testbedProcess(_ arguments: [String], in directory: URL) -> Process {
        let process = Process()
        process.executableURL = testbedBinary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = testbedEnvironment(in: directory)
        process.standardInput = FileHandle.nullDevice
        return process
    }

    /// Runs `testbed ARGS` in `directory` to the end (its process group is
    /// stopped at `timeout`, if given); returns its status and both outputs.
    public static func runTestbed(_ arguments: [String], in directory: URL, timeout: Duration? = nil) throws -> TestbedCommandResult {
        let result = try testbedSubprocess(arguments, in: directory, timeout: timeout).run()
        return TestbedCommandResult(status: result.status, stdout: result.stdoutText, stderr: result.stderrText)
    }
}
