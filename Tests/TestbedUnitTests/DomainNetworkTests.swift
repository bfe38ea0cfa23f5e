import TestbedCore
import Testing

@Suite("Domain XML: restricted NIC and private links")
struct DomainNetworkTests {
    static func spec(restricted: Bool, capture: Bool) -> DomainSpec {
        var spec = DomainSpec(name: "m", kernel: "/k", commandLine: "", rootfs: "/r",
                              network: DomainSpec.Network(capturePath: capture ? "/a/capture.pcap" : nil, restricted: restricted))
        spec.links = [DomainSpec.Link(name: "lan", mac: "52:54:00:3c:00:01", localPort: 40001, remotePort: 40002, capturePath: "/a/m-lan.pcap")]
        return spec
    }

    @Test("a restricted NIC is QEMU's own with restrict=on, captured under its own netdev; links are udp interfaces captured by alias")
    func restricted() {
        let xml = Self.spec(restricted: true, capture: true).xml
        #expect(!xml.contains("<interface type='user'>"))
        #expect(xml.contains("<qemu:arg value='user,id=nodeosnet0,restrict=on'/>"))
        #expect(xml.contains("netdev=nodeosnet0,id=nodeosnic0,bus=pci.0,addr=0x1f"))
        #expect(xml.contains("filter-dump,id=capture0,netdev=nodeosnet0,file=/a/capture.pcap"))
        #expect(xml.contains("<interface type='udp'>") && xml.contains("<source address='127.0.0.1' port='40002'>") && xml.contains("<local address='127.0.0.1' port='40001'/>"))
        #expect(xml.contains("filter-dump,id=capture-lan,netdev=hostua-link-lan,file=/a/m-lan.pcap"))
    }

    @Test("an open NIC stays libvirt's user interface, captured as hostnet0; a link goes down by its link state")
    func open() {
        let spec = Self.spec(restricted: false, capture: true)
        #expect(spec.xml.contains("<interface type='user'>") && !spec.xml.contains("restrict=on"))
        #expect(spec.xml.contains("filter-dump,id=capture0,netdev=hostnet0,"))
        #expect(spec.links[0].xml(up: false).contains("<link state='down'/>"))
        #expect(spec.links[0].xml().contains("<alias name='ua-link-lan'/>"))
    }
}
