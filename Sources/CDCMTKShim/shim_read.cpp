// Reading side of the DCMTK shim: files, attributes, sequences, pixel data.
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dctk.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmdata/dcrleerg.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpeg/djencode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/dcmjpls/djencode.h"
#include "dcmtk/oflog/oflog.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "shim_internal.h"
#include "tessera_dcmtk.h"

// MARK: - status helpers

void tsr_set_status(TSRStatus *status, int32_t code, const std::string &message) {
    if (!status) return;
    status->code = code;
    std::snprintf(status->message, sizeof(status->message), "%s", message.c_str());
}

void tsr_set_exception(TSRStatus *status, const char *what) {
    tsr_set_status(status, TSR_INTERNAL,
                   std::string("DCMTK/OpenJPEG failed (") + (what ? what : "?") +
                       "): a size in the file is too large to handle, or the file is corrupt");
}

void tsr_set_ok(TSRStatus *status) {
    if (!status) return;
    status->code = TSR_OK;
    status->message[0] = 0;
}

static int32_t copy_out(const std::string &text, char *buffer, size_t capacity) {
    if (buffer && capacity > 0) {
        size_t n = text.size() < capacity - 1 ? text.size() : capacity - 1;
        std::memcpy(buffer, text.data(), n);
        buffer[n] = 0;
    }
    return (int32_t)text.size();
}

// MARK: - initialisation

static std::once_flag g_init_once;

void tsr_register_codecs() {
    std::call_once(g_init_once, []() {
        // Quiet by default: DCMTK prints nothing unless tsr_initialize(verbose) asks for it.
        OFLog::configure(OFLogger::OFF_LOG_LEVEL);
        DcmRLEDecoderRegistration::registerCodecs();
        DcmRLEEncoderRegistration::registerCodecs();
        DJDecoderRegistration::registerCodecs();
        // Never invent new SOP Instance UIDs when encoding: output must be deterministic for a seed.
        DJEncoderRegistration::registerCodecs(ECC_lossyYCbCr, EUC_never);
        DJLSDecoderRegistration::registerCodecs();
        // Zero-pad odd-length JPEG-LS streams after EOI: the 0xFF padding path leaves the pad byte uninitialised in
        // DCMTK 3.6.7, which made output differ from run to run.
        DJLSEncoderRegistration::registerCodecs(0, 0, 0, 0, OFTrue, 0, OFTrue, EJLSUC_never, OFFalse,
                                                DJLSCodecParameter::interleaveDefault, OFFalse);
    });
}

extern "C" void tsr_initialize(int verbose) {
    TSR_GUARD_BEGIN
    tsr_register_codecs();
    OFLog::configure(verbose > 1 ? OFLogger::DEBUG_LOG_LEVEL : (verbose ? OFLogger::INFO_LOG_LEVEL : OFLogger::OFF_LOG_LEVEL));
    TSR_GUARD_END_VOID(nullptr)
}

// MARK: - files

struct TSRFile {
    DcmFileFormat format;
    std::string path;
    E_TransferSyntax originalXfer = EXS_Unknown;
    std::vector<uint8_t> decoded; // pixel data decoded outside DCMTK (JPEG 2000)
};

// The longest value a file of `fileSize` bytes can hold: its size, or kDeflateRatio times it when the dataset is
// deflated (zlib expands at most 1032:1). A longer (0xFFFFFFFF: undefined) length is a lie that would make DCMTK
// allocate it before noticing the end of the file.
static const uint64_t kDeflateRatio = 1100;

static uint64_t value_length_bound(uint64_t fileSize, bool deflated) {
    return deflated ? fileSize * kDeflateRatio : fileSize;
}

// The first element (depth first) whose defined value length exceeds `bound`; false when there is none.
static bool find_oversized_element(DcmItem *item, uint64_t bound, DcmTagKey &tag, Uint32 &length) {
    DcmStack stack;
    while (item->nextObject(stack, OFTrue).good()) {
        DcmObject *object = stack.top();
        if (!object || !object->isLeaf()) continue;
        const Uint32 n = object->getLengthField();
        if (n != DCM_UndefinedLength && n > bound) {
            tag = object->getTag();
            length = n;
            return true;
        }
    }
    return false;
}

