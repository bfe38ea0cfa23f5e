import Foundation
import Libvirt
import Synchronization

/// The process's one embedded-driver root (libvirt refuses a second one in
/// the same process), made on first use after sweeping earlier runs' leftovers.
enum EmbeddedDriver {
    private static let made = Mutex<EmbedRoot?>(nil)

    static func root() throws -> EmbedRoot {
        try made.withLock { made in
            if let made { return made }
            for line in EmbedRoot.sweepLeftovers() { LibvirtLog.append("sweep: \(line)") }
            let root = try EmbedRoot.create()
            QEMUCapabilitiesCache.restore(into: root)
            Cleanup.register(root: root)
            made = root
            return root
        }
    }
}

/// Keeps QEMU's capability probe (libvirt runs QEMU once to learn what it can
/// do, about a second) across runs: each new embedded root starts with the
/// last run's cache. libvirt re-validates it against the QEMU binary itself.
enum QEMUCapabilitiesCache {
    static var directory: String {
        let base = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")
        return base + "/nodeos/qemu-capabilities"
    }

    static func restore(into root: EmbedRoot) {
        let target = root.path + "/cache/qemu/capabilities"
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory), !files.isEmpty else { return }
        try? FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        for file in files {
            try? FileManager.default.copyItem(atPath: directory + "/" + file, toPath: target + "/" + file)
        }
    }

    static func save(from root: EmbedRoot) {
        let source = root.path + "/cache/qemu/capabilities"
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: source), !files.isEmpty else { return }
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for file in files {
            try? FileManager.default.removeItem(atPath: directory + "/" + file)
            try? FileManager.default.copyItem(atPath: source + "/" + file, toPath: directory + "/" + file)
        }
    }
}
