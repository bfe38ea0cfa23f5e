import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One program run on the host, the one way the testbed and its tests start
/// processes.
///
/// It is started with `posix_spawn` in a process group of its own, with the
/// signals the testbed handles (INT, TERM, HUP, QUIT, PIPE) back at their
/// defaults and nothing blocked, and with no file descriptor of this process
/// beyond its standard input, output and error. Its output is read on a thread
/// of its own as it comes, so a chatty program cannot block on a full pipe.
///
/// At the deadline (`timeout`) the whole group gets SIGTERM, and SIGKILL after
/// `grace`. When the program exits, what is left of its group is killed
/// (`killsGroupOnExit`): a grandchild cannot hold the output pipes open, so
/// the readers see the end of them.
///
/// ```swift
/// let result = try Subprocess("tar", ["-tzf", path], timeout: .seconds(30)).run()
/// let handle = try Subprocess("/usr/sbin/libvirtd", [...], standardOutput: .file(log)).spawn()
/// ```
///
/// A process in a group of its own is not in the terminal's foreground group:
/// Ctrl-C does not reach it (the testbed relays signals itself), and one that
/// reads an inherited terminal is stopped (SIGTTIN). Stdin is `/dev/null`
/// unless asked otherwise.
public struct Subprocess: Sendable {
    /// What the program reads.
    public enum Input: Sendable {
        /// `/dev/null`.
        case null
        /// This process's standard input.
        case inherit
        /// These bytes, then the end of input.
        case data(Data)
        /// A descriptor of the caller's (duplicated; the caller keeps and closes it).
        case fileDescriptor(Int32)
        /// A pipe that stays open and empty until `Running.closeStandardInput()`
        /// or the program's end: it never sees the end of its input before.
        case keptOpen
    }

    /// Where the program's standard output or error goes.
    public enum Output: Sendable, Equatable {
        /// A pipe read to the end: `Result.stdout`/`stderr`, and `Running.standardOutputSoFar` while it runs.
        case collect
        /// This process's own descriptor (1 or 2).
        case inherit
        /// `/dev/null`.
        case discard
        /// A file, created (mode 0644) if missing, truncated unless `append`.
        case file(String, append: Bool = false)
        /// A descriptor of the caller's (duplicated; the caller keeps and closes it).
        case fileDescriptor(Int32)
        /// Standard error only: wherever standard output goes (`2>&1`).
        case standardOutput
    }

    /// How the program ended.
    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        /// The exit status, or the signal's number for a program killed by one
        /// (what Foundation's `Process.terminationStatus` reports).
        public var status: Int32 {
            switch self {
            case .exited(let code): return code
            case .signalled(let signal): return signal
            }
        }

