// Writing side of the DCMTK shim: datasets in any supported transfer syntax, and DICOM SEG through dcmseg.
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dctk.h"
#include "dcmtk/dcmdata/dcrlerp.h"
#include "dcmtk/dcmjpeg/djrplol.h"
#include "dcmtk/dcmjpeg/djrploss.h"
#include "dcmtk/dcmjpls/djrparam.h"
#include "dcmtk/dcmseg/segdoc.h"
#include "dcmtk/dcmseg/segment.h"
#include "dcmtk/dcmfg/fgderimg.h"
#include "dcmtk/dcmfg/fgfracon.h"
#include "dcmtk/dcmfg/fgpixmsr.h"
#include "dcmtk/dcmfg/fgplanor.h"
#include "dcmtk/dcmfg/fgplanpo.h"
#include "dcmtk/dcmiod/iodreferences.h"

#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"

#include <memory>
#include <string>
#include <vector>

#include "shim_internal.h"

struct TSRWriter {
    DcmFileFormat format;
};

static DcmItem *as_item(TSRItem item) { return static_cast<DcmItem *>(item); }

extern "C" TSRWriter *tsr_writer_new(void) {
    TSR_GUARD_BEGIN
    tsr_register_codecs();
    return new TSRWriter();
    TSR_GUARD_END(nullptr, nullptr)
}

extern "C" void tsr_writer_free(TSRWriter *writer) {
    TSR_GUARD_BEGIN
    delete writer;
    TSR_GUARD_END_VOID(nullptr)
}

extern "C" TSRItem tsr_writer_dataset(TSRWriter *writer) {
    TSR_GUARD_BEGIN
    return writer ? static_cast<DcmItem *>(writer->format.getDataset()) : nullptr;
    TSR_GUARD_END(nullptr, nullptr)
}

static std::string tag_text(uint16_t g, uint16_t e) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "(%04X,%04X)", g, e);
    return buf;
}

extern "C" int32_t tsr_item_put_string(TSRItem item, uint16_t group, uint16_t element, const char *value,
                                       TSRStatus *status) {
    TSR_GUARD_BEGIN
    if (!item || !value) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "null argument");
        return TSR_INVALID_ARGUMENT;
    }
    OFCondition c = as_item(item)->putAndInsertString(DcmTag(group, element), value);
    if (c.bad()) {
        tsr_set_status(status, TSR_WRITE, "cannot put " + tag_text(group, element) + " = '" + value + "': " + c.text());
        return TSR_WRITE;
    }
    tsr_set_ok(status);
    return TSR_OK;
    TSR_GUARD_END(status, TSR_INTERNAL)
}

extern "C" int32_t tsr_item_put_uint16(TSRItem item, uint16_t group, uint16_t element, uint16_t value,
                                       TSRStatus *status) {
    TSR_GUARD_BEGIN
    if (!item) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "null item");
        return TSR_INVALID_ARGUMENT;
    }
    OFCondition c = as_item(item)->putAndInsertUint16(DcmTag(group, element), value);
    if (c.bad()) {
        tsr_set_status(status, TSR_WRITE, "cannot put " + tag_text(group, element) + ": " + c.text());
        return TSR_WRITE;
    }
    tsr_set_ok(status);
    return TSR_OK;
    TSR_GUARD_END(status, TSR_INTERNAL)
}

extern "C" int32_t tsr_item_put_uint16s(TSRItem item, uint16_t group, uint16_t element, const uint16_t *values,
                                        size_t count, TSRStatus *status) {
    TSR_GUARD_BEGIN
    if (!item || (!values && count > 0)) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "null argument");
        return TSR_INVALID_ARGUMENT;
    }
    DcmUnsignedShort *el = new DcmUnsignedShort(DcmTag(group, element, EVR_US));
    OFCondition c = el->putUint16Array(values, (unsigned long)count);
    if (c.good()) c = as_item(item)->insert(el, OFTrue);
    if (c.bad()) {
        delete el;
        tsr_set_status(status, TSR_WRITE, "cannot put " + tag_text(group, element) + ": " + c.text());
        return TSR_WRITE;
    }
    tsr_set_ok(status);
    return TSR_OK;
    TSR_GUARD_END(status, TSR_INTERNAL)
}

