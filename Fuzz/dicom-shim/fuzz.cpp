// libFuzzer entry for the DCMTK shim (Sources/CDCMTKShim): parse a file, read the attributes DICOMIO reads, walk
// sequences two levels deep, and decode the pixel data (native, deflated, RLE, JPEG, JPEG-LS, JPEG 2000).
// Built with -fsanitize=fuzzer,address,undefined by Fuzz/build.sh. The shim reads from a path, so each input is
// written to one file in $TMPDIR (tmpfs on most machines) first.
#include <cstdint>
#include <string>

#include "fuzz_input_file.h"

namespace {


// Tags read by DICOMIO (ImageInstance+Reading, Segmentation): text, numbers and raw bytes.
const uint16_t kTags[][2] = {
    {0x0008, 0x0016}, {0x0008, 0x0018}, {0x0008, 0x0060}, {0x0020, 0x000D}, {0x0020, 0x000E}, {0x0020, 0x0013},
    {0x0020, 0x0032}, {0x0020, 0x0037}, {0x0028, 0x0002}, {0x0028, 0x0004}, {0x0028, 0x0008}, {0x0028, 0x0010},
    {0x0028, 0x0011}, {0x0028, 0x0030}, {0x0028, 0x0100}, {0x0028, 0x0101}, {0x0028, 0x0102}, {0x0028, 0x0103},
    {0x0028, 0x1052}, {0x0028, 0x1053}, {0x0028, 0x3002}, {0x0028, 0x3006}, {0x0018, 0x0050}, {0x0062, 0x0004},
    {0x0062, 0x0005}, {0x0062, 0x0001}, {0x0062, 0x000E}, {0x0008, 0x1155}, {0x0020, 0x9157},
};
// Sequences walked: functional groups, segments, references, modality LUT.
const uint16_t kSequences[][2] = {
    {0x5200, 0x9229}, {0x5200, 0x9230}, {0x0062, 0x0002}, {0x0008, 0x1115}, {0x0008, 0x114A}, {0x0028, 0x3000},
    {0x0020, 0x9113}, {0x0020, 0x9116}, {0x0028, 0x9110}, {0x0028, 0x9145}, {0x0008, 0x9124}, {0x0062, 0x000A},
    {0x0020, 0x9111}, {0x0008, 0x2112},
};

void read_item(TSRItem item, int depth) {
    if (!item) return;
    char text[256];
    double numbers[16];
    const uint8_t *bytes = nullptr;
    for (const auto &t : kTags) {
        (void)tsr_item_contains(item, t[0], t[1]);
        (void)tsr_item_string(item, t[0], t[1], text, sizeof text);
        (void)tsr_item_numbers(item, t[0], t[1], numbers, 16);
        int64_t n = tsr_item_bytes(item, t[0], t[1], &bytes);
        // Touch the first and last byte so ASan checks the reported length.
        if (n > 0 && bytes) { volatile uint8_t x = bytes[0]; x = bytes[n - 1]; (void)x; }
    }
    if (depth >= 2) return;
    for (const auto &s : kSequences) {
        int32_t count = tsr_item_sequence_count(item, s[0], s[1]);
        for (int32_t i = 0; i < count && i < 8; ++i)
            read_item(tsr_item_sequence_item(item, s[0], s[1], (uint32_t)i), depth + 1);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string &path = tessera_fuzz::write_input_file("dicom", data, size);

    TSRStatus status;
    // 4096: the same lazy-loading threshold DICOMFile uses, so large elements are read on access as in production.
    TSRFile *file = tsr_file_open(path.c_str(), 4096, &status);
    if (file) {
        char syntax[128];
        (void)tsr_file_transfer_syntax(file, syntax, sizeof syntax);
        read_item(tsr_file_meta_header(file), 2);
        read_item(tsr_file_dataset(file), 0);
        const uint8_t *pixels = nullptr;
        size_t length = 0;
        if (tsr_file_pixel_data(file, &pixels, &length, &status) == TSR_OK && length > 0 && pixels) {
            volatile uint8_t x = pixels[0];
            x = pixels[length - 1];
            (void)x;
        }
        tsr_file_release_pixel_data(file);
        tsr_file_free(file);
    }
    tessera_fuzz::remove_input_file(path);
    return 0;
}
