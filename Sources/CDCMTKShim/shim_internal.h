// Internal helpers shared by the shim's translation units. Not part of the C API.
#ifndef TESSERA_SHIM_INTERNAL_H
#define TESSERA_SHIM_INTERNAL_H

#include <string>
#include <vector>
#include <cstdint>

#include "tessera_dcmtk.h"

class DcmDataset;

void tsr_set_status(TSRStatus *status, int32_t code, const std::string &message);
void tsr_set_ok(TSRStatus *status);

/// Registers every codec once and sets DCMTK quiet; leaves a level set by tsr_initialize() alone afterwards.
void tsr_register_codecs();

/// Decodes every frame of an encapsulated JPEG 2000 (or HTJ2K) Pixel Data element with OpenJPEG into native
/// little-endian words (BitsAllocated 16) or bytes (8), frames concatenated.
int32_t tsr_decode_jpeg2000(DcmDataset *dataset, std::vector<uint8_t> &out, TSRStatus *status);

#endif
