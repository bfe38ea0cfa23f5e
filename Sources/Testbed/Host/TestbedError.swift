import Libvirt

/// Something in the testbed itself went wrong (not a test's assertion).
public enum TestbedError: Error, CustomStringConvertible, Sendable {
    case setup(String)
    case libvirt(LibvirtError)

    public var description: String {
        switch self {
        case .setup(let message): "testbed setup: \(message)"
        case .libvirt(let error): error.description
        }
    }
}
