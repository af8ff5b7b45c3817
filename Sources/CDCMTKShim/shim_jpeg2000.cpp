// JPEG 2000 pixel data through OpenJPEG. DCMTK 3.6.7 has no JPEG 2000 decoder (and reports "Missing attribute"
// for such files), so the shim walks the encapsulated fragments itself (PS3.5 A.4) and decodes each frame.
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dctk.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"

#include <openjpeg-2.5/openjpeg.h>

#include <cstring>
#include <string>
#include <vector>

#include "shim_internal.h"

namespace {

struct MemoryStream {
    const uint8_t *data;
    size_t size;
    size_t offset;
};

OPJ_SIZE_T stream_read(void *buffer, OPJ_SIZE_T count, void *user) {
    auto *m = static_cast<MemoryStream *>(user);
    if (m->offset >= m->size) return (OPJ_SIZE_T)-1;
    size_t n = std::min(count, m->size - m->offset);
    std::memcpy(buffer, m->data + m->offset, n);
    m->offset += n;
    return n;
}

OPJ_OFF_T stream_skip(OPJ_OFF_T count, void *user) {
    auto *m = static_cast<MemoryStream *>(user);
    if (count < 0) {
        size_t back = std::min((size_t)(-count), m->offset);
        m->offset -= back;
        return -(OPJ_OFF_T)back;
    }
    size_t n = std::min((size_t)count, m->size - m->offset);
    m->offset += n;
    return (OPJ_OFF_T)n;
}

OPJ_BOOL stream_seek(OPJ_OFF_T position, void *user) {
    auto *m = static_cast<MemoryStream *>(user);
    if (position < 0 || (size_t)position > m->size) return OPJ_FALSE;
    m->offset = (size_t)position;
    return OPJ_TRUE;
}

void quiet(const char *, void *) {}

void record_error(const char *msg, void *user) {
    auto *s = static_cast<std::string *>(user);
    if (s->empty()) *s = msg;
    while (!s->empty() && s->back() == '\n') s->pop_back();
}

/// Compares the codestream's SIZ (read by opj_read_header, nothing decoded yet) with the DICOM header, so that a
/// small codestream declaring a huge image (a decompression bomb) is refused before OpenJPEG allocates for it.
bool check_header(const opj_image_t *image, uint16_t rows, uint16_t columns, uint16_t bitsAllocated,
                  std::string &error) {
    if (!image || image->numcomps != 1 || !image->comps) {
        error = "JPEG 2000 codestream has " + std::to_string(image ? image->numcomps : 0) +
                " components; (0028,0002) Samples per Pixel 1 (grayscale) is expected";
        return false;
    }
    const uint64_t width = (uint64_t)image->x1 - image->x0, height = (uint64_t)image->y1 - image->y0;
    const opj_image_comp_t &c = image->comps[0];
    if (image->x1 < image->x0 || image->y1 < image->y0 || width != columns || height != rows || c.dx != 1 ||
        c.dy != 1) {
        error = "JPEG 2000 codestream SIZ is " + std::to_string(width) + "x" + std::to_string(height) +
                ", which does not match (0028,0011) Columns x (0028,0010) Rows " + std::to_string(columns) + "x" +
                std::to_string(rows) + "; not decoded";
        return false;
    }
    if (c.prec < 1 || c.prec > bitsAllocated) {
        error = "JPEG 2000 codestream precision " + std::to_string(c.prec) + " bits exceeds (0028,0100) Bits "
                "Allocated " + std::to_string(bitsAllocated) + "; not decoded";
        return false;
    }
    return true;
}

/// Decodes one JPEG 2000 codestream (raw J2K or JP2 box format) into `out` as 8- or 16-bit samples.
bool decode_frame(const uint8_t *data, size_t size, uint16_t rows, uint16_t columns, uint16_t bitsAllocated,
                  std::vector<uint8_t> &out, std::string &error) {
    const size_t expectedSamples = (size_t)rows * columns;
    const bool j2k = size >= 4 && data[0] == 0xFF && data[1] == 0x4F && data[2] == 0xFF && data[3] == 0x51;
    opj_codec_t *codec = opj_create_decompress(j2k ? OPJ_CODEC_J2K : OPJ_CODEC_JP2);
    if (!codec) { error = "OpenJPEG could not create a decoder"; return false; }
    opj_set_info_handler(codec, quiet, nullptr);
    opj_set_warning_handler(codec, quiet, nullptr);
    opj_set_error_handler(codec, record_error, &error);
    opj_dparameters_t params;
    opj_set_default_decoder_parameters(&params);
    MemoryStream mem{data, size, 0};
    opj_stream_t *stream = opj_stream_create(64 * 1024, OPJ_TRUE);
    if (!stream) {
        opj_destroy_codec(codec);
        error = "OpenJPEG could not create a stream";
        return false;
    }
    opj_stream_set_user_data(stream, &mem, nullptr);
    opj_stream_set_user_data_length(stream, size);
    opj_stream_set_read_function(stream, stream_read);
    opj_stream_set_skip_function(stream, stream_skip);
    opj_stream_set_seek_function(stream, stream_seek);
    opj_image_t *image = nullptr;
    // Freed on every exit, exceptions included (out.resize may throw bad_alloc).
    struct Cleanup {
        opj_codec_t *codec;
        opj_stream_t *stream;
        opj_image_t **image;
        ~Cleanup() {
            if (*image) opj_image_destroy(*image);
            if (stream) opj_stream_destroy(stream);
            opj_destroy_codec(codec);
        }
    } cleanup{codec, stream, &image};
    bool ok = opj_setup_decoder(codec, &params) && opj_read_header(stream, codec, &image);
    if (ok && !check_header(image, rows, columns, bitsAllocated, error)) ok = false;
    else if (ok) ok = opj_decode(codec, stream, image) && opj_end_decompress(codec, stream);
    if (ok) {
        if (image->numcomps != 1 || !image->comps || !image->comps[0].data) {
            error = "JPEG 2000 frame has " + std::to_string(image->numcomps) + " components; only grayscale is read";
            ok = false;
        } else {
            const opj_image_comp_t &c = image->comps[0];
            const size_t n = (size_t)c.w * c.h;
            if (n != expectedSamples) {
                error = "JPEG 2000 frame is " + std::to_string(c.w) + "x" + std::to_string(c.h) +
                        ", which does not match (0028,0010) Rows x (0028,0011) Columns";
                ok = false;
            } else if (bitsAllocated == 16) {
                size_t base = out.size();
                out.resize(base + n * 2);
                uint16_t *dst = reinterpret_cast<uint16_t *>(out.data() + base);
                for (size_t i = 0; i < n; ++i) dst[i] = (uint16_t)(int16_t)c.data[i];
            } else {
                size_t base = out.size();
                out.resize(base + n);
                for (size_t i = 0; i < n; ++i) out[base + i] = (uint8_t)c.data[i];
            }
        }
    } else if (error.empty()) {
        error = "OpenJPEG could not decode the codestream";
    }
    return ok;
}

} // namespace