        public var description: String {
            switch self {
            case .exited(let code): return "exit status \(code)"
            case .signalled(let signal): return "signal \(signal)"
            }
        }
    }

    /// A finished program: how it ended and what it printed.
    public struct Result: Sendable {
        public var pid: Int32
        public var termination: Termination
        /// See `Termination.status`.
        public var status: Int32 { termination.status }
        /// Standard output (with standard error when that went to `.standardOutput`); empty unless collected.
        public var stdout: Data
        /// Standard error; empty unless collected.
        public var stderr: Data
        /// Whether it ran into its deadline (and its group was stopped).
        public var timedOut: Bool
        /// From its start until it was reaped.
        public var duration: Duration
        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    }

    /// A path, or a name looked up in `PATH` (the child's, when `environment` sets one), then `/usr/sbin` and `/sbin`.
    public var executable: String
    public var arguments: [String]
    /// The child's whole environment; `nil`: this process's.
    public var environment: [String: String]?
    /// The child's working directory; `nil`: this process's.
    public var currentDirectory: String?
    public var standardInput: Input
    public var standardOutput: Output
    public var standardError: Output
    /// The deadline, from the start, on a monotonic clock; `nil`: none.
    public var timeout: Duration?
    /// How long the group has between SIGTERM and SIGKILL.
    public var grace: Duration
    /// Kill what is left of the program's process group when it exits.
    public var killsGroupOnExit: Bool
    /// How long output is still read after the program exited and its group
    /// was killed, for a descendant that left the group and holds the pipes;
    /// what it writes later is lost.
    public var drainAfterExit: Duration

    public init(_ executable: String, _ arguments: [String] = [], environment: [String: String]? = nil,
                currentDirectory: String? = nil, standardInput: Input = .null, standardOutput: Output = .collect,
                standardError: Output = .collect, timeout: Duration? = nil, grace: Duration = .seconds(2),
                killsGroupOnExit: Bool = true) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.currentDirectory = currentDirectory
        self.standardInput = standardInput
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.timeout = timeout
        self.grace = grace
        self.killsGroupOnExit = killsGroupOnExit
        drainAfterExit = .seconds(1)
    }

    /// Runs the program to its end, blocking this thread; throws only when it
    /// cannot start (a program past its deadline returns with `timedOut`).
    public func run() throws -> Result {
        try spawn().wait()
    }

    /// Runs the program to its end without holding a thread of the cooperative
    /// pool; cancelling the task stops the program's group (SIGTERM, SIGKILL after `grace`).
    public func run() async throws -> Result {
        let running = try spawn()
        return await withTaskCancellationHandler {
            await running.wait()
        } onCancel: {
            running.stop()
        }
    }

    /// Starts the program and returns at once.
    public func spawn() throws -> Running {
        let path = Subprocess.resolve(executable, searchPath: environment?["PATH"])
        var childEnds: [Int32] = []  // closed here once the child has them, whatever happens
        var parentEnds: [Int32] = []  // closed here only when starting fails
        defer { for fd in childEnds { close(fd) } }
        var started = false
        defer { if !started { for fd in parentEnds { close(fd) } } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        func check(_ rc: Int32, _ what: String) throws {
            if rc != 0 { throw SubprocessError(executable: path, operation: what, code: rc) }
        }
        /// A pipe whose both ends close on exec; the parent's end does not block.
        func pipe(parentReads: Bool) throws -> (parent: Int32, child: Int32) {
            var fds: [Int32] = [-1, -1]
            guard SpawnExtensions.pipeClosingOnExec(&fds) == 0 else { throw SubprocessError(executable: path, operation: "pipe", code: errno) }
            let (parent, child) = parentReads ? (fds[0], fds[1]) : (fds[1], fds[0])
            parentEnds.append(parent)
            childEnds.append(child)
            _ = fcntl(parent, F_SETFL, fcntl(parent, F_GETFL) | O_NONBLOCK)
            return (parent, child)
        }

        // Standard input.
        var inputData: (fd: Int32, data: Data)?
        var keptInput: Int32?
        switch standardInput {
        case .null: try check(posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0), "opening /dev/null")
        case .inherit: break
        case .fileDescriptor(let fd): try check(posix_spawn_file_actions_adddup2(&actions, fd, 0), "dup2")
        case .data(let data):
            let ends = try pipe(parentReads: false)
            try check(posix_spawn_file_actions_adddup2(&actions, ends.child, 0), "dup2")
            inputData = (ends.parent, data)
        case .keptOpen:
            let ends = try pipe(parentReads: false)
            try check(posix_spawn_file_actions_adddup2(&actions, ends.child, 0), "dup2")
            keptInput = ends.parent
        }
        // Standard output and error.
        var collected: [(fd: Int32, isError: Bool)] = []
        for (target, output) in [(Int32(1), standardOutput), (Int32(2), standardError)] {
            switch output {
            case .collect:
                let ends = try pipe(parentReads: true)
                try check(posix_spawn_file_actions_adddup2(&actions, ends.child, target), "dup2")
                collected.append((ends.parent, target == 2))
            case .inherit: break
            case .discard:
                try check(posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0), "opening /dev/null")
            case .file(let file, let append):
                let flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC)
                try check(posix_spawn_file_actions_addopen(&actions, target, file, flags, 0o644), "opening \(file)")
            case .fileDescriptor(let fd):
                try check(posix_spawn_file_actions_adddup2(&actions, fd, target), "dup2")
            case .standardOutput:
                if target == 2 { try check(posix_spawn_file_actions_adddup2(&actions, 1, 2), "dup2") }
            }
        }
        if let directory = currentDirectory {
            guard let addChdir = SpawnExtensions.addChdir else {
                throw SubprocessError(executable: path, operation: "changing to \(directory) (no posix_spawn_file_actions_addchdir_np)", code: ENOSYS)
            }
            try check(addChdir(&actions, directory), "changing to \(directory)")
        }
        // Nothing else of ours: descriptors other code opened without O_CLOEXEC stay here.
        if let addClosefrom = SpawnExtensions.addClosefrom { try check(addClosefrom(&actions, 3), "closefrom") }

        // Its own process group, the testbed's signals at their defaults, nothing blocked.
        try check(posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)), "spawn flags")
        try check(posix_spawnattr_setpgroup(&attributes, 0), "spawn process group")
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in Subprocess.defaultedSignals { sigaddset(&defaults, signal) }
        try check(posix_spawnattr_setsigdefault(&attributes, &defaults), "spawn signal defaults")
        var mask = sigset_t()
        sigemptyset(&mask)
        try check(posix_spawnattr_setsigmask(&attributes, &mask), "spawn signal mask")

        let environment = (self.environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        let wake = try pipe(parentReads: true)  // both ends are ours: the child never sees them
        childEnds.removeLast()
        parentEnds.append(wake.child)
        _ = fcntl(wake.child, F_SETFL, fcntl(wake.child, F_GETFL) | O_NONBLOCK)

        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        if rc != 0 {
            throw SubprocessError(executable: path, operation: currentDirectory.map { "starting it in \($0)" } ?? "starting it", code: rc)
        }
        started = true
        let running = Running(pid: pid, configuration: self, wakeRead: wake.parent, wakeWrite: wake.child, keptInput: keptInput)
        running.start(outputs: collected, input: inputData)
        return running
    }

    /// The signals a child gets back at their defaults: those the testbed handles or ignores.
    public static let defaultedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE]

    /// `name` when it holds a slash; else the first executable `DIR/name` for
    /// DIR in `searchPath` (default: this process's `PATH`), `/usr/sbin`,
    /// `/sbin`; else `/usr/bin/name`.
    public static func resolve(_ name: String, searchPath: String? = nil) -> String {
        if name.contains("/") { return name }
        let path = searchPath ?? ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"] {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return "/usr/bin/\(name)"
    }
}

