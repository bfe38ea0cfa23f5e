import Testing
@testable import NpmRegistry