static bool has_dicm_preamble(const char *path, bool &readable, bool &empty) {
    readable = false;
    empty = false;
    FILE *f = std::fopen(path, "rb");
    if (!f) return false;
    readable = true;
    unsigned char head[132];
    size_t n = std::fread(head, 1, sizeof(head), f);
    std::fclose(f);
    if (n == 0) empty = true;
    return n == 132 && std::memcmp(head + 128, "DICM", 4) == 0;
}

extern "C" TSRFile *tsr_file_open(const char *path, uint32_t maxReadLength, TSRStatus *status) {
    TSR_GUARD_BEGIN
    tsr_register_codecs();
    bool readable = false, empty = false;
    const bool preamble = has_dicm_preamble(path, readable, empty);
    if (!readable) {
        int err = errno;
        tsr_set_status(status, err == ENOENT ? TSR_NOT_FOUND : TSR_IO,
                       std::string("cannot open file: ") + std::strerror(err));
        return nullptr;
    }
    if (empty) {
        tsr_set_status(status, TSR_NOT_DICOM, "the file is empty");
        return nullptr;
    }
    struct stat info;
    if (stat(path, &info) != 0 || info.st_size < 0) {
        int err = errno;
        tsr_set_status(status, TSR_IO, std::string("cannot stat file: ") + std::strerror(err));
        return nullptr;
    }
    const uint64_t fileSize = static_cast<uint64_t>(info.st_size);
    std::unique_ptr<TSRFile> file(new TSRFile());
    file->path = path;
    // "Read everything" (0) still leaves values longer than any deflated dataset of this size could hold on disk,
    // so a length field can never make DCMTK allocate more than the bound below; they are refused after loading.
    const uint64_t eagerLimit = std::min<uint64_t>(value_length_bound(fileSize, true), 0xFFFFFFFEU);
    const Uint32 readLength = maxReadLength == 0 ? static_cast<Uint32>(eagerLimit) : maxReadLength;
    OFCondition cond = file->format.loadFile(OFFilename(path), EXS_Unknown, EGL_noChange, readLength,
                                             preamble ? ERM_fileOnly : ERM_autoDetect);
    if (cond.bad()) {
        tsr_set_status(status, preamble ? TSR_PARSE : TSR_NOT_DICOM,
                       preamble ? std::string("DCMTK could not parse the file: ") + cond.text()
                                : std::string("no DICM preamble and no parsable dataset (") + cond.text() + ")");
        return nullptr;
    }
    DcmDataset *ds = file->format.getDataset();
    if (!preamble) {
        // Without the Part 10 preamble DCMTK will "parse" nearly anything; demand an SOP Class UID.
        OFString sopClass;
        if (ds->findAndGetOFString(DCM_SOPClassUID, sopClass).bad() || sopClass.empty()) {
            tsr_set_status(status, TSR_NOT_DICOM, "no DICM preamble and no (0008,0016) SOP Class UID");
            return nullptr;
        }
    }
    file->originalXfer = ds->getOriginalXfer();
    const bool deflated = DcmXfer(file->originalXfer).getStreamCompression() != ESC_none;
    DcmTagKey oversized;
    Uint32 declared = 0;
    if (find_oversized_element(file->format.getMetaInfo(), fileSize, oversized, declared) ||
        find_oversized_element(ds, value_length_bound(fileSize, deflated), oversized, declared)) {
        tsr_set_status(status, TSR_PARSE,
                       std::string("element ") + oversized.toString().c_str() + " declares a value of " +
                           std::to_string(declared) + " bytes, more than a file of " + std::to_string(fileSize) +
                           " bytes can hold");
        return nullptr;
    }
    tsr_set_ok(status);
    return file.release();
    TSR_GUARD_END(status, nullptr)
}

extern "C" void tsr_file_free(TSRFile *file) {
    TSR_GUARD_BEGIN
    delete file;
    TSR_GUARD_END_VOID(nullptr)
}

extern "C" TSRItem tsr_file_dataset(TSRFile *file) {
    TSR_GUARD_BEGIN
    return file ? static_cast<DcmItem *>(file->format.getDataset()) : nullptr;
    TSR_GUARD_END(nullptr, nullptr)
}

extern "C" TSRItem tsr_file_meta_header(TSRFile *file) {
    TSR_GUARD_BEGIN
    return file ? static_cast<DcmItem *>(file->format.getMetaInfo()) : nullptr;
    TSR_GUARD_END(nullptr, nullptr)
}