extern "C" TSRItem tsr_item_append_item(TSRItem item, uint16_t group, uint16_t element, TSRStatus *status) {
    TSR_GUARD_BEGIN
    if (!item) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "null item");
        return nullptr;
    }
    DcmItem *created = nullptr;
    OFCondition c = as_item(item)->findOrCreateSequenceItem(DcmTag(group, element), created, -2);
    if (c.bad() || !created) {
        tsr_set_status(status, TSR_WRITE, "cannot add an item to " + tag_text(group, element) + ": " + c.text());
        return nullptr;
    }
    tsr_set_ok(status);
    return created;
    TSR_GUARD_END(status, nullptr)
}

extern "C" int32_t tsr_item_put_pixel_data(TSRItem item, const void *bytes, size_t length, uint16_t bitsAllocated,
                                           TSRStatus *status) {
    TSR_GUARD_BEGIN
    if (!item || !bytes) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "null argument");
        return TSR_INVALID_ARGUMENT;
    }
    OFCondition c;
    if (bitsAllocated == 16) {
        c = as_item(item)->putAndInsertUint16Array(DCM_PixelData, static_cast<const Uint16 *>(bytes),
                                                   (unsigned long)(length / 2));
    } else {
        c = as_item(item)->putAndInsertUint8Array(DCM_PixelData, static_cast<const Uint8 *>(bytes),
                                                  (unsigned long)length);
    }
    if (c.bad()) {
        tsr_set_status(status, TSR_WRITE, std::string("cannot put (7FE0,0010) Pixel Data: ") + c.text());
        return TSR_WRITE;
    }
    tsr_set_ok(status);
    return TSR_OK;
    TSR_GUARD_END(status, TSR_INTERNAL)
}

// DCMTK 3.6.7's JPEG-LS encoder leaves the pad byte of an odd-length codestream (after the EOI marker FF D9)
// uninitialised, so identical input gave different files. Zero it: the same bytes for the same pixels.
static void zero_pad_after_eoi(DcmDataset *ds, E_TransferSyntax ts, const DcmRepresentationParameter *param) {
    DcmElement *element = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, element).bad() || !element) return;
    DcmPixelSequence *sequence = nullptr;
    if (OFstatic_cast(DcmPixelData *, element)->getEncapsulatedRepresentation(ts, param, sequence).bad() || !sequence)
        return;
    for (unsigned long i = 1; i < sequence->card(); ++i) {
        DcmPixelItem *item = nullptr;
        Uint8 *bytes = nullptr;
        if (sequence->getItem(item, i).bad() || !item || item->getUint8Array(bytes).bad() || !bytes) continue;
        const Uint32 n = item->getLength();
        if (n >= 3 && bytes[n - 3] == 0xFF && bytes[n - 2] == 0xD9) bytes[n - 1] = 0;
    }
}

