// RT Structure Set reading through DCMTK's dcmrt (DRTStructureSetIOD), PS3.3 A.19 and C.8.8.5-C.8.8.6.
//
// The item counts are taken with plain dcmdata before dcmrt copies the dataset into its object model (about a
// kilobyte per contour item), so the Swift side can refuse a hostile count before that copy is made.
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dctk.h"
#include "dcmtk/dcmrt/drtstrct.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "shim_internal.h"
#include "tessera_dcmtk.h"

struct TSRStructureSet {
    DRTStructureSetIOD iod;
    // Direct pointers into the IOD's lists: dcmrt's getItem(num) walks its list, which is quadratic over a
    // structure set with tens of thousands of contours.
    std::vector<DRTStructureSetROISequence::Item *> rois;
    std::vector<DRTROIContourSequence::Item *> roiContours;
    std::vector<std::vector<DRTContourSequence::Item *>> contours;
    std::vector<TSRReferencedSeries> series;
    std::vector<std::vector<std::string>> seriesImages;
};

static void copy_text(const OFString &text, char *buffer, size_t capacity) {
    size_t n = text.size() < capacity - 1 ? text.size() : capacity - 1;
    std::memcpy(buffer, text.c_str(), n);
    buffer[n] = 0;
}

// Every item of a dcmrt sequence, in order. Its gotoNextItem() also succeeds when it steps past the last item (the
// iterator then points at end() and getCurrentItem() hands out an empty default item), so the end is detected by
// getCurrentItem(Item *&) failing.
template <typename Sequence, typename Body> static void for_each_item(Sequence &sequence, Body body) {
    if (sequence.gotoFirstItem().bad()) return;
    do {
        typename Sequence::Item *item = nullptr;
        if (sequence.getCurrentItem(item).bad() || item == nullptr) break;
        body(*item);
    } while (sequence.gotoNextItem().good());
}

// The items of a dcmdata sequence in order, each step O(1): getItem(i) seeks from the first item, which is
// quadratic over the counts a hostile file may declare before any limit has been checked.
template <typename Body> static void for_each_dcm_item(DcmSequenceOfItems *sequence, Body body) {
    if (sequence == nullptr) return;
    for (DcmObject *object = sequence->nextInContainer(nullptr); object != nullptr;
         object = sequence->nextInContainer(object)) {
        if (DcmItem *item = OFdynamic_cast(DcmItem *, object)) body(item);
    }
}

static int64_t sequence_card(DcmItem *item, const DcmTagKey &key) {
    DcmSequenceOfItems *sq = nullptr;
    if (item == nullptr || item->findAndGetSequence(key, sq).bad() || sq == nullptr) return -1;
    return (int64_t)sq->card();
}

extern "C" int32_t tsr_structure_set_count(TSRFile *file, TSRStructureSetCounts *counts, TSRStatus *status) {
    TSR_GUARD_BEGIN
    DcmItem *ds = file ? static_cast<DcmItem *>(tsr_file_dataset(file)) : nullptr;
    if (ds == nullptr || counts == nullptr) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "no file");
        return -1;
    }
    std::memset(counts, 0, sizeof(*counts));
    counts->rois = sequence_card(ds, DCM_StructureSetROISequence);
    counts->roiContours = sequence_card(ds, DCM_ROIContourSequence);
    counts->referencedFramesOfReference = sequence_card(ds, DCM_ReferencedFrameOfReferenceSequence);
    DcmSequenceOfItems *sq = nullptr;
    if (ds->findAndGetSequence(DCM_ROIContourSequence, sq).good()) {
        for_each_dcm_item(sq, [&](DcmItem *item) {
            int64_t n = sequence_card(item, DCM_ContourSequence);
            if (n > 0) counts->contours += n;
            if (n > counts->largestContourSequence) counts->largestContourSequence = n;
        });
    }
    // Contour Image Sequence items of the referenced series (3006,0010)/(3006,0012)/(3006,0014)/(3006,0016).
    DcmSequenceOfItems *frames = nullptr;
    if (ds->findAndGetSequence(DCM_ReferencedFrameOfReferenceSequence, frames).good()) {
        for_each_dcm_item(frames, [&](DcmItem *frame) {
            DcmSequenceOfItems *studies = nullptr;
            if (frame->findAndGetSequence(DCM_RTReferencedStudySequence, studies).bad()) return;
            for_each_dcm_item(studies, [&](DcmItem *study) {
                DcmSequenceOfItems *series = nullptr;
                if (study->findAndGetSequence(DCM_RTReferencedSeriesSequence, series).bad() || !series) return;
                counts->referencedSeries += series->card();
                for_each_dcm_item(series, [&](DcmItem *one) {
                    int64_t n = sequence_card(one, DCM_ContourImageSequence);
                    if (n > 0) counts->referencedImages += n;
                });
            });
        });
    }
    tsr_set_ok(status);
    return 0;
    TSR_GUARD_END(status, -1)
}