extern "C" int32_t tsr_file_transfer_syntax(TSRFile *file, char *buffer, size_t capacity) {
    TSR_GUARD_BEGIN
    if (!file) return -1;
    OFString uid;
    if (file->format.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, uid).good() && !uid.empty()) {
        return copy_out(uid.c_str(), buffer, capacity);
    }
    DcmXfer xfer(file->originalXfer);
    return copy_out(xfer.getXferID(), buffer, capacity);
    TSR_GUARD_END(nullptr, -1)
}

static bool is_jpeg2000(const std::string &uid) {
    return uid == "1.2.840.10008.1.2.4.90" || uid == "1.2.840.10008.1.2.4.91" ||
           uid == "1.2.840.10008.1.2.4.92" || uid == "1.2.840.10008.1.2.4.93" ||
           uid == "1.2.840.10008.1.2.4.201" || uid == "1.2.840.10008.1.2.4.202" ||
           uid == "1.2.840.10008.1.2.4.203";
}

// DCMTK 3.6.7's JPEG codec looks for the frame header (SOF) in the first fragment before it decodes, walking the
// marker segments; on a TEM marker (FF01) its walk stops advancing and never ends (found by the dicom-shim fuzzer).
// This walks the first fragment by the same steps and says whether that walk would reach a TEM marker, so such a
// stream is refused before DCMTK sees it. Returns true when the walk ends (SOF found, end of data, or a byte DCMTK
// gives up on) without meeting FF01.
static bool jpeg_header_walk_terminates(const Uint8 *data, Uint32 length) {
    Uint32 offset = 0;
    while (data && offset + 4 < length) {
        const unsigned marker = (unsigned(data[offset]) << 8) | data[offset + 1];
        const unsigned segment = (unsigned(data[offset + 2]) << 8) | data[offset + 3];
        if (marker == 0xff01) return false;  // DCMTK would loop here forever
        const bool frameHeader = marker >= 0xffc0 && marker <= 0xffcf && marker != 0xffc4 && marker != 0xffc8 &&
                                 marker != 0xffcc;
        if (frameHeader) return true;
        if ((marker >= 0xffd0 && marker <= 0xffd9)) {
            offset += 2;  // RSTn, SOI, EOI: no length
        } else if (marker == 0xffff) {
            offset += 1;  // fill byte
        } else if (marker >= 0xffc0) {
            offset += segment + 2;  // DHT, JPG, DAC, SOS, DQT, DNL, DRI, DHP, EXP, APPn, JPGn, COM
        } else if (data[offset] == 0xff && data[offset + 1] > 2 && data[offset + 1] <= 0xbf) {
            offset += 2;  // reserved markers
        } else {
            return true;  // DCMTK gives up (no bit depth): its own error follows
        }
    }
    return true;
}

/// Refuses an encapsulated JPEG stream whose first fragment would hang DCMTK's header scan.
static bool jpeg_stream_is_safe(DcmDataset *ds) {
    DcmElement *element = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, element).bad() || !element) return true;
    DcmPixelData *pixels = OFstatic_cast(DcmPixelData *, element);
    DcmPixelSequence *sequence = nullptr;
    E_TransferSyntax xfer = EXS_Unknown;
    const DcmRepresentationParameter *parameter = nullptr;
    pixels->getOriginalRepresentationKey(xfer, parameter);
    if (pixels->getEncapsulatedRepresentation(xfer, parameter, sequence).bad() || !sequence) return true;
    DcmPixelItem *item = nullptr;
    if (sequence->card() < 2 || sequence->getItem(item, 1).bad() || !item) return true;
    Uint8 *data = nullptr;
    if (item->getUint8Array(data).bad()) return true;
    return jpeg_header_walk_terminates(data, item->getLength());
}

