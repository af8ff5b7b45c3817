import Foundation
import Tensors

// A parent that starts us through Foundation's Process (as `tessera simulate` starts the server) may hand down a
// signal mask with SIGINT and SIGTERM blocked; unblock them before any thread starts, so `tessera server` can shut
// down gracefully on SIGTERM.
var terminationSignals = sigset_t()
sigemptyset(&terminationSignals)
sigaddset(&terminationSignals, SIGINT)
sigaddset(&terminationSignals, SIGTERM)
pthread_sigmask(SIG_UNBLOCK, &terminationSignals, nil)

// OpenBLAS picks its kernels when the library loads: relaunch with OPENBLAS_CORETYPE set if it fell back to a slow
// core on a CPU that supports a fast one (a no-op when the variable is set or the core is right).
BLASRuntime.relaunchWithBestCoreIfNeeded()
TesseraCommand.main()
