import CLibvirt

/// A failed libvirt call: what the testbed was doing, and what libvirt said.
///
/// Read from libvirt's thread-local last error in the same synchronous block as
/// the failing call (see ``Libvirt/call(_:_:)``), so it is never another call's.
public struct LibvirtError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What was being done, written for a person: "starting domain 'web'".
    public var operation: String
    /// libvirt's `virErrorNumber` (`VIR_ERR_*`), 0 when libvirt set none.
    public var code: Int32
    /// libvirt's `virErrorDomain` (`VIR_FROM_*`): which part of libvirt failed.
    public var domain: Int32
    /// libvirt's own message, or a fallback when it gave none.
    public var message: String

    public init(operation: String, code: Int32, domain: Int32, message: String) {
        self.operation = operation
        self.code = code
        self.domain = domain
        self.message = message
    }

    /// The error code as a named kind, for the cases callers act on.
    public var kind: Kind { Kind(code: code) }

    public var description: String {
        "libvirt: \(operation) failed: \(message) (code \(code)\(kind == .other ? "" : " \(kind)"), domain \(domain))"
    }

    /// The libvirt error codes the testbed treats specially.
    public enum Kind: Sendable, Equatable, CustomStringConvertible {
        case noDomain, operationInvalid, noSupport, authFailed, systemError, internalError, other

        init(code: Int32) {
            switch code {
            case Int32(VIR_ERR_NO_DOMAIN.rawValue): self = .noDomain
            case Int32(VIR_ERR_OPERATION_INVALID.rawValue): self = .operationInvalid
            case Int32(VIR_ERR_NO_SUPPORT.rawValue): self = .noSupport
            case Int32(VIR_ERR_AUTH_FAILED.rawValue): self = .authFailed
            case Int32(VIR_ERR_SYSTEM_ERROR.rawValue): self = .systemError
            case Int32(VIR_ERR_INTERNAL_ERROR.rawValue): self = .internalError
            default: self = .other
            }
        }

        public var description: String {
            switch self {
            case .noDomain: "no-domain"
            case .operationInvalid: "operation-invalid"
            case .noSupport: "no-support"
            case .authFailed: "auth-failed"
            case .systemError: "system-error"
            case .internalError: "internal-error"
            case .other: "other"
            }
        }
    }

    /// Reads and resets libvirt's last error on this thread.
    static func fromLastError(_ operation: String) -> LibvirtError {
        guard EventLoop.libraryInitialised, let err = virGetLastError() else {
            return LibvirtError(operation: operation, code: 0, domain: 0, message: "libvirt reported no error details")
        }
        let message = err.pointee.message.map { String(cString: $0) } ?? "libvirt reported no message"
        let error = LibvirtError(operation: operation, code: err.pointee.code, domain: err.pointee.domain, message: message)
        virResetLastError()
        return error
    }
}

/// The one place where libvirt return values are checked.
///
/// Mirrors swift-nio's `System.swift`: each C call goes through `call`, which
/// checks `-1` / `NULL` and reads libvirt's last error at once, on the same
/// thread, before anything else can overwrite it.
public enum Libvirt {
    /// Runs a libvirt call returning an `Int32` status; throws on `-1`.
    @discardableResult
    public static func call(_ operation: @autoclosure () -> String, _ body: () -> Int32) throws(LibvirtError) -> Int32 {
        let result = body()
        if result < 0 { throw LibvirtError.fromLastError(operation()) }
        return result
    }

    /// Runs a libvirt call returning a pointer; throws on `NULL`.
    public static func call<T>(_ operation: @autoclosure () -> String, _ body: () -> T?) throws(LibvirtError) -> T {
        guard let result = body() else { throw LibvirtError.fromLastError(operation()) }
        return result
    }

    /// The libvirt library version, e.g. "9.0.0".
    public static var version: String {
        var v: UInt = 0
        guard virGetVersion(&v, nil, nil) == 0 else { return "unknown" }
        return "\(v / 1_000_000).\((v / 1000) % 1000).\(v % 1000)"
    }
}