extern "C" TSRStructureSet *tsr_structure_set_read(TSRFile *file, TSRStatus *status) {
    TSR_GUARD_BEGIN
    DcmItem *ds = file ? static_cast<DcmItem *>(tsr_file_dataset(file)) : nullptr;
    if (ds == nullptr) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "no file");
        return nullptr;
    }
    std::unique_ptr<TSRStructureSet> set(new TSRStructureSet());
    OFCondition cond = set->iod.read(*ds);
    if (cond.bad()) {
        tsr_set_status(status, TSR_PARSE, std::string("dcmrt could not read the RT Structure Set: ") + cond.text());
        return nullptr;
    }
    for_each_item(set->iod.getStructureSetROISequence(),
                  [&](DRTStructureSetROISequence::Item &item) { set->rois.push_back(&item); });
    for_each_item(set->iod.getROIContourSequence(), [&](DRTROIContourSequence::Item &item) {
        set->roiContours.push_back(&item);
        std::vector<DRTContourSequence::Item *> list;
        for_each_item(item.getContourSequence(), [&](DRTContourSequence::Item &c) { list.push_back(&c); });
        set->contours.push_back(std::move(list));
    });
    for_each_item(set->iod.getReferencedFrameOfReferenceSequence(),
                  [&](DRTReferencedFrameOfReferenceSequence::Item &frame) {
        OFString frameUID;
        frame.getFrameOfReferenceUID(frameUID);
        const size_t before = set->series.size();
        for_each_item(frame.getRTReferencedStudySequence(), [&](DRTRTReferencedStudySequence::Item &study) {
            for_each_item(study.getRTReferencedSeriesSequence(), [&](DRTRTReferencedSeriesSequence::Item &s) {
                TSRReferencedSeries entry;
                std::memset(&entry, 0, sizeof(entry));
                copy_text(frameUID, entry.frameOfReferenceUID, sizeof(entry.frameOfReferenceUID));
                OFString uid;
                s.getSeriesInstanceUID(uid);
                copy_text(uid, entry.seriesInstanceUID, sizeof(entry.seriesInstanceUID));
                std::vector<std::string> images;
                for_each_item(s.getContourImageSequence(), [&](DRTContourImageSequence::Item &image) {
                    OFString sop;
                    image.getReferencedSOPInstanceUID(sop);
                    images.push_back(sop.c_str());
                });
                entry.imageCount = (int32_t)images.size();
                set->series.push_back(entry);
                set->seriesImages.push_back(std::move(images));
            });
        });
        if (set->series.size() == before) {
            // A frame of reference without series still names the frame the ROIs are drawn in.
            TSRReferencedSeries entry;
            std::memset(&entry, 0, sizeof(entry));
            copy_text(frameUID, entry.frameOfReferenceUID, sizeof(entry.frameOfReferenceUID));
            set->series.push_back(entry);
            set->seriesImages.emplace_back();
        }
    });
    tsr_set_ok(status);
    return set.release();
    TSR_GUARD_END(status, nullptr)
}

extern "C" void tsr_structure_set_free(TSRStructureSet *set) { delete set; }

extern "C" int32_t tsr_structure_set_roi_count(const TSRStructureSet *set) {
    return set ? (int32_t)set->rois.size() : -1;
}

extern "C" int32_t tsr_structure_set_roi(const TSRStructureSet *set, uint32_t index, TSRROI *out,
                                         TSRStatus *status) {
    TSR_GUARD_BEGIN
    if (!set || !out || index >= set->rois.size()) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "no such (3006,0020) Structure Set ROI Sequence item");
        return -1;
    }
    std::memset(out, 0, sizeof(*out));
    DRTStructureSetROISequence::Item *item = set->rois[index];
    Sint32 number = 0;
    OFString text;
    out->hasNumber = item->getROINumber(number).good() ? 1 : 0;
    out->number = number;
    if (item->getROIName(text).good()) copy_text(text, out->name, sizeof(out->name));
    if (item->getReferencedFrameOfReferenceUID(text).good())
        copy_text(text, out->frameOfReferenceUID, sizeof(out->frameOfReferenceUID));
    if (item->getROIGenerationAlgorithm(text).good())
        copy_text(text, out->generationAlgorithm, sizeof(out->generationAlgorithm));
    tsr_set_ok(status);
    return 0;
    TSR_GUARD_END(status, -1)
}

