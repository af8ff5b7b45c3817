// Testing is on the search path only when tests are built; `swift build -c release` builds this target too.
#if canImport(Testing)
    import Foundation
    import Offload
    import Testing

    /// Runs each test of a suite on compute threads (`ComputeBoundTrait.executor`) instead of Swift's cooperative
    /// pool.
    ///
    /// Swift Testing runs every test — synchronous ones too — on the cooperative pool, one thread per core. Two
    /// tests that compute for minutes (a finite-difference gradient check, generating the sample data, an epoch of
    /// training) then hold the whole pool, and every async test beside them stops: a gRPC test's 1-second idle
    /// timeout measures the wait for a thread instead. Suites whose tests compute take this trait; their tests then
    /// share the compute threads among themselves and leave the pool to the tests that wait on sockets, clocks and
    /// processes.
    public struct ComputeBoundTrait: TestTrait, SuiteTrait, TestScoping {
        /// The tests' own compute threads, one per core: not `ComputeExecutor.shared`, where the site agents of the
        /// federation tests train, which would otherwise wait behind minutes of gradient checks.
        static let executor = ComputeExecutor(threadCount: ProcessInfo.processInfo.activeProcessorCount)

        public var isRecursive: Bool { true }

        public func provideScope(
            for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
        ) async throws {
            try await withTaskExecutorPreference(Self.executor) { try await function() }
        }
    }

    extension Trait where Self == ComputeBoundTrait {
        /// The suite's tests compute: run them on compute threads of their own (`ComputeBoundTrait`).
        public static var computeBound: Self { Self() }
    }
#endif
