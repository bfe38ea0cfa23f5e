import Foundation
import HostProcess
import Synchronization
import Testbed
import TestbedTesting
import Testing

/// A `libvirtd` of the test's own, reached through libvirt's remote protocol
/// on a unix socket: `qemu+unix:///system?socket=/tmp/nodeos-libvirtd-PID-N/libvirt-sock`.
///
/// It runs in a private mount namespace (`unshare --mount --propagation
/// private`) where tmpfs folders cover `/run/libvirt`, `/var/lib/libvirt`,
/// `/var/cache/libvirt` and `/var/log/libvirt`, and the generated config
/// folder covers `/etc/libvirt`: nothing of the host's libvirt state is read
/// or written, and everything the daemon made disappears with the namespace.
/// QEMU's output goes to files (`stdio_handler = "file"`), so no `virtlogd`
/// is needed.
///
/// `/dev/kvm` is covered by an empty read-only file in that namespace. On this
/// nested host `/dev/kvm` exists but guests hang, so machines run under TCG;
/// without the cover, libvirtd's check `access("/dev/kvm", R_OK|W_OK)` passes
/// and decides between probed capabilities with and without KVM. With it the
/// check fails (EROFS) and the capabilities probed without KVM stay valid.
///
/// ```swift
/// let daemon = try PrivateLibvirtd.start()
/// defer { daemon.stop() }
/// let testbed = try await Testbed(uri: daemon.uri)
/// ```
final class PrivateLibvirtd: Sendable {
    /// The folder holding the socket, the config, the log and the pid file.
    let directory: String
    /// The URI to connect to.
    let uri: String
    /// The process id of the shell that set up the namespace and watches over
    /// the daemon (`unshare` execs into it); libvirtd is its child.
    let pid: Int32
    /// The daemon's mount namespace (`/proc/PID/ns/mnt`), to find every process it started.
    let namespace: String
    private let stopped = Mutex(false)

    static let libvirtd = "/usr/sbin/libvirtd"
    static let unshare = "/usr/bin/unshare"