extern "C" int32_t tsr_writer_save(TSRWriter *writer, const char *path, const char *transferSyntaxUID,
                                   uint16_t nearLossless, TSRStatus *status) {
    TSR_GUARD_BEGIN
    if (!writer || !path || !transferSyntaxUID) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "null argument");
        return TSR_INVALID_ARGUMENT;
    }
    DcmXfer xfer(transferSyntaxUID);
    const E_TransferSyntax ts = xfer.getXfer();
    if (ts == EXS_Unknown) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, std::string("unknown transfer syntax ") + transferSyntaxUID);
        return TSR_INVALID_ARGUMENT;
    }
    DcmDataset *ds = writer->format.getDataset();
    std::unique_ptr<DcmRepresentationParameter> param;
    switch (ts) {
    case EXS_JPEGProcess14SV1: param.reset(new DJ_RPLossless(1, 0)); break;
    case EXS_JPEGProcess1: case EXS_JPEGProcess2_4: param.reset(new DJ_RPLossy(95)); break;
    case EXS_JPEGLSLossless: param.reset(new DJLSRepresentationParameter(0, OFTrue)); break;
    case EXS_JPEGLSLossy: param.reset(new DJLSRepresentationParameter(nearLossless, OFFalse)); break;
    default: break;
    }
    if (xfer.isEncapsulated()) {
        OFCondition c = ds->chooseRepresentation(ts, param.get());
        if (c.bad() || !ds->canWriteXfer(ts)) {
            tsr_set_status(status, TSR_WRITE,
                           std::string("cannot encode pixel data as ") + xfer.getXferName() + ": " + c.text());
            return TSR_WRITE;
        }
        zero_pad_after_eoi(ds, ts, param.get());
    } else if (ds->chooseRepresentation(ts, nullptr).bad()) {
        tsr_set_status(status, TSR_WRITE, std::string("cannot convert to ") + xfer.getXferName());
        return TSR_WRITE;
    }
    OFCondition c = writer->format.saveFile(OFFilename(path), ts, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0,
                                            0, EWM_fileformat);
    if (c.bad()) {
        tsr_set_status(status, TSR_IO, std::string("cannot write ") + path + ": " + c.text());
        return TSR_IO;
    }
    tsr_set_ok(status);
    return TSR_OK;
    TSR_GUARD_END(status, TSR_INTERNAL)
}

// MARK: - DICOM SEG

namespace {

const char *or_default(const char *value, const char *fallback) { return value && *value ? value : fallback; }

std::string position_string(DcmDataset *ds, int index) {
    OFString v;
    ds->findAndGetOFString(DCM_ImagePositionPatient, v, index);
    return v.c_str();
}

int32_t fail(TSRStatus *status, int32_t code, const std::string &what, const OFCondition &c) {
    tsr_set_status(status, code, what + ": " + c.text());
    return code;
}

} // namespace