extern "C" int32_t tsr_structure_set_roi_contour_count(const TSRStructureSet *set) {
    return set ? (int32_t)set->roiContours.size() : -1;
}

extern "C" int32_t tsr_structure_set_roi_contour(const TSRStructureSet *set, uint32_t index, int32_t *referencedROI,
                                                 int32_t *contourCount, TSRStatus *status) {
    TSR_GUARD_BEGIN
    if (!set || index >= set->roiContours.size()) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "no such (3006,0039) ROI Contour Sequence item");
        return -1;
    }
    Sint32 number = 0;
    if (set->roiContours[index]->getReferencedROINumber(number).bad()) {
        tsr_set_status(status, TSR_NOT_FOUND,
                       "(3006,0039) ROI Contour Sequence item " + std::to_string(index + 1) +
                           " has no (3006,0084) Referenced ROI Number");
        return -1;
    }
    if (referencedROI) *referencedROI = number;
    if (contourCount) *contourCount = (int32_t)set->contours[index].size();
    tsr_set_ok(status);
    return 0;
    TSR_GUARD_END(status, -1)
}

extern "C" int32_t tsr_structure_set_contour(const TSRStructureSet *set, uint32_t roiContour, uint32_t contour,
                                             TSRContour *out, TSRStatus *status) {
    TSR_GUARD_BEGIN
    if (!set || !out || roiContour >= set->contours.size() || contour >= set->contours[roiContour].size()) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "no such (3006,0040) Contour Sequence item");
        return -1;
    }
    std::memset(out, 0, sizeof(*out));
    DRTContourSequence::Item *item = set->contours[roiContour][contour];
    OFString text;
    if (item->getContourGeometricType(text).good()) copy_text(text, out->geometricType, sizeof(out->geometricType));
    Sint32 points = 0;
    out->hasNumberOfPoints = item->getNumberOfContourPoints(points).good() ? 1 : 0;
    out->numberOfPoints = points;
    for_each_item(item->getContourImageSequence(), [&](DRTContourImageSequence::Item &image) {
        if (out->imageCount++ == 0 && image.getReferencedSOPInstanceUID(text).good())
            copy_text(text, out->firstImageSOPInstanceUID, sizeof(out->firstImageSOPInstanceUID));
    });
    tsr_set_ok(status);
    return 0;
    TSR_GUARD_END(status, -1)
}

extern "C" int64_t tsr_structure_set_contour_data(const TSRStructureSet *set, uint32_t roiContour, uint32_t contour,
                                                  double *values, size_t capacity, TSRStatus *status) {
    TSR_GUARD_BEGIN
    if (!set || roiContour >= set->contours.size() || contour >= set->contours[roiContour].size()) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "no such (3006,0040) Contour Sequence item");
        return -1;
    }
    OFVector<Float64> data;
    OFCondition cond = set->contours[roiContour][contour]->getContourData(data);
    if (cond.bad()) {
        // An absent or empty value is zero points; anything else is a value that is no number.
        OFString text;
        set->contours[roiContour][contour]->getContourData(text, -1);
        if (text.empty()) {
            tsr_set_ok(status);
            return 0;
        }
        tsr_set_status(status, TSR_PARSE, std::string("(3006,0050) Contour Data is not a list of numbers: ") +
                                              cond.text());
        return -1;
    }
    size_t n = data.size() < capacity ? data.size() : capacity;
    for (size_t i = 0; i < n; ++i) values[i] = data[i];
    tsr_set_ok(status);
    return (int64_t)data.size();
    TSR_GUARD_END(status, -1)
}

extern "C" int32_t tsr_structure_set_referenced_series_count(const TSRStructureSet *set) {
    return set ? (int32_t)set->series.size() : -1;
}

extern "C" int32_t tsr_structure_set_referenced_series(const TSRStructureSet *set, uint32_t index,
                                                       TSRReferencedSeries *out) {
    if (!set || !out || index >= set->series.size()) return -1;
    *out = set->series[index];
    return 0;
}

extern "C" int32_t tsr_structure_set_referenced_image(const TSRStructureSet *set, uint32_t series, uint32_t image,
                                                      char *buffer, size_t capacity) {
    if (!set || series >= set->seriesImages.size() || image >= set->seriesImages[series].size() || !buffer ||
        capacity == 0)
        return -1;
    const std::string &uid = set->seriesImages[series][image];
    size_t n = uid.size() < capacity - 1 ? uid.size() : capacity - 1;
    std::memcpy(buffer, uid.data(), n);
    buffer[n] = 0;
    return (int32_t)uid.size();
}
