// swift-tools-version: 6.1
import PackageDescription

// Module layout and dependency direction: see docs/ARCHITECTURE.md ("Modules").
//   tessera → SampleData → Volumes → DICOMIO → CDCMTKShim (DCMTK, OpenJPEG)
//   tessera → NeuralNetwork → Tensors → CBLAS (OpenBLAS)
//   Volumes → CZlib (zlib, for .nii.gz)
//   tessera → Provisioning (project CA, certificates, startup kits: swift-certificates, swift-crypto, Yams)
let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "Tessera",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tessera", targets: ["tessera"]),
        .executable(name: "tessera-bench", targets: ["tessera-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        // Already dependencies of the gRPC transport; named here for FederationGRPC's accept-time connection guard.
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.29.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        // Operations: Prometheus metrics (FederationMonitoring).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .target(
            name: "CDCMTKShim",
            cxxSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [
                .linkedLibrary("dcmrt"), .linkedLibrary("dcmseg"), .linkedLibrary("dcmfg"), .linkedLibrary("dcmiod"),
                .linkedLibrary("dcmjpls"), .linkedLibrary("dcmjpeg"), .linkedLibrary("dcmimgle"),
                .linkedLibrary("dcmdata"), .linkedLibrary("oflog"), .linkedLibrary("ofstd"),
                .linkedLibrary("openjp2"), .linkedLibrary("stdc++"),
            ]
        ),
        .systemLibrary(name: "CBLAS"),
        .systemLibrary(name: "CZlib"),
        .target(name: "DICOMIO", dependencies: ["CDCMTKShim"], swiftSettings: strict),
        .target(
            name: "Volumes",
            dependencies: ["DICOMIO", "CZlib", "Randomness", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict),
        .target(name: "Randomness", swiftSettings: strict),
        // Noise, clipping, the RDP accountant and the per-site privacy ledger: what every release that leaves a site
        // (model updates, statistics) is measured and charged with.
        .target(
            name: "DifferentialPrivacy", dependencies: ["Randomness", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict),
        // Direct SIMD convolution kernels in C (vector extensions, dispatched per instruction set at run time),
        // imported only by Tensors. Optimised in debug builds too: the tests run whole U-Nets through them.
        .target(name: "CTensorKernels", cSettings: [.unsafeFlags(["-O3", "-Wno-psabi"])]),
        .target(name: "Tensors", dependencies: ["CBLAS", "CTensorKernels", "Randomness"], swiftSettings: strict),
        // Threads off Swift's cooperative pool: a compute executor (training, evaluation) and blocking waits.
        .target(name: "Offload", swiftSettings: strict),
        .target(name: "SafeTensorsFormat", swiftSettings: strict),
        .target(name: "NeuralNetwork", dependencies: ["Tensors", "SafeTensorsFormat"], swiftSettings: strict),
        .target(
            name: "Training",
            dependencies: [
                "DICOMIO", "Volumes", "Tensors", "NeuralNetwork", "Randomness", "DifferentialPrivacy",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict),
        .target(name: "SampleData", dependencies: ["DICOMIO", "Volumes", "Randomness"], swiftSettings: strict),
        .target(name: "FederationCore", swiftSettings: strict),
        // Secure aggregation (SecAgg / SecAgg+): certificate-signed X25519 keys, Shamir-shared secrets, masks over
        // Z/2³²; transport-free state machines for the site and the server.
        .target(
            name: "SecureAggregation",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: strict),
        .target(
            name: "Provisioning",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "FederationServer",
            dependencies: [
                "FederationCore", "SafeTensorsFormat", "DifferentialPrivacy", "SecureAggregation",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict),
        .target(
            name: "FederationClient",
            dependencies: [
                "Offload",
                "FederationCore", "Training", "NeuralNetwork", "Tensors", "Volumes", "DifferentialPrivacy",
                "SecureAggregation", "ExperimentTracking", "SafeTensorsFormat",
                .product(name: "Yams", package: "Yams"),
                // The site's egress log: SQLite rows with the SHA-256 of what was sent.
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        // What the server and sites run for a submitted pipeline: its parsing and limits, the job factory, the
        // statistics job (server side and site side).
        .target(
            name: "FederationJobs",
            dependencies: [
                "FederationCore", "FederationServer", "FederationClient", "FederatedAnalytics", "Training",
                "NeuralNetwork", "Volumes", "DifferentialPrivacy", .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict),
        // The in-memory twin of the gRPC transport (as grpc-swift's GRPCInProcessTransport): tests and in-process
        // simulations; `tessera server` and `tessera client` never use it.
        .target(name: "FederationInProcess", dependencies: ["FederationCore"], swiftSettings: strict),
        // `tessera simulate`'s study: federated vs local-only vs centralised, the report.
        .target(
            name: "FederationSimulation",
            dependencies: [
                "FederationCore", "FederationServer", "FederationClient", "FederationJobs",
                "FederationInProcess", "FederatedAnalytics", "Training", "NeuralNetwork", "Volumes",
                "DifferentialPrivacy", "SecureAggregation", "Provisioning",
                .product(name: "SwiftASN1", package: "swift-asn1"), .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict),
        // The gRPC + mutual-TLS transport. Generated code is committed (scripts/generate_protos.sh): no build plugins.
        .target(
            name: "FederationGRPC",
            dependencies: [
                "FederationCore", "Provisioning",
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        // Experiment tracking: TensorBoard event files (TFRecord framing, Event/Summary protobufs; generated code
        // committed, scripts/generate_protos.sh).
        .target(
            name: "ExperimentTracking",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: strict),
        // Operations: the Prometheus endpoint (a minimal HTTP/1.1 responder on swift-nio) and the metrics the server
        // and a site keep (swift-metrics handlers from swift-prometheus), fed by the jobs' event stream.
        .target(
            name: "FederationMonitoring",
            dependencies: [
                "FederationCore", "FederationServer", "FederationGRPC", "ExperimentTracking",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict),
        .target(
            name: "FederatedAnalytics",
            dependencies: [
                "DICOMIO", "Volumes", "Randomness", "DifferentialPrivacy", "SecureAggregation",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tessera",
            dependencies: [
                "Offload",
                "DICOMIO", "Volumes", "Tensors", "SampleData", "FederatedAnalytics", "Training", "FederationSimulation",
                "DifferentialPrivacy",
                "FederationJobs",
                "Provisioning", "FederationCore", "FederationServer", "FederationClient", "FederationGRPC",
                "FederationMonitoring", "ExperimentTracking",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tessera-bench",
            dependencies: [
                "DICOMIO", "Volumes", "Tensors", "NeuralNetwork",
                "FederationCore", "FederationServer", "FederationClient", "FederationGRPC", "FederationTestSupport",
                "SecureAggregation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // Shared by the test targets: the `.computeBound` trait (tests that compute run off the cooperative pool).
        .target(name: "TestSupport", dependencies: ["Offload"], path: "Tests/TestSupport", swiftSettings: strict),
        // Shared by the federation tests and benchmarks (never by production code): a manual clock, a throw-away PKI,
        // a connection a test can interpose on.
        .target(
            name: "FederationTestSupport",
            dependencies: [
                "FederationCore", "FederationGRPC", "Provisioning", "SecureAggregation",
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            path: "Tests/FederationTestSupport", swiftSettings: strict),
        .testTarget(
            name: "DICOMIOTests", dependencies: ["TestSupport", "DICOMIO", "Volumes", "SampleData"],
            exclude: ["Golden"],  // read from the source tree by path
            swiftSettings: strict),
        .testTarget(
            name: "VolumesTests", dependencies: ["TestSupport", "Volumes", "DICOMIO", "Randomness"],
            exclude: ["Golden"],  // read from the source tree by path
            swiftSettings: strict),
        .testTarget(name: "TensorsTests", dependencies: ["TestSupport", "Tensors"], swiftSettings: strict),
        .testTarget(
            name: "DifferentialPrivacyTests", dependencies: ["TestSupport", "DifferentialPrivacy", "Randomness"],
            exclude: ["Golden"],  // read from the source tree by path
            swiftSettings: strict),
        .testTarget(
            name: "SecureAggregationTests",
            dependencies: [
                "SecureAggregation", "Provisioning", "FederationTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "FederationCoreTests", dependencies: ["FederationCore", "Randomness"],
            exclude: ["Golden"],  // read from the source tree by path
            swiftSettings: strict),
        .testTarget(
            name: "FederationRuntimeTests",
            dependencies: [
                "TestSupport",
                "FederationCore", "FederationServer", "FederationClient", "FederationInProcess",
                "FederationTestSupport", "SafeTensorsFormat", "DifferentialPrivacy", "Training", "SecureAggregation",
                "Volumes", .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "FederationGRPCTests",
            dependencies: [
                "Offload",
                "FederationCore", "FederationServer", "FederationClient", "FederationGRPC", "FederationTestSupport",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "FederationMonitoringTests",
            dependencies: [
                "FederationMonitoring", "FederationCore", "FederationServer", "FederationGRPC", "ExperimentTracking",
                "FederationTestSupport",
            ],
            swiftSettings: strict),
        .testTarget(
            name: "ExperimentTrackingTests", dependencies: ["ExperimentTracking"],
            exclude: ["Golden"],  // read from the source tree by path
            swiftSettings: strict),
        .testTarget(
            name: "FederatedAnalyticsTests",
            dependencies: [
                "TestSupport",
                "FederatedAnalytics", "DifferentialPrivacy", "DICOMIO", "Volumes", "SecureAggregation",
                "FederationTestSupport",
            ],
            exclude: ["Golden"],
            swiftSettings: strict),
        .testTarget(
            name: "ProvisioningTests",
            dependencies: [
                "Provisioning",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["Golden"],  // read from the source tree by path
            swiftSettings: strict),
        // Real `tessera` processes (server, clients) over loopback mutual TLS; needs the tessera product built.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "Offload",
                "FederationCore", "FederationGRPC", "FederationTestSupport", "SafeTensorsFormat", "FederatedAnalytics",
                "FederationClient", "Training", "Volumes", "DifferentialPrivacy", "SecureAggregation",
                "ExperimentTracking",
            ],
            swiftSettings: strict),
        .testTarget(
            name: "FederationSimulationTests",
            dependencies: [
                "FederationSimulation", "FederationJobs", "FederationCore", "FederationServer", "FederationClient",
                "Training", "DifferentialPrivacy", "FederatedAnalytics",
            ],
            swiftSettings: strict),
        .testTarget(
            name: "TrainingTests",
            dependencies: [
                "TestSupport",
                "Training", "NeuralNetwork", "Volumes", "Tensors", "DICOMIO", "Randomness",
                "DifferentialPrivacy", "SampleData", "FederationTestSupport",
            ],
            exclude: ["Golden"],  // read from the source tree by path
            swiftSettings: strict),
        .testTarget(
            name: "NeuralNetworkTests", dependencies: ["NeuralNetwork", "Tensors"],
            exclude: ["Golden"],  // read from the source tree by path
            swiftSettings: strict),
    ],
    cxxLanguageStandard: .cxx17
)