extern "C" int32_t tsr_segmentation_write(const TSRSegmentationSpec *spec, const char *path, TSRStatus *status) {
    TSR_GUARD_BEGIN
    tsr_register_codecs();
    if (!spec || !path || !spec->sourcePaths || spec->sourceCount == 0 || !spec->frames || spec->segmentCount == 0) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "a segmentation needs source images, frames and segments");
        return TSR_INVALID_ARGUMENT;
    }
    // Read the source images' headers: geometry and references.
    std::vector<std::unique_ptr<DcmFileFormat>> sources;
    for (uint32_t k = 0; k < spec->sourceCount; ++k) {
        std::unique_ptr<DcmFileFormat> ff(new DcmFileFormat());
        OFCondition c = ff->loadFile(OFFilename(spec->sourcePaths[k]), EXS_Unknown, EGL_noChange, 256);
        if (c.bad()) return fail(status, TSR_IO, std::string("cannot read source image ") + spec->sourcePaths[k], c);
        sources.push_back(std::move(ff));
    }
    DcmDataset *first = sources[0]->getDataset();

    IODGeneralEquipmentModule::EquipmentInfo equipment(or_default(spec->manufacturer, "Tessera"),
                                                       or_default(spec->serialNumber, "0"),
                                                       or_default(spec->modelName, "tessera"),
                                                       or_default(spec->softwareVersions, "0"));
    ContentIdentificationMacro content(or_default(spec->instanceNumber, "1"), or_default(spec->contentLabel, "SEGMENTATION"),
                                       or_default(spec->seriesDescription, "Segmentation"),
                                       or_default(spec->contentCreator, "Tessera^Pipeline"));
    DcmSegmentation *raw = nullptr;
    OFCondition c = spec->fractional
                        ? DcmSegmentation::createFractionalSegmentation(raw, spec->rows, spec->columns,
                                                                        DcmSegTypes::SFT_PROBABILITY,
                                                                        spec->maxFractionalValue, equipment, content)
                        : DcmSegmentation::createBinarySegmentation(raw, spec->rows, spec->columns, equipment, content);
    if (c.bad() || !raw) return fail(status, TSR_WRITE, "dcmseg could not create the segmentation", c);
    std::unique_ptr<DcmSegmentation> seg(raw);
    seg->setCheckFGOnWrite(OFTrue);

    c = seg->importFromSourceImage(*first, OFTrue);
    if (c.bad()) return fail(status, TSR_WRITE, "cannot import patient/study/frame of reference from the source", c);
    if (spec->seriesInstanceUID) seg->getSeries().setSeriesInstanceUID(spec->seriesInstanceUID);
    else seg->getSeries().setSeriesInstanceUID(""); // dcmseg creates one
    seg->getSeries().setSeriesNumber(or_default(spec->seriesNumber, "100"));
    seg->getSeries().setSeriesDescription(or_default(spec->seriesDescription, "Segmentation"));
    if (spec->sopInstanceUID) seg->getSOPCommon().setSOPInstanceUID(spec->sopInstanceUID);

    // Segments.
    for (uint32_t s = 0; s < spec->segmentCount; ++s) {
        const TSRSegmentDescription &d = spec->segments[s];
        DcmSegment *segment = nullptr;
        CodeSequenceMacro category(or_default(d.categoryCode, "91723000"), or_default(d.categoryScheme, "SCT"),
                                   or_default(d.categoryMeaning, "Anatomical Structure"));
        CodeSequenceMacro type(or_default(d.typeCode, "91723000"), or_default(d.typeScheme, "SCT"),
                               or_default(d.typeMeaning, "Anatomical Structure"));
        const std::string algo = or_default(d.algorithmType, "MANUAL");
        DcmSegTypes::E_SegmentAlgoType algoType =
            algo == "AUTOMATIC" ? DcmSegTypes::SAT_AUTOMATIC
                                : (algo == "SEMIAUTOMATIC" ? DcmSegTypes::SAT_SEMIAUTOMATIC : DcmSegTypes::SAT_MANUAL);
        c = DcmSegment::create(segment, or_default(d.label, "Segment"), category, type, algoType,
                               algoType == DcmSegTypes::SAT_MANUAL ? "" : or_default(d.algorithmName, "Tessera"));
        if (c.bad() || !segment) return fail(status, TSR_WRITE, std::string("cannot create segment ") + d.label, c);
        Uint16 number = 0;
        c = seg->addSegment(segment, number);
        if (c.bad()) {
            delete segment;
            return fail(status, TSR_WRITE, std::string("cannot add segment ") + d.label, c);
        }
    }

    // Shared functional groups: orientation and pixel measures from the first source image.
    OFString iop[6];
    for (int i = 0; i < 6; ++i) first->findAndGetOFString(DCM_ImageOrientationPatient, iop[i], i);
    std::unique_ptr<FGPlaneOrientationPatient> orientation(
        FGPlaneOrientationPatient::createMinimal(iop[0], iop[1], iop[2], iop[3], iop[4], iop[5]));
    if (!orientation) {
        tsr_set_status(status, TSR_WRITE, "the source image has no valid (0020,0037) Image Orientation (Patient)");
        return TSR_WRITE;
    }
    seg->addForAllFrames(*orientation);
    FGPixelMeasures measures;
    OFString spacing, thickness;
    first->findAndGetOFStringArray(DCM_PixelSpacing, spacing);
    first->findAndGetOFString(DCM_SliceThickness, thickness);
    measures.setPixelSpacing(spacing);
    measures.setSliceThickness(thickness.empty() ? "1" : thickness);
    seg->addForAllFrames(measures);

    // Dimensions: segment number, then position.
    char dimensionUID[100];
    if (spec->seriesInstanceUID) {
        std::snprintf(dimensionUID, sizeof(dimensionUID), "%.60s.1", spec->seriesInstanceUID);
    } else {
        dcmGenerateUniqueIdentifier(dimensionUID, SITE_INSTANCE_UID_ROOT);
    }
    seg->getDimensions().addDimensionIndex(DCM_ReferencedSegmentNumber, dimensionUID,
                                           DCM_SegmentIdentificationSequence, "ReferencedSegmentNumber");
    seg->getDimensions().addDimensionIndex(DCM_ImagePositionPatient, dimensionUID, DCM_PlanePositionSequence,
                                           "ImagePositionPatient");

    // Frames.
    const size_t plane = (size_t)spec->rows * spec->columns;
    size_t written = 0;
    CodeSequenceMacro derivationCode("113076", "DCM", "Segmentation");
    CodeSequenceMacro purpose("121322", "DCM", "Source image for image processing operation");
    for (uint32_t s = 0; s < spec->segmentCount; ++s) {
        for (uint32_t k = 0; k < spec->sourceCount; ++k) {
            const uint8_t *frame = spec->frames + ((size_t)s * spec->sourceCount + k) * plane;
            if (spec->skipEmptyFrames) {
                bool any = false;
                for (size_t i = 0; i < plane && !any; ++i) any = frame[i] != 0;
                if (!any) continue;
            }
            DcmDataset *src = sources[k]->getDataset();
            std::unique_ptr<FGPlanePosPatient> position(FGPlanePosPatient::createMinimal(
                position_string(src, 0).c_str(), position_string(src, 1).c_str(), position_string(src, 2).c_str()));
            FGFrameContent frameContent;
            frameContent.setDimensionIndexValues(s + 1, 0);
            frameContent.setDimensionIndexValues(k + 1, 1);
            FGDerivationImage derivation;
            DerivationImageItem *derivationItem = nullptr;
            c = derivation.addDerivationImageItem(derivationCode, "", derivationItem);
            SourceImageItem *sourceItem = nullptr;
            if (c.good()) c = derivationItem->addSourceImageItem(src, purpose, sourceItem);
            if (c.bad() || !position) return fail(status, TSR_WRITE, "cannot describe frame of source " + std::to_string(k + 1), c);
            OFVector<FGBase *> perFrame;
            perFrame.push_back(position.get());
            perFrame.push_back(&frameContent);
            perFrame.push_back(&derivation);
            std::vector<Uint8> copy(frame, frame + plane);
            c = seg->addFrame(copy.data(), (Uint16)(s + 1), perFrame);
            if (c.bad()) return fail(status, TSR_WRITE, "cannot add frame for source " + std::to_string(k + 1), c);
            written++;
        }
    }
    if (written == 0) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "every frame is empty: nothing to write");
        return TSR_INVALID_ARGUMENT;
    }

    // Common Instance Reference: the referenced series.
    IODReferences references;
    for (auto &src : sources) {
        IODImageReference *ref = new IODImageReference(IODReference::LEVEL_STUDY);
        if (!ref->readFromItem(*src->getDataset()) || !references.add(ref)) delete ref;
    }
    OFString studyUID;
    first->findAndGetOFString(DCM_StudyInstanceUID, studyUID);
    seg->getCommonInstanceReference().addReferences(references, studyUID);

    DcmFileFormat out;
    c = seg->writeDataset(*out.getDataset());
    if (c.bad()) return fail(status, TSR_WRITE, "dcmseg could not write the segmentation", c);
    DcmDataset *ds = out.getDataset();
    // Dates and times are the caller's, so the same input gives the same file.
    if (spec->contentDate) {
        ds->putAndInsertString(DCM_ContentDate, spec->contentDate);
        ds->putAndInsertString(DCM_SeriesDate, spec->contentDate);
        ds->putAndInsertString(DCM_InstanceCreationDate, spec->contentDate);
    }
    if (spec->contentTime) {
        ds->putAndInsertString(DCM_ContentTime, spec->contentTime);
        ds->putAndInsertString(DCM_SeriesTime, spec->contentTime);
        ds->putAndInsertString(DCM_InstanceCreationTime, spec->contentTime);
    }
    c = out.saveFile(OFFilename(path), EXS_LittleEndianExplicit, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0, 0,
                     EWM_fileformat);
    if (c.bad()) return fail(status, TSR_IO, std::string("cannot write ") + path, c);
    tsr_set_ok(status);
    return TSR_OK;
    TSR_GUARD_END(status, TSR_INTERNAL)
}
