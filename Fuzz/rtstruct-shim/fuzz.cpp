// libFuzzer entry for the RT Structure Set half of the DCMTK shim (Sources/CDCMTKShim/shim_rtstruct.cpp): parse a
// file, take the dcmdata item counts, and when they are within the limits DICOMIO uses by default read it with
// dcmrt and walk every ROI, contour (with its points) and referenced series as StructureSet does.
// Built with -fsanitize=fuzzer,address,undefined by Fuzz/build.sh; each input is written to one file in $TMPDIR.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_input_file.h"

namespace {

// ReadingLimits' defaults for maxROIs and maxContours; points are capped lower so one input stays fast.
constexpr int64_t kMaxROIs = 10000, kMaxContours = 200000, kMaxPoints = 1 << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string &path = tessera_fuzz::write_input_file("rtstruct", data, size);

    TSRStatus status;
    TSRFile *file = tsr_file_open(path.c_str(), 0, &status);
    if (file) {
        TSRStructureSetCounts counts;
        if (tsr_structure_set_count(file, &counts, &status) == 0 && counts.rois <= kMaxROIs &&
            counts.roiContours <= kMaxROIs && counts.contours <= kMaxContours &&
            counts.referencedImages <= kMaxContours) {
            TSRStructureSet *set = tsr_structure_set_read(file, &status);
            if (set) {
                for (int32_t r = 0; r < tsr_structure_set_roi_count(set); ++r) {
                    TSRROI roi;
                    (void)tsr_structure_set_roi(set, (uint32_t)r, &roi, &status);
                }
                int64_t points = 0;
                for (int32_t rc = 0; rc < tsr_structure_set_roi_contour_count(set); ++rc) {
                    int32_t referenced = 0, contours = 0;
                    if (tsr_structure_set_roi_contour(set, (uint32_t)rc, &referenced, &contours, &status) != 0)
                        continue;
                    for (int32_t c = 0; c < contours; ++c) {
                        TSRContour contour;
                        if (tsr_structure_set_contour(set, (uint32_t)rc, (uint32_t)c, &contour, &status) != 0)
                            continue;
                        if (!contour.hasNumberOfPoints || contour.numberOfPoints < 0) continue;
                        int64_t n = 3 * (int64_t)contour.numberOfPoints;
                        if (points + n > 3 * kMaxPoints) continue;
                        points += n;
                        std::vector<double> values((size_t)n);
                        int64_t held = tsr_structure_set_contour_data(set, (uint32_t)rc, (uint32_t)c, values.data(),
                                                                      values.size(), &status);
                        // Touch the last value copied so ASan checks the count against the buffer.
                        if (held > 0 && n > 0) { volatile double x = values[(size_t)(held < n ? held : n) - 1]; (void)x; }
                    }
                }
                for (int32_t s = 0; s < tsr_structure_set_referenced_series_count(set); ++s) {
                    TSRReferencedSeries series;
                    if (tsr_structure_set_referenced_series(set, (uint32_t)s, &series) != 0) continue;
                    char uid[128];
                    for (int32_t i = 0; i < series.imageCount && i < 64; ++i)
                        (void)tsr_structure_set_referenced_image(set, (uint32_t)s, (uint32_t)i, uid, sizeof uid);
                }
                tsr_structure_set_free(set);
            }
        }
        tsr_file_free(file);
    }
    tessera_fuzz::remove_input_file(path);
    return 0;
}