    /// Why a daemon cannot be started here, or `nil` when it can.
    static var unavailableReason: String? {
        if getuid() != 0 { return "a private libvirtd needs root (mount namespaces, tmpfs mounts); run as root" }
        for tool in [libvirtd, unshare] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is not installed (Debian: apt-get install libvirt-daemon libvirt-daemon-driver-qemu util-linux)"
        }
        return nil
    }

    /// The message a skipped test carries.
    static var skipMessage: String {
        "skipped: \(unavailableReason ?? "") (with CI=true this fails instead)"
    }

    private init(directory: String, pid: Int32, namespace: String) {
        self.directory = directory
        self.pid = pid
        self.namespace = namespace
        uri = "qemu+unix:///system?socket=\(directory)/libvirt-sock"
    }

    /// The `libvirtd.conf` the daemon reads: a socket in `directory`, no authentication.
    static func libvirtdConf(directory: String) -> String {
        """
        # Written by the NodeOS testbed's tests for a private libvirtd.
        unix_sock_dir = "\(directory)"
        unix_sock_group = "root"
        unix_sock_ro_perms = "0700"
        unix_sock_rw_perms = "0700"
        unix_sock_admin_perms = "0700"
        auth_unix_ro = "none"
        auth_unix_rw = "none"
        log_outputs = "3:file:\(directory)/libvirtd.log"

        """
    }

    /// Starts a daemon and waits until it answers on its socket.
    ///
    /// - Parameter coverKVM: cover `/dev/kvm` in the daemon's namespace (see
    ///   the type's documentation); `NODEOS_TEST_LIBVIRTD_KVM=1` turns it off,
    ///   to measure the difference.
    static func start(coverKVM: Bool = ProcessInfo.processInfo.environment["NODEOS_TEST_LIBVIRTD_KVM"] != "1") throws -> PrivateLibvirtd {
        sweepLeftovers()
        let fm = FileManager.default
        var n = 0
        var directory: String
        repeat {
            directory = "/tmp/nodeos-libvirtd-\(getpid())-\(n)"
            n += 1
        } while fm.fileExists(atPath: directory)
        try fm.createDirectory(atPath: directory + "/etc", withIntermediateDirectories: true)
        do {
            try libvirtdConf(directory: directory).write(toFile: directory + "/etc/libvirtd.conf", atomically: true, encoding: .utf8)
            try EmbedRoot.qemuConf.write(toFile: directory + "/etc/qemu.conf", atomically: true, encoding: .utf8)
            try Data().write(to: URL(fileURLWithPath: directory + "/kvm-cover"))
            try "\(getpid()) \(processStartTime(getpid()) ?? 0)\n".write(toFile: directory + "/owner", atomically: true, encoding: .utf8)
        } catch {
            try? fm.removeItem(atPath: directory)
            throw error
        }
        // Mounts made here live only in the new namespace. The shell stays as a
        // watchdog: when this test process dies without stopping the daemon (a
        // crash), it stops libvirtd and kills whatever else runs in the namespace
        // (QEMU outlives libvirtd otherwise), so the mounts go with them.
        var script = "set -e\n"
        for path in ["/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt"] {
            script += "mkdir -p \(path) && mount -t tmpfs -o mode=0755 nodeos-libvirtd \(path)\n"
        }
        script += "mkdir -p /etc/libvirt && mount --bind \(directory)/etc /etc/libvirt\n"
        script += "ip link set lo up 2>/dev/null || true\n"
        if coverKVM { script += "if [ -e /dev/kvm ]; then mount -o bind,ro \(directory)/kvm-cover /dev/kvm; fi\n" }
        script += """
            \(libvirtd) -f \(directory)/etc/libvirtd.conf -p \(directory)/libvirtd.pid &
            daemon=$!
            namespace=$(readlink /proc/$$/ns/mnt)
            while kill -0 \(getpid()) 2>/dev/null && kill -0 $daemon 2>/dev/null; do sleep 1; done
            kill -TERM $daemon 2>/dev/null || true
            sleep 1
            for entry in /proc/[0-9]*; do
              other=${entry#/proc/}
              if [ "$other" != "$$" ] && [ "$(readlink $entry/ns/mnt 2>/dev/null)" = "$namespace" ]; then kill -KILL $other 2>/dev/null || true; fi
            done
            wait
            if ! kill -0 \(getpid()) 2>/dev/null; then umount /dev/kvm 2>/dev/null || true; rm -rf \(directory); fi

            """

        // Its own process group; both outputs to daemon.out. The handle reaps
        // the shell on a thread of its own once it exits.
        let process: Subprocess.Running
        do {
            // Its own network namespace too: its loopback is not ours, as on a
            // remote host, so a guest reaches this host's registry only through libvirt.
            process = try Subprocess(unshare, ["--mount", "--net", "--propagation", "private", "--", "/bin/sh", "-c", script],
                                     environment: cleanEnvironment, standardOutput: .file(directory + "/daemon.out"),
                                     standardError: .standardOutput).spawn()
        } catch {
            try? fm.removeItem(atPath: directory)
            throw error
        }
        let pid = process.pid
        let daemon = PrivateLibvirtd(directory: directory, pid: pid, namespace: "")
        // Until it answers: the socket exists and a client gets a version.
        let deadline = ContinuousClock.now + .seconds(30)
        var namespace = ""
        while ContinuousClock.now < deadline {
            if let termination = process.termination {
                let log = (try? String(contentsOfFile: directory + "/daemon.out", encoding: .utf8)) ?? ""
                daemon.stop()
                throw PrivateLibvirtdError(message: "libvirtd exited with status \(termination.status) before it answered: \(log)")
            }
            if namespace.isEmpty, let link = try? fm.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt"),
               link != (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt")) {
                namespace = link
            }
            if !namespace.isEmpty, fm.fileExists(atPath: directory + "/libvirt-sock"),
               (try? virsh(["-c", daemon.uri, "version"], timeout: 10).status) == 0 {
                let ready = PrivateLibvirtd(directory: directory, pid: pid, namespace: namespace)
                Testbed.onExit { ready.stop() }
                return ready
            }
            usleep(100_000)
        }
        let ready = PrivateLibvirtd(directory: directory, pid: pid, namespace: namespace)
        ready.stop()
        throw PrivateLibvirtdError(message: "libvirtd did not answer on \(directory)/libvirt-sock within 30 s")
    }

    /// Destroys what still runs on the daemon, stops it, kills whatever else
    /// lives in its namespace and removes its folder. Safe to call more than once.
    func stop() {
        guard stopped.withLock({ stopped in defer { stopped = true }; return !stopped }) else { return }
        if let names = try? Self.virsh(["-c", uri, "list", "--name"], timeout: 15), names.status == 0 {
            for name in names.stdout.split(separator: "\n") where !name.isEmpty {
                _ = try? Self.virsh(["-c", uri, "destroy", String(name)], timeout: 15)
            }
        }
        // libvirtd first (its watchdog shell then kills the rest of the namespace and exits).
        let pidText = (try? String(contentsOfFile: directory + "/libvirtd.pid", encoding: .utf8)) ?? ""
        if let daemon = Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)), daemon > 0,
           processes().contains(daemon) {
            kill(daemon, SIGTERM)
            if !Self.waitForExit(daemon, seconds: 15) { kill(daemon, SIGKILL) }
        }
        if !Self.waitForExit(pid, seconds: 10) { kill(pid, SIGKILL) }
        for leftover in processes() { kill(leftover, SIGKILL) }
        for leftover in processes() { _ = Self.waitForExit(leftover, seconds: 5) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Processes of this daemon: every process in its mount namespace, and any
    /// whose command line names its folder.
    func processes() -> [Int32] {
        let fm = FileManager.default
        let me = getpid()
        return ((try? fm.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { other in
            guard other != me else { return false }
            if !namespace.isEmpty, (try? fm.destinationOfSymbolicLink(atPath: "/proc/\(other)/ns/mnt")) == namespace { return true }
            guard let data = fm.contents(atPath: "/proc/\(other)/cmdline") else { return false }
            return String(decoding: data.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self).contains(directory + "/")
        }
    }

    /// What libvirtd logged (warnings and errors).
    var log: String { (try? String(contentsOfFile: directory + "/libvirtd.log", encoding: .utf8)) ?? "" }

    /// Waits for `pid` to go away (a `Subprocess` reaps its own children).
    static func waitForExit(_ pid: Int32, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if kill(pid, 0) != 0 && errno == ESRCH { return true }
            // A zombie that is not our child counts as gone.
            if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
               let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { return true }
            usleep(50_000)
        }
        return false
    }

    /// Removes daemons and folders of earlier test processes that died without stopping theirs.
    static func sweepLeftovers() {
        let fm = FileManager.default
        for entry in (try? fm.contentsOfDirectory(atPath: "/tmp")) ?? [] where entry.hasPrefix("nodeos-libvirtd-") {
            let directory = "/tmp/" + entry
            let owner = ((try? String(contentsOfFile: directory + "/owner", encoding: .utf8)) ?? "")
                .split(whereSeparator: \.isWhitespace).compactMap { Int64($0) }
            if owner.count == 2, processStartTime(Int32(owner[0])) == owner[1] { continue } // its owner still runs
            let pidText = (try? String(contentsOfFile: directory + "/libvirtd.pid", encoding: .utf8)) ?? ""
            var namespace = ""
            if let pid = Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)),
               let link = try? fm.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt"),
               link != (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt")) {
                namespace = link
            }
            PrivateLibvirtd(directory: directory, pid: -1, namespace: namespace).stopLeftover()
        }
    }

    private func stopLeftover() {
        for process in processes() { kill(process, SIGKILL) }
        for process in processes() { _ = Self.waitForExit(process, seconds: 5) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    struct CommandResult {
        var status: Int32
        var stdout: String
    }

    /// `pgrep -af TEXT`: the processes whose command line contains `text`, one line each.
    static func pgrep(_ text: String) throws -> [String] {
        let result = try Subprocess("/usr/bin/pgrep", ["-af", "--", text], standardError: .discard, timeout: .seconds(30)).run()
        return result.stdoutText.split(separator: "\n").map(String.init)
    }

    /// This process's environment without `LIBVIRT_*` (the testbed points
    /// `LIBVIRT_LOG_OUTPUTS` at its own log, which the daemon must not write to).
    static var cleanEnvironment: [String: String] {
        ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("LIBVIRT_") }
    }

    /// Runs `virsh ARGS`, killed after `timeout` seconds.
    static func virsh(_ arguments: [String], timeout: Double = 60) throws -> CommandResult {
        let result = try Subprocess("/usr/bin/virsh", arguments, environment: cleanEnvironment, standardError: .discard,
                                    timeout: .seconds(timeout)).run()
        return CommandResult(status: result.status, stdout: result.stdoutText)
    }

    /// A process's start time in clock ticks since boot (`/proc/PID/stat` field 22).
    static func processStartTime(_ pid: Int32) -> Int64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? Int64(fields[19]) : nil
    }
}

struct PrivateLibvirtdError: Error, CustomStringConvertible {
    var message: String
    var description: String { "private libvirtd: \(message)" }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test only where a private libvirtd can be started (root,
    /// libvirtd and unshare installed) — or always in CI (`CI=true`), where
    /// not being able to must fail the test.
    static var requiresPrivateLibvirtd: Self {
        .enabled(if: PrivateLibvirtd.unavailableReason == nil || TestbedEnvironment.isCI, Comment(rawValue: PrivateLibvirtd.skipMessage))
    }
}
