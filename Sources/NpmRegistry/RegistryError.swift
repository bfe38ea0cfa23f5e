// Errors a person can act on: what the registry was doing, on which path.

import Foundation

/// Why the registry could not load its packages or start.
public struct RegistryError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of failure this is; a struct over a private enum so cases can grow.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Value: Hashable, Sendable {
            case unreadable, invalidManifest, bindFailed, notRunning
        }
        fileprivate let value: Value
        public static let unreadable = Code(value: .unreadable)
        public static let invalidManifest = Code(value: .invalidManifest)
        public static let bindFailed = Code(value: .bindFailed)
        public static let notRunning = Code(value: .notRunning)
        public var description: String { "\(value)" }
    }

    public let code: Code
    public let message: String

    public var description: String { message }

    static func unreadable(path: String, reason: String) -> RegistryError {
        RegistryError(code: .unreadable, message: "Unable to read package source '\(path)': \(reason)")
    }

    static func invalidManifest(path: String, reason: String) -> RegistryError {
        RegistryError(code: .invalidManifest, message: "Invalid package manifest '\(path)': \(reason)")
    }

    static func bindFailed(host: String, port: Int, cause: any Error) -> RegistryError {
        RegistryError(code: .bindFailed, message: "Unable to listen on \(host):\(port): \(cause)")
    }

    static func notRunning(_ action: String) -> RegistryError {
        RegistryError(code: .notRunning, message: "Unable to \(action): the registry has been stopped")
    }
}