extern "C" int32_t tsr_file_pixel_data(TSRFile *file, const uint8_t **bytes, size_t *length, TSRStatus *status) {
    TSR_GUARD_BEGIN
    if (!file || !bytes || !length) {
        tsr_set_status(status, TSR_INVALID_ARGUMENT, "null argument");
        return TSR_INVALID_ARGUMENT;
    }
    DcmDataset *ds = file->format.getDataset();
    char uidBuffer[128];
    tsr_file_transfer_syntax(file, uidBuffer, sizeof(uidBuffer));
    const std::string uid = uidBuffer;
    if (!ds->tagExists(DCM_PixelData)) {
        tsr_set_status(status, TSR_NOT_FOUND, "the file has no (7FE0,0010) Pixel Data");
        return TSR_NOT_FOUND;
    }
    if (is_jpeg2000(uid)) {
        if (file->decoded.empty()) {
            // Decoded into a local buffer so that a failure (or an exception) never leaves half a frame behind.
            std::vector<uint8_t> decoded;
            int32_t rc = tsr_decode_jpeg2000(ds, decoded, status);
            if (rc != TSR_OK) return rc;
            file->decoded.swap(decoded);
        }
        *bytes = file->decoded.data();
        *length = file->decoded.size();
        tsr_set_ok(status);
        return TSR_OK;
    }
    DcmXfer xfer(file->originalXfer);
    if (xfer.isEncapsulated() && uid.rfind("1.2.840.10008.1.2.4.", 0) == 0 && !jpeg_stream_is_safe(ds)) {
        tsr_set_status(status, TSR_DECODE, "the JPEG stream's header holds a TEM marker (FF01) before its frame "
                                           "header: corrupt data, refused (DCMTK 3.6.7's decoder would not return)");
        return TSR_DECODE;
    }
    if (xfer.isEncapsulated()) {
        OFCondition cond = ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
        if (cond.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit)) {
            const bool known = cond != EC_CannotChangeRepresentation;
            tsr_set_status(status, known ? TSR_DECODE : TSR_UNSUPPORTED_SYNTAX,
                           std::string("cannot decode pixel data in transfer syntax ") + uid + " (" +
                               xfer.getXferName() + "): " + cond.text());
            return known ? TSR_DECODE : TSR_UNSUPPORTED_SYNTAX;
        }
    }
    DcmElement *element = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, element).bad() || !element) {
        tsr_set_status(status, TSR_NOT_FOUND, "the file has no (7FE0,0010) Pixel Data");
        return TSR_NOT_FOUND;
    }
    Uint16 bitsAllocated = 16;
    ds->findAndGetUint16(DCM_BitsAllocated, bitsAllocated);
    OFCondition cond;
    if (bitsAllocated == 16) {
        Uint16 *words = nullptr;
        cond = element->getUint16Array(words);
        *bytes = reinterpret_cast<const uint8_t *>(words);
    } else {
        Uint8 *raw = nullptr;
        cond = element->getUint8Array(raw);
        *bytes = raw;
    }
    if (cond.bad() || !*bytes) {
        tsr_set_status(status, TSR_PARSE, std::string("cannot read (7FE0,0010) Pixel Data: ") + cond.text());
        return TSR_PARSE;
    }
    *length = element->getLength();
    tsr_set_ok(status);
    return TSR_OK;
    TSR_GUARD_END(status, TSR_INTERNAL)
}

extern "C" void tsr_file_release_pixel_data(TSRFile *file) {
    TSR_GUARD_BEGIN
    if (!file) return;
    file->decoded.clear();
    file->decoded.shrink_to_fit();
    DcmElement *element = nullptr;
    DcmDataset *ds = file->format.getDataset();
    if (ds->findAndGetElement(DCM_PixelData, element).good() && element) element->compact();
    TSR_GUARD_END_VOID(nullptr)
}

// MARK: - attributes

static DcmItem *as_item(TSRItem item) { return static_cast<DcmItem *>(item); }

static std::string trim(const OFString &s) {
    std::string out = s.c_str();
    while (!out.empty() && (out.back() == ' ' || out.back() == '\0')) out.pop_back();
    size_t start = 0;
    while (start < out.size() && out[start] == ' ') start++;
    return out.substr(start);
}

extern "C" int32_t tsr_item_contains(TSRItem item, uint16_t group, uint16_t element) {
    TSR_GUARD_BEGIN
    if (!item) return 0;
    return as_item(item)->tagExists(DcmTagKey(group, element)) ? 1 : 0;
    TSR_GUARD_END(nullptr, 0)
}

extern "C" int32_t tsr_item_string(TSRItem item, uint16_t group, uint16_t element, char *buffer, size_t capacity) {
    TSR_GUARD_BEGIN
    if (!item) return -1;
    DcmElement *el = nullptr;
    if (as_item(item)->findAndGetElement(DcmTagKey(group, element), el).bad() || !el) return -1;
    OFString value;
    if (el->getLength() == 0) return copy_out("", buffer, capacity);
    if (el->getOFStringArray(value).bad()) return copy_out("", buffer, capacity);
    return copy_out(trim(value), buffer, capacity);
    TSR_GUARD_END(nullptr, -1)
}