int32_t tsr_decode_jpeg2000(DcmDataset *ds, std::vector<uint8_t> &out, TSRStatus *status) {
    DcmElement *element = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, element).bad() || !element) {
        tsr_set_status(status, TSR_NOT_FOUND, "the file has no (7FE0,0010) Pixel Data");
        return TSR_NOT_FOUND;
    }
    DcmPixelData *pixel = OFstatic_cast(DcmPixelData *, element);
    DcmPixelSequence *sequence = nullptr;
    E_TransferSyntax xfer = ds->getOriginalXfer();
    if (pixel->getEncapsulatedRepresentation(xfer, nullptr, sequence).bad() || !sequence) {
        tsr_set_status(status, TSR_PARSE, "JPEG 2000 Pixel Data is not encapsulated (PS3.5 A.4)");
        return TSR_PARSE;
    }
    Uint16 rows = 0, columns = 0, bitsAllocated = 16, samples = 1;
    Sint32 frames = 1;
    ds->findAndGetUint16(DCM_Rows, rows);
    ds->findAndGetUint16(DCM_Columns, columns);
    ds->findAndGetUint16(DCM_BitsAllocated, bitsAllocated);
    ds->findAndGetUint16(DCM_SamplesPerPixel, samples);
    ds->findAndGetSint32(DCM_NumberOfFrames, frames);
    if (frames < 1) frames = 1;
    if (rows == 0 || columns == 0) {
        tsr_set_status(status, TSR_PARSE, "JPEG 2000 image without (0028,0010) Rows or (0028,0011) Columns");
        return TSR_PARSE;
    }
    if (samples != 1 || (bitsAllocated != 8 && bitsAllocated != 16)) {
        tsr_set_status(status, TSR_UNSUPPORTED_SYNTAX,
                       "JPEG 2000 is decoded for grayscale 8/16-bit images only (SamplesPerPixel " +
                           std::to_string(samples) + ", BitsAllocated " + std::to_string(bitsAllocated) + ")");
        return TSR_UNSUPPORTED_SYNTAX;
    }
    // Collect the fragments (item 0 is the Basic Offset Table).
    const unsigned long items = sequence->card();
    std::vector<std::pair<const uint8_t *, size_t>> fragments;
    std::vector<size_t> fragmentOffsets; // byte offset of each fragment item relative to the first fragment
    size_t running = 0;
    for (unsigned long i = 1; i < items; ++i) {
        DcmPixelItem *item = nullptr;
        if (sequence->getItem(item, i).bad() || !item) continue;
        Uint8 *bytes = nullptr;
        item->getUint8Array(bytes);
        fragments.emplace_back(bytes, (size_t)item->getLength());
        fragmentOffsets.push_back(running);
        running += 8 + item->getLength();
    }
    if (fragments.empty()) {
        tsr_set_status(status, TSR_PARSE, "JPEG 2000 Pixel Data has no fragments");
        return TSR_PARSE;
    }
    // Every frame has at least one fragment (PS3.5 A.4): more frames than fragments is a corrupt header, refused
    // before the offset table is sized from it.
    if ((uint64_t)frames > (uint64_t)fragments.size()) {
        tsr_set_status(status, TSR_PARSE,
                       "(0028,0008) Number of Frames " + std::to_string(frames) + " exceeds the " +
                           std::to_string(fragments.size()) + " JPEG 2000 fragments of the Pixel Data");
        return TSR_PARSE;
    }
    // Frame boundaries: one frame = all fragments; as many fragments as frames = one each; else the offset table.
    std::vector<size_t> starts;
    if (frames == 1) {
        starts.push_back(0);
    } else if ((long)fragments.size() == frames) {
        for (long f = 0; f < frames; ++f) starts.push_back((size_t)f);
    } else {
        DcmPixelItem *bot = nullptr;
        Uint32 *offsets = nullptr;
        // 64-bit: 4 × frames wrapped in 32 bits for frames ≥ 2^30.
        if (sequence->getItem(bot, 0).good() && bot && (uint64_t)bot->getLength() == 4ull * (uint64_t)frames) {
            Uint8 *raw = nullptr;
            bot->getUint8Array(raw);
            offsets = raw ? reinterpret_cast<Uint32 *>(raw) : nullptr;
        }
        if (!offsets) {
            tsr_set_status(status, TSR_PARSE,
                           "multi-frame JPEG 2000 without a Basic Offset Table and with more fragments than frames");
            return TSR_PARSE;
        }
        for (long f = 0; f < frames; ++f) {
            size_t index = fragmentOffsets.size();
            for (size_t k = 0; k < fragmentOffsets.size(); ++k)
                if (fragmentOffsets[k] == offsets[f]) { index = k; break; }
            if (index == fragmentOffsets.size()) {
                tsr_set_status(status, TSR_PARSE, "JPEG 2000 Basic Offset Table points between fragments");
                return TSR_PARSE;
            }
            starts.push_back(index);
        }
    }
    out.clear();
    const uint64_t expected = (uint64_t)rows * columns * (bitsAllocated / 8) * (uint64_t)frames;
    if (expected <= (1ull << 31)) out.reserve((size_t)expected);
    std::vector<uint8_t> joined;
    for (size_t f = 0; f < starts.size(); ++f) {
        const size_t first = starts[f];
        const size_t last = f + 1 < starts.size() ? starts[f + 1] : fragments.size();
        const uint8_t *data = fragments[first].first;
        size_t size = fragments[first].second;
        if (last - first > 1) {
            joined.clear();
            for (size_t k = first; k < last; ++k)
                joined.insert(joined.end(), fragments[k].first, fragments[k].first + fragments[k].second);
            data = joined.data();
            size = joined.size();
        }
        std::string error;
        if (!data || !decode_frame(data, size, rows, columns, bitsAllocated, out, error)) {
            tsr_set_status(status, TSR_DECODE, "JPEG 2000 frame " + std::to_string(f + 1) + ": " + error);
            out.clear();
            return TSR_DECODE;
        }
    }
    tsr_set_ok(status);
    return TSR_OK;
}
