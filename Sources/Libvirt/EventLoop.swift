import CLibvirt
import Foundation
import Synchronization

/// libvirt's default event loop, registered once per process and run on a
/// thread of its own.
///
/// libvirt needs a running event loop for stream callbacks, lifecycle events
/// and the embedded driver's QEMU monitor. ``ensureRunning()`` registers the
/// default implementation before the first connection and starts
/// `virEventRunDefaultImpl()` forever on a dedicated `Thread`.
public enum EventLoop {
    private static let startedFlag = Atomic<Bool>(false)

    /// Whether libvirt has been initialised in this process.
    public static var hasStarted: Bool { startedFlag.load(ordering: .acquiring) }

    /// `virInitialize()`, once, after the log's `setenv` (never during it).
    /// Reading libvirt's last error before it ran read an uninitialised
    /// thread-local key and crashed in glib now and then, so
    /// ``Libvirt/call(_:_:)`` makes sure of it too.
    static let libraryInitialised: Bool = {
        LibvirtLog.synchronise { startedFlag.store(true, ordering: .releasing) }
        return virInitialize() == 0
    }()

    private static let started: Result<Void, LibvirtError> = {
        do throws(LibvirtError) {
            guard libraryInitialised else {
                return .failure(LibvirtError(operation: "initialising libvirt", code: 0, domain: 0, message: "virInitialize failed"))
            }
            try Libvirt.call("registering libvirt's default event loop") { virEventRegisterDefaultImpl() }
        } catch {
            return .failure(error)
        }
        let thread = Thread {
            while true {
                if virEventRunDefaultImpl() < 0 {
                    // The loop reports its own errors through the error handler; keep running.
                    virResetLastError()
                }
            }
        }
        thread.name = "libvirt-event-loop"
        thread.stackSize = 1 << 20
        thread.start()
        return .success(())
    }()

    /// Registers and starts the event loop if it is not running yet.
    public static func ensureRunning() throws(LibvirtError) {
        try started.get()
    }
}

/// Where libvirt's own messages go: a file, never the user's terminal.
///
/// Call ``redirect(to:)`` before the first connection: it sets
/// `LIBVIRT_LOG_OUTPUTS` (read once when libvirt initialises) and installs an
/// error handler that appends each error to the same file instead of printing it.
public enum LibvirtLog {
    private static let path = Mutex<String?>(nil)

    /// Sends libvirt's log (warnings and errors) to `file`.
    ///
    /// libvirt reads `LIBVIRT_LOG_OUTPUTS` once, when it initialises, and
    /// `setenv` is unsafe while other threads (libvirt's, glib's) read the
    /// environment: so only the first call, before libvirt starts, sets it.
    /// Later calls move only the testbed's own error lines to `file`.
    public static func redirect(to file: String) {
        _ = FileManager.default.createFile(atPath: file, contents: nil)
        // Under the lock, which libvirt's initialisation also takes first
        // (see `EventLoop`), so no libvirt thread reads the environment meanwhile.
        let first = path.withLock { current in
            defer { current = file }
            guard current == nil else { return false }
            if !EventLoop.hasStarted {
                // NODEOS_LIBVIRT_DEBUG=1 logs everything (level 1) there instead: slow, for diagnosis.
                let debug = ProcessInfo.processInfo.environment["NODEOS_LIBVIRT_DEBUG"] == "1"
                setenv("LIBVIRT_LOG_OUTPUTS", "\(debug ? 1 : 3):file:\(file)", 1)
                if !debug { setenv("LIBVIRT_LOG_FILTERS", "", 1) }
            }
            return true
        }
        guard first else { return }
        virSetErrorFunc(nil) { _, error in
            guard let error else { return }
            let message = error.pointee.message.map { String(cString: $0) } ?? "(no message)"
            LibvirtLog.append("error: code \(error.pointee.code) domain \(error.pointee.domain): \(message)")
        }
    }

    /// Runs `body` under the log's lock (libvirt's initialisation uses it to
    /// stay clear of ``redirect(to:)``'s `setenv`).
    static func synchronise(_ body: () -> Void) {
        path.withLock { _ in body() }
    }

    /// The file libvirt's messages go to, if redirected.
    public static var file: String? { path.withLock { $0 } }

    /// Appends one line, stamped with the wall-clock time, to the log file.
    public static func append(_ line: String) {
        path.withLock { file in
            guard let file, let handle = FileHandle(forWritingAtPath: file) else { return }
            defer { try? handle.close() }
            _ = try? handle.seekToEnd()
            let stamp = ISO8601DateFormatter().string(from: Date())
            try? handle.write(contentsOf: Data("\(stamp) testbed: \(line)\n".utf8))
        }
    }
}

/// Runs blocking libvirt calls off Swift's cooperative thread pool.
///
/// libvirt calls block (QEMU monitor round trips, process spawns), so they run
/// on a dedicated concurrent dispatch queue and are bridged back with a
/// continuation, as swift-nio's `NIOThreadPool` does for file I/O.
public enum Blocking {
    private static let queue = DispatchQueue(label: "org.nodeos.testbed.libvirt", attributes: .concurrent)

    /// Runs `body` on the libvirt queue and returns its result.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try body() })
            }
        }
    }
}
