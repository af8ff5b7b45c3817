// Internal helpers shared by the shim's translation units. Not part of the C API.
#ifndef TESSERA_SHIM_INTERNAL_H
#define TESSERA_SHIM_INTERNAL_H

#include <string>
#include <vector>
#include <cstdint>
#include <exception>
#include <new>

#include "tessera_dcmtk.h"

class DcmDataset;

void tsr_set_status(TSRStatus *status, int32_t code, const std::string &message);

/// Records an exception caught at an extern "C" boundary in `status` (when non-null).
void tsr_set_exception(TSRStatus *status, const char *what);

// Every extern "C" entry's body sits between these: a C++ exception must never cross into Swift (it would call
// std::terminate), so bad_alloc from a hostile size and any DCMTK/OpenJPEG exception become TSR_INTERNAL.
#define TSR_GUARD_BEGIN try {
#define TSR_GUARD_END(status, failure)                                                                                 \
    }                                                                                                                  \
    catch (const std::bad_alloc &) {                                                                                   \
        tsr_set_exception(status, "out of memory");                                                                    \
        return failure;                                                                                                \
    }                                                                                                                  \
    catch (const std::exception &e) {                                                                                  \
        tsr_set_exception(status, e.what());                                                                           \
        return failure;                                                                                                \
    }                                                                                                                  \
    catch (...) {                                                                                                      \
        tsr_set_exception(status, "unknown exception");                                                                \
        return failure;                                                                                                \
    }
#define TSR_GUARD_END_VOID(status)                                                                                     \
    }                                                                                                                  \
    catch (...) {                                                                                                      \
        tsr_set_exception(status, "exception");                                                                        \
    }
void tsr_set_ok(TSRStatus *status);

/// Registers every codec once and sets DCMTK quiet; leaves a level set by tsr_initialize() alone afterwards.
void tsr_register_codecs();

/// Decodes every frame of an encapsulated JPEG 2000 (or HTJ2K) Pixel Data element with OpenJPEG into native
/// little-endian words (BitsAllocated 16) or bytes (8), frames concatenated.
int32_t tsr_decode_jpeg2000(DcmDataset *dataset, std::vector<uint8_t> &out, TSRStatus *status);

#endif
