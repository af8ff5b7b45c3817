// Shared by the C++ libFuzzer entries of the DCMTK shim (Fuzz/dicom-shim, Fuzz/rtstruct-shim). The shim reads DICOM
// from a path, so each input is written to one file per process in $TMPDIR (tmpfs on most machines, /tmp when
// unset) and the shim opens that; the entry removes the file after each input with remove_input_file().
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

#include "tessera_dcmtk.h"

namespace tessera_fuzz {

// Initialises the shim once (tsr_initialize) and writes `size` bytes of `data` to $TMPDIR/tessera-fuzz-<tag>-<pid>.dcm;
// returns the path. Aborts (a harness failure, not a finding) when the file cannot be written.
inline const std::string &write_input_file(const char *tag, const uint8_t *data, size_t size) {
    static const std::string path = [tag] {
        const char *dir = std::getenv("TMPDIR");
        return std::string(dir && *dir ? dir : "/tmp") + "/tessera-fuzz-" + tag + "-" + std::to_string(getpid()) +
               ".dcm";
    }();
    static const bool initialized = [] {
        tsr_initialize(0);
        return true;
    }();
    (void)initialized;
    FILE *f = std::fopen(path.c_str(), "wb");
    if (!f) std::abort();
    if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
    return path;
}

inline void remove_input_file(const std::string &path) { std::remove(path.c_str()); }

}  // namespace tessera_fuzz