extern "C" int32_t tsr_item_numbers(TSRItem item, uint16_t group, uint16_t element, double *values,
                                    size_t capacity) {
    TSR_GUARD_BEGIN
    if (!item) return -1;
    DcmElement *el = nullptr;
    if (as_item(item)->findAndGetElement(DcmTagKey(group, element), el).bad() || !el) return -1;
    if (el->getLength() == 0) return 0;
    const unsigned long vm = el->getVM();
    const DcmEVR vr = el->ident();
    for (unsigned long i = 0; i < vm; ++i) {
        double v = 0;
        OFCondition c;
        switch (vr) {
        case EVR_US: { Uint16 x; c = el->getUint16(x, i); v = x; break; }
        case EVR_SS: { Sint16 x; c = el->getSint16(x, i); v = x; break; }
        case EVR_UL: { Uint32 x; c = el->getUint32(x, i); v = x; break; }
        case EVR_SL: { Sint32 x; c = el->getSint32(x, i); v = x; break; }
        case EVR_FL: { Float32 x; c = el->getFloat32(x, i); v = x; break; }
        case EVR_FD: { Float64 x; c = el->getFloat64(x, i); v = x; break; }
        case EVR_OB: case EVR_OW: case EVR_OF: case EVR_OD: case EVR_OL: case EVR_UN: case EVR_SQ:
            return -2;
        default: {
            OFString s;
            c = el->getOFString(s, i);
            if (c.good()) {
                std::string t = trim(s);
                char *end = nullptr;
                v = std::strtod(t.c_str(), &end);
                if (t.empty() || !end || *end != 0) return -2;
            }
        }
        }
        if (c.bad()) return -2;
        if (i < capacity && values) values[i] = v;
    }
    return (int32_t)vm;
    TSR_GUARD_END(nullptr, -2)
}

extern "C" int64_t tsr_item_bytes(TSRItem item, uint16_t group, uint16_t element, const uint8_t **bytes) {
    TSR_GUARD_BEGIN
    if (!item || !bytes) return -1;
    DcmElement *el = nullptr;
    if (as_item(item)->findAndGetElement(DcmTagKey(group, element), el).bad() || !el) return -1;
    const DcmEVR vr = el->ident();
    OFCondition c;
    if (vr == EVR_US || vr == EVR_OW || vr == EVR_SS || vr == EVR_xs || vr == EVR_lt) {
        Uint16 *w = nullptr;
        c = el->getUint16Array(w);
        *bytes = reinterpret_cast<const uint8_t *>(w);
    } else {
        Uint8 *b = nullptr;
        c = el->getUint8Array(b);
        *bytes = b;
    }
    if (c.bad()) return -1;
    return (int64_t)el->getLength();
    TSR_GUARD_END(nullptr, -1)
}

extern "C" int64_t tsr_item_value_length(TSRItem item, uint16_t group, uint16_t element) {
    TSR_GUARD_BEGIN
    if (!item) return -1;
    DcmElement *el = nullptr;
    if (as_item(item)->findAndGetElement(DcmTagKey(group, element), el).bad() || !el) return -1;
    return (int64_t)el->getLength();
    TSR_GUARD_END(nullptr, -1)
}

extern "C" int32_t tsr_item_sequence_count(TSRItem item, uint16_t group, uint16_t element) {
    TSR_GUARD_BEGIN
    if (!item) return -1;
    DcmSequenceOfItems *seq = nullptr;
    if (as_item(item)->findAndGetSequence(DcmTagKey(group, element), seq).bad() || !seq) return -1;
    return (int32_t)seq->card();
    TSR_GUARD_END(nullptr, -1)
}

extern "C" TSRItem tsr_item_sequence_item(TSRItem item, uint16_t group, uint16_t element, uint32_t index) {
    TSR_GUARD_BEGIN
    if (!item) return nullptr;
    DcmItem *out = nullptr;
    if (as_item(item)->findAndGetSequenceItem(DcmTagKey(group, element), out, (int)index).bad()) return nullptr;
    return out;
    TSR_GUARD_END(nullptr, nullptr)
}

extern "C" int32_t tsr_new_uid(const char *root, char *buffer, size_t capacity) {
    TSR_GUARD_BEGIN
    char uid[100];
    dcmGenerateUniqueIdentifier(uid, root ? root : SITE_INSTANCE_UID_ROOT);
    return copy_out(uid, buffer, capacity);
    TSR_GUARD_END(nullptr, -1)
}
