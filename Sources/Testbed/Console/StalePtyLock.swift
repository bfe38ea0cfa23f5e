import Foundation

/// libvirt's lock on a pty (`/var/lock/LCK.._pts_N`), read from its error
/// message: "Requested device '/dev/pts/1' is locked by lock file
/// '/var/lock/LCK.._pts_1' held by process 22495".
///
/// Stale when the holding process keeps no descriptor on that pty: its
/// console stream is gone (a process that did not close it, or leaked it),
/// and with it any reason for the lock.
struct StalePtyLock: Equatable {
    var device: String
    var lockFile: String
    var pid: Int32

    init(device: String, lockFile: String, pid: Int32) {
        self.device = device
        self.lockFile = lockFile
        self.pid = pid
    }

    init?(message: String) {
        let quoted = message.split(separator: "'", omittingEmptySubsequences: false).map(String.init)
        guard quoted.count >= 5, quoted[1].hasPrefix("/dev/pts/"), quoted[3].hasPrefix("/var/lock/"),
              let pidText = quoted[4].split(separator: " ").last(where: { Int32($0) != nil }), let pid = Int32(pidText) else { return nil }
        device = quoted[1]
        lockFile = quoted[3]
        self.pid = pid
    }

    var isStale: Bool {
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { return true }
        return !fds.contains { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) == device }
    }
}
