import Tensors

// OpenBLAS picks its kernels when the library loads: relaunch with OPENBLAS_CORETYPE set if it fell back to a slow
// core on a CPU that supports a fast one (a no-op when the variable is set or the core is right).
BLASRuntime.relaunchWithBestCoreIfNeeded()
TesseraCommand.main()