/// A program could not be started.
public struct SubprocessError: Error, CustomStringConvertible, Sendable {
    public var executable: String
    public var operation: String
    /// The `errno` value.
    public var code: Int32
    public var description: String { "cannot start \(executable): \(operation): \(String(cString: strerror(code)))" }
}

/// glibc's `posix_spawn` extensions the Glibc module does not import (2.29+ and 2.34+).
enum SpawnExtensions {
    typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
    typealias AddClosefrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    static let addChdir: AddChdir? = symbol("posix_spawn_file_actions_addchdir_np").map { unsafeBitCast($0, to: AddChdir.self) }
    static let addClosefrom: AddClosefrom? = symbol("posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: AddClosefrom.self) }

    typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
    static let pipe2: Pipe2? = symbol("pipe2").map { unsafeBitCast($0, to: Pipe2.self) }

    /// `pipe2(fds, O_CLOEXEC)`; without `pipe2`, `pipe` then `FD_CLOEXEC`.
    static func pipeClosingOnExec(_ fds: UnsafeMutablePointer<Int32>) -> Int32 {
        if let pipe2 { return pipe2(fds, O_CLOEXEC) }
        guard pipe(fds) == 0 else { return -1 }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return 0
    }

    private static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        guard let handle = dlopen(nil, RTLD_NOW) else { return nil }
        return dlsym(handle, name)
    }
}
