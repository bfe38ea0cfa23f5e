import Foundation
@testable import Testbed
import Testing

/// Domain XML generation, pinned by golden files in `Golden/`.
/// After an intended change, `UPDATE_GOLDEN=1 swift test --filter DomainXML`
/// rewrites them and fails every test it rewrote (review `git diff`, then run
/// again without it); with `CI=true` it is refused and nothing is written.
@Suite("Domain XML")
struct DomainXMLTests {
    static let goldenSource = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    /// Whether `UPDATE_GOLDEN` asks for the golden files to be rewritten (any value but empty or 0).
    static var updateRequested: Bool {
        let value = ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] ?? ""
        return !value.isEmpty && value != "0"
    }

    /// CI: `CI=true` as the rest of the tests read it, or any other value CI systems set (but not `false`/`0`).
    static var inCI: Bool {
        let value = ProcessInfo.processInfo.environment["CI"] ?? ""
        return !value.isEmpty && value != "0" && value.lowercased() != "false"
    }

    func assertGolden(_ name: String, _ actual: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        if Self.updateRequested {
            // Never a pass: a rewritten golden file proves nothing until a person has read it.
            if Self.inCI {
                Issue.record("UPDATE_GOLDEN is refused in CI (CI=\(ProcessInfo.processInfo.environment["CI"] ?? "")): golden files are rewritten locally and reviewed; Golden/\(name) was not written",
                             sourceLocation: sourceLocation)
                return
            }
            let target = Self.goldenSource.appendingPathComponent(name)
            let before = try? String(contentsOf: target, encoding: .utf8)
            try actual.write(to: target, atomically: true, encoding: .utf8)
            Issue.record("UPDATE_GOLDEN: rewrote \(target.path)\(before == actual ? " (unchanged)" : "") — review it (git diff), then run the test again without UPDATE_GOLDEN",
                         sourceLocation: sourceLocation)
            return
        }
        let url = try #require(Bundle.module.url(forResource: "Golden/" + name, withExtension: nil), "missing golden file \(name)")
        let expected = try String(contentsOf: url, encoding: .utf8)
        #expect(actual == expected, "domain XML differs from Golden/\(name) (after an intended change: UPDATE_GOLDEN=1, then review)", sourceLocation: sourceLocation)
    }

    @Test("a minimal TCG machine")
    func minimal() throws {
        let spec = DomainSpec(
            name: "nodeos", kernel: "/img/bzImage", commandLine: "console=ttyS0 root=/dev/vda ro",
            rootfs: "/img/rootfs.erofs", network: nil)
        try assertGolden("minimal.xml", spec.xml)
    }

    @Test("a KVM machine with home volumes, a config volume, a captured NIC and qboot")
    func full() throws {
        let spec = DomainSpec(
            name: "web-1", accelerator: .kvm, memoryMiB: 512, vcpus: 2,
            kernel: "/img/bzImage", commandLine: "console=ttyS0 nodeos.hostname=web & <more>",
            rootfs: "/img/rootfs.erofs",
            disks: [
                .init(path: "/art/home-alice.ext4", serial: "home-alice"),
                .init(path: "/art/config.json", serial: "nodeos-config", readOnly: true),
            ],
            network: .init(capturePath: "/art/capture.pcap"), balloonStatsPeriod: 2, firmware: "/usr/share/qemu/qboot.rom")
        try assertGolden("full.xml", spec.xml)
    }

    @Test("no agent channel, no rng, no balloon")
    func bare() throws {
        let spec = DomainSpec(
            name: "bare", kernel: "/k", commandLine: "", rootfs: "/r", network: .init(),
            agentChannel: false, rng: false, balloonStatsPeriod: nil)
        try assertGolden("bare.xml", spec.xml)
    }

    @Test("disk names follow the kernel's vda, vdb, …, vdz, vdaa order", arguments: [
        (0, "vda"), (1, "vdb"), (25, "vdz"), (26, "vdaa"), (27, "vdab"),
    ])
    func diskNames(index: Int, name: String) {
        #expect(DomainSpec.diskName(index) == name)
    }

    @Test("a machine spec puts the image's command line first and the rootfs as the first disk")
    func machineSpec() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nodeos-image-\(getpid())-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("k".utf8).write(to: dir.appendingPathComponent("bzImage"))
        try Data("r".utf8).write(to: dir.appendingPathComponent("rootfs.erofs"))
        try "console=ttyS0 quiet\n".write(to: dir.appendingPathComponent("cmdline"), atomically: true, encoding: .utf8)
        try #"{"imageHash":"abc","kernelVersion":"6.1","nodeVersion":"v24.19.0","kernel":"bzImage","rootfs":"rootfs.erofs"}"#
            .write(to: dir.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)
        let image = try NodeOSImage(directory: dir)
        var spec = MachineSpec(name: "m", image: image)
        spec.kernelParameters = ["nodeos.test.exit=1"]
        spec.firmware = nil
        #expect(spec.commandLine == "console=ttyS0 quiet nodeos.test.exit=1")
        let xml = spec.domainSpec(name: "m", accelerator: .tcg, capturePath: nil).xml
        #expect(xml.contains("<cmdline>console=ttyS0 quiet nodeos.test.exit=1</cmdline>"))
        #expect(xml.contains("<source file='\(dir.standardizedFileURL.path)/rootfs.erofs'/>"))
        #expect(xml.contains("<target dev='vda' bus='virtio'/>"))
    }

    @Test("a missing image says how to build it")
    func missingImage() {
        let error = #expect(throws: ImageError.self) {
            try NodeOSImage(directory: URL(fileURLWithPath: "/nonexistent/build/image"))
        }
        #expect(error?.description.contains("make image") == true)
    }
}
