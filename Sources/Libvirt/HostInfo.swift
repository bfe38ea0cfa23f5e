import CLibvirt
import Foundation

extension Connection {
    /// The libvirt host's name (the remote machine's on a remote URI).
    public func hostname() throws(LibvirtError) -> String {
        let pointer = try withHandle { (handle) throws(LibvirtError) in
            try Libvirt.call("reading the host name of '\(uri)'") { virConnectGetHostname(handle) }
        }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// The hypervisor's version on the libvirt host, e.g. "7.2.0" for QEMU 7.2.
    public func hypervisorVersion() throws(LibvirtError) -> String {
        var version: UInt = 0
        try withHandle { (handle) throws(LibvirtError) in
            try Libvirt.call("reading the hypervisor version of '\(uri)'") { virConnectGetVersion(handle, &version) }
        }
        return "\(version / 1_000_000).\((version / 1000) % 1000).\(version % 1000)"
    }

    /// Whether the libvirt host offers `virtType` ("kvm") for x86-64 guests:
    /// libvirt asks that host's QEMU, so the answer is the host's, not ours.
    public func offersVirtType(_ virtType: String, arch: String = "x86_64") -> Bool {
        withHandle { handle in
            guard let xml = virConnectGetDomainCapabilities(handle, nil, arch, nil, virtType, 0) else {
                virResetLastError()
                return false
            }
            free(xml)
            return true
        }
    }
}
