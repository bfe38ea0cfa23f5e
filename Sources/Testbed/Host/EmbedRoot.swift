import Foundation

/// The private directory tree of libvirt's embedded QEMU driver
/// (`qemu:///embed?root=…`), created and swept by the testbed.
///
/// Lives at `/tmp/nodeos/<pid>-<n>` (short: unix socket paths are limited to
/// 108 bytes). An `owner` file records the process id and start time so a
/// later run can tell a dead owner's leftovers from a live neighbour's.
public struct EmbedRoot: Sendable {
    public static let parent = ProcessInfo.processInfo.environment["NODEOS_EMBED_PARENT"] ?? "/tmp/nodeos"
    public let path: String

    /// The connection URI.
    public var uri: String { "qemu:///embed?root=\(path)" }

    /// The `qemu.conf` the embedded driver reads: `$root/etc/qemu.conf`
    /// (checked against libvirt 9.0: the driver's config dir is `$root/etc`).
    public static let qemuConf = """
        # Written by the NodeOS testbed for libvirt's embedded QEMU driver.
        user = "root"
        group = "root"
        stdio_handler = "file"
        remember_owner = 0
        namespaces = [ ]
        cgroup_controllers = [ ]
        security_driver = "none"

        """

    /// Creates a fresh root for this process.
    public static func create() throws -> EmbedRoot {
        guard getpwnam("libvirt-qemu") != nil || getuid() != 0 else {
            throw TestbedError.setup("libvirt's embedded QEMU driver, run as root, needs the system user 'libvirt-qemu', which does not exist: create it with 'useradd --system libvirt-qemu' (the Makefile's setup does this)")
        }
        try securePrivateFolder(parent)
        var n = 0
        var path: String
        repeat {
            path = "\(parent)/\(getpid())-\(n)"
            n += 1
        } while FileManager.default.fileExists(atPath: path)
        try FileManager.default.createDirectory(atPath: "\(path)/etc", withIntermediateDirectories: true)
        try qemuConf.write(toFile: "\(path)/etc/qemu.conf", atomically: true, encoding: .utf8)
        try "\(getpid()) \(ProcessStartTime.of(getpid()) ?? 0)\n".write(toFile: "\(path)/owner", atomically: true, encoding: .utf8)
        return EmbedRoot(path: path)
    }

    /// Makes `path` this user's private folder, or refuses: it holds
    /// root's `qemu.conf` and QEMU's sockets, and in a shared place like /tmp
    /// another local user could have made it (or a symlink by its name) first.
    /// Checked with `lstat`, so a symlink is never followed.
    static func securePrivateFolder(_ path: String) throws {
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw TestbedError.setup("cannot create the embedded driver's folder \(path): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard lstat(path, &info) == 0 else {
            throw TestbedError.setup("cannot inspect the embedded driver's folder \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw TestbedError.setup("\(path) is not a plain folder (a symlink or a file): refusing to keep the embedded driver's configuration and sockets there; remove it or set NODEOS_EMBED_PARENT")
        }
        guard info.st_uid == getuid() else {
            throw TestbedError.setup("\(path) belongs to uid \(info.st_uid), not to this user (uid \(getuid())): someone else could read or change the embedded driver's configuration; remove it or set NODEOS_EMBED_PARENT")
        }
        // Ours, so nobody else could have written into it unless its mode let
        // them; an older testbed made it 0755, which lets nobody write.
        if info.st_mode & 0o022 != 0 {
            throw TestbedError.setup("\(path) is writable by others (mode \(String(info.st_mode & 0o7777, radix: 8))): refusing it; remove it or set NODEOS_EMBED_PARENT")
        }
        if info.st_mode & 0o7777 != 0o700, chmod(path, 0o700) != 0 {
            throw TestbedError.setup("cannot make \(path) private (chmod 0700): \(String(cString: strerror(errno)))")
        }
    }

    /// Removes the tree.
    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// QEMU's log for a domain, written by the embedded driver.
    public func qemuLog(domain: String) -> String { "\(path)/log/qemu/\(domain).log" }

    /// Removes roots whose owning process is gone, killing any QEMU still
    /// running from them. Returns what it swept, for the log.
    @discardableResult
    public static func sweepLeftovers() -> [String] {
        // Nothing in a folder that is not private is ours to judge (create() says why).
        guard (try? securePrivateFolder(parent)) != nil, let entries = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return [] }
        var swept: [String] = []
        for entry in entries {
            let path = "\(parent)/\(entry)"
            if let owner = try? String(contentsOfFile: "\(path)/owner", encoding: .utf8) {
                let fields = owner.split(whereSeparator: \.isWhitespace).compactMap { Int64($0) }
                if fields.count == 2, ProcessStartTime.of(Int32(fields[0])) == fields[1], fields[1] != 0 {
                    continue // its owner still runs
                }
            } else if let pid = Int32(entry.split(separator: "-").first ?? ""), kill(pid, 0) == 0 {
                continue // being created, or not ours to judge
            }
            for pid in processes(mentioning: path + "/") {
                kill(pid, SIGKILL)
                swept.append("killed QEMU \(pid) of \(path)")
            }
            try? FileManager.default.removeItem(atPath: path)
            swept.append("removed \(path)")
        }
        return swept
    }

    /// Process ids whose command line contains `text`.
    public static func processes(mentioning text: String) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        let me = getpid()
        return entries.compactMap(Int32.init).filter { pid in
            guard pid != me, let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let cmdline = String(decoding: data.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
            return cmdline.contains(text)
        }
    }
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat` field 22).
enum ProcessStartTime {
    static func of(_ pid: Int32) -> Int64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); field 22 is at index 19.
        return fields.count > 19 ? Int64(fields[19]) : nil
    }
}

/// How long this process has run, from the kernel's record of its start
/// (`/proc/self/stat`, clock-tick resolution, usually 10 ms).
public enum ProcessAge {
    /// Milliseconds between this process's start and `instant`.
    public static func milliseconds(at instant: ContinuousClock.Instant) -> Double? {
        guard let ticks = ProcessStartTime.of(getpid()),
              let uptimeText = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8),
              let uptime = Double(uptimeText.split(separator: " ").first ?? "") else { return nil }
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        let ageNow = uptime * 1000 - Double(ticks) / hz * 1000
        return ageNow - (ContinuousClock.now - instant).milliseconds
    }
}
