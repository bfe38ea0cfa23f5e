import Libvirt
import Testbed
import Testing

@Suite("volume staging: which URIs upload volumes")
struct VolumeStagingTests {
    @Test("local: the embedded driver and transport-less URIs; remote: a transport or a host name", arguments: [
        ("qemu:///embed?root=/tmp/nodeos/1-0", true),
        ("qemu:///system", true),
        ("qemu:///session", true),
        ("test:///default", true),
        ("qemu+unix:///system?socket=/tmp/nodeos-libvirtd-1-0/libvirt-sock", false),
        ("qemu+ssh://builder@ci-host/system", false),
        ("qemu+tcp://10.0.0.2/system", false),
        ("qemu+tls://host.example/system", false),
        ("qemu://host.example/system", false),
        ("qemu://user@host/system", false),
    ])
    func locality(uri: String, local: Bool) {
        #expect(LibvirtURI.isLocal(uri) == local)
    }

    @Test("auto uploads only for remote URIs, always for every URI but the embedded driver, never for none")
    func modes() {
        let embedded = "qemu:///embed?root=/tmp/nodeos/1-0"
        let system = "qemu:///system"
        let remote = "qemu+unix:///system?socket=/tmp/s"
        #expect(!VolumeStagingMode.auto.stages(uri: embedded))
        #expect(!VolumeStagingMode.auto.stages(uri: system))
        #expect(VolumeStagingMode.auto.stages(uri: remote))
        #expect(!VolumeStagingMode.always.stages(uri: embedded))
        #expect(VolumeStagingMode.always.stages(uri: system))
        #expect(!VolumeStagingMode.never.stages(uri: remote))
    }

    @Test("the pool's XML: a dir pool at the given path, names escaped")
    func poolXML() {
        let xml = StoragePool.directoryXML(name: "nodeos-testbed", path: "/var/lib/libvirt/nodeos-testbed")
        #expect(xml.contains("<pool type='dir'>"))
        #expect(xml.contains("<name>nodeos-testbed</name>"))
        #expect(xml.contains("<path>/var/lib/libvirt/nodeos-testbed</path>"))
        #expect(StoragePool.directoryXML(name: "a<b", path: "/x&y").contains("<name>a&lt;b</name>"))
    }
}
