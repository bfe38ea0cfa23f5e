import Foundation
import Testing

/// Something on the host a test needs and cannot make itself: the built
/// `testbed` binary, the host's node and npm, … Tests name it with the
/// ``Testing/Trait/requires(_:)`` trait: where it is missing the test is
/// skipped with ``message`` locally and fails with it in CI (`CI=true`),
/// like ``Testing/Trait/requiresNodeOSImage`` does for the image.
///
/// ```swift
/// @Suite(.requires(.testbedBinary)) struct CLITests { … }
/// ```
public struct Prerequisite: Sendable {
    /// What is missing, for the message: "the testbed binary at /x/testbed".
    public var what: String
    /// How to get it: "run 'swift build'".
    public var remedy: String
    /// Whether it is there now.
    public var isPresent: @Sendable () -> Bool

    public init(_ what: String, remedy: String, isPresent: @escaping @Sendable () -> Bool) {
        self.what = what
        self.remedy = remedy
        self.isPresent = isPresent
    }

    /// What a skipped test says.
    public var message: String {
        "missing \(what): \(remedy) (in CI, CI=true, this fails instead of skipping)"
    }

    /// What a failed test says, in CI.
    public var failureMessage: String {
        "missing \(what): \(remedy) (CI=true: a missing prerequisite fails the test)"
    }

    /// The error a test fails with in CI.
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
    }

    /// Inside a test: returns when the prerequisite is there; otherwise
    /// skips the test (outside CI) or throws ``Missing`` (in CI).
    public func require(sourceLocation: SourceLocation = #_sourceLocation) throws {
        if isPresent() { return }
        if TestbedEnvironment.isCI { throw Missing(description: failureMessage) }
        try Test.cancel(Comment(rawValue: message), sourceLocation: sourceLocation)
    }
}

extension Prerequisite {
    /// The built `testbed` CLI (``TestbedEnvironment/testbedBinary``).
    public static var testbedBinary: Prerequisite {
        let path = TestbedEnvironment.testbedBinary.path
        return Prerequisite("the testbed binary at \(path)",
                            remedy: "build it with 'swift build' (or 'swift build --build-tests'), or point TESTBED_BINARY at one") {
            FileManager.default.isExecutableFile(atPath: path)
        }
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test (or every test of the suite) only where `prerequisite`
    /// is present. Missing, it is skipped with the prerequisite's message —
    /// or, in CI (`CI=true`), fails with that message.
    public static func requires(_ prerequisite: Prerequisite, sourceLocation: SourceLocation = #_sourceLocation) -> Self {
        .enabled(Comment(rawValue: prerequisite.message), sourceLocation: sourceLocation) {
            if prerequisite.isPresent() { return true }
            if TestbedEnvironment.isCI { throw Prerequisite.Missing(description: prerequisite.failureMessage) }
            return false
        }
    }
}
