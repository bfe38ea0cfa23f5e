import CLibvirt
import Foundation
import Libvirt
@testable import Testbed
import Testing

@Suite("Error mapping")
struct ErrorMappingTests {
    @Test("libvirt codes map to kinds", arguments: [
        (Int32(VIR_ERR_NO_DOMAIN.rawValue), LibvirtError.Kind.noDomain),
        (Int32(VIR_ERR_OPERATION_INVALID.rawValue), .operationInvalid),
        (Int32(VIR_ERR_NO_SUPPORT.rawValue), .noSupport),
        (Int32(VIR_ERR_SYSTEM_ERROR.rawValue), .systemError),
        (Int32(VIR_ERR_INTERNAL_ERROR.rawValue), .internalError),
        (Int32(9999), .other),
    ])
    func kinds(code: Int32, kind: LibvirtError.Kind) {
        #expect(LibvirtError(operation: "x", code: code, domain: 0, message: "m").kind == kind)
    }

    @Test("a failing call throws what was being done and libvirt's own message, read at once")
    func failingCall() throws {
        LibvirtLog.redirect(to: FileManager.default.temporaryDirectory.appendingPathComponent("libvirt-unit-\(getpid()).log").path)
        let error = #expect(throws: LibvirtError.self) {
            _ = try Connection(uri: "nodeos-no-such-driver:///nothing")
        }
        #expect(error?.operation == "connecting to 'nodeos-no-such-driver:///nothing'")
        #expect(error?.code != 0)
        #expect(error?.message.isEmpty == false)
        #expect(error?.description.hasPrefix("libvirt: connecting to 'nodeos-no-such-driver:///nothing' failed: ") == true)
        // The last error was consumed: the next read finds none.
        #expect(virGetLastError() == nil)
    }

    @Test("a NULL or -1 result throws; others pass through")
    func wrapper() throws {
        #expect(try Libvirt.call("ok") { Int32(3) } == 3)
        #expect(throws: LibvirtError.self) { try Libvirt.call("failing") { Int32(-1) } }
        let missing: OpaquePointer? = nil
        #expect(throws: LibvirtError.self) { _ = try Libvirt.call("null") { missing } }
    }

    @Test("machine errors end with the console tail and the artifacts folder")
    func machineError() {
        let error = MachineError(kind: .timeout, machine: "web", message: "timed out after 1.0 s waiting",
                                 consoleTail: ["line 1", "line 2"], artifacts: "/a/run/web")
        let text = error.description
        #expect(text.hasPrefix("machine 'web': timed out"))
        #expect(text.contains("--- last 2 console lines ---\nline 1\nline 2"))
        #expect(text.hasSuffix("--- artifacts: /a/run/web"))
    }
}

@Suite("Pty lock errors")
struct PtyLockTests {
    @Test("libvirt's lock message is read apart")
    func parses() throws {
        let lock = try #require(StalePtyLock(message: "operation failed: Requested device '/dev/pts/1' is locked by lock file '/var/lock/LCK.._pts_1' held by process 22495"))
        #expect(lock == StalePtyLock(device: "/dev/pts/1", lockFile: "/var/lock/LCK.._pts_1", pid: 22495))
        #expect(StalePtyLock(message: "internal error: something else") == nil)
    }

    @Test("a lock whose holder has the pty open is not stale; a dead holder's is")
    func staleness() {
        let held = open("/dev/null", O_RDONLY)
        defer { close(held) }
        #expect(StalePtyLock(device: "/dev/null", lockFile: "/x", pid: getpid()).isStale == false)
        #expect(StalePtyLock(device: "/dev/pts/999", lockFile: "/x", pid: 999_999_999).isStale)
    }
}
