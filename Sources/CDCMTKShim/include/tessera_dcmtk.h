/*
 * tessera_dcmtk.h - the plain C face of Tessera's DCMTK shim.
 *
 * The only C++ in Tessera lives behind this header. Swift's C++ interoperability cannot import DCMTK's
 * DicomImage and would spread to every importing target, so the shim exposes opaque handles and plain C calls.
 * Every DCMTK OFCondition is turned into a TSRStatus (code + message); nothing here prints to stderr unless
 * tsr_initialize() was called with verbose != 0.
 *
 * Handles:
 *   TSRFile  - one DICOM file read from disk (DcmFileFormat); free with tsr_file_free().
 *   TSRItem  - a borrowed DcmItem* (the dataset, the meta header, or a sequence item) that lives as long as the
 *              TSRFile or TSRWriter it came from. Never freed by the caller.
 *   TSRWriter - a dataset being built for writing; free with tsr_writer_free().
 */
#ifndef TESSERA_DCMTK_H
#define TESSERA_DCMTK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes shared with Swift's DICOMError.Code. */
enum {
    TSR_OK = 0,
    TSR_NOT_FOUND = 1,          /* the file or the attribute does not exist */
    TSR_IO = 2,                 /* the file could not be read or written */
    TSR_NOT_DICOM = 3,          /* the file is not DICOM (no preamble and no parsable dataset) */
    TSR_PARSE = 4,              /* DCMTK could not parse the file (truncated, corrupt) */
    TSR_UNSUPPORTED_SYNTAX = 5, /* no decoder for the transfer syntax */
    TSR_DECODE = 6,             /* a decoder failed on the pixel data */
    TSR_WRITE = 7,              /* writing or encoding failed */
    TSR_INVALID_ARGUMENT = 8,   /* a value handed to the shim was out of range */
    TSR_INTERNAL = 9            /* DCMTK or OpenJPEG threw (out of memory on a hostile size, internal error) */
};

/* Every entry point below catches C++ exceptions (std::bad_alloc included): none ever reaches the caller. Functions
 * with a TSRStatus report TSR_INTERNAL with the exception's text; the others return their failure value. */

typedef struct TSRStatus {
    int32_t code;
    char message[1024];
} TSRStatus;

typedef struct TSRFile TSRFile;
typedef struct TSRWriter TSRWriter;
typedef void *TSRItem;

/* Registers the RLE, JPEG, JPEG-LS decoders and encoders and sets DCMTK's log level (OFF unless verbose).
 * Idempotent and thread-safe. */
void tsr_initialize(int verbose);

/* Reads a file. Elements longer than maxReadLength bytes (e.g. PixelData) stay on disk until accessed; pass 0 to
 * read everything. A file in which any element declares a value longer than the file could hold (its size; 1100
 * times it for a deflated dataset) is refused with TSR_PARSE before that value is allocated. Files without the "DICM" preamble are accepted only if they parse as a dataset carrying
 * (0008,0016) SOP Class UID. Returns NULL and fills status on failure. */
TSRFile *tsr_file_open(const char *path, uint32_t maxReadLength, TSRStatus *status);
void tsr_file_free(TSRFile *file);

TSRItem tsr_file_dataset(TSRFile *file);
TSRItem tsr_file_meta_header(TSRFile *file);

/* The transfer syntax UID the dataset was read in (from the meta header, or detected). Returns the length written
 * (without the NUL), or -1. */
int32_t tsr_file_transfer_syntax(TSRFile *file, char *buffer, size_t capacity);

/* Decodes (0x7FE0,0x0010) Pixel Data to native little-endian form in place (decompressing RLE, JPEG, JPEG-LS,
 * JPEG 2000 through OpenJPEG) and returns a pointer to its bytes, valid until tsr_file_free(). For BitsAllocated
 * 16 the bytes are host-order 16-bit words. */
int32_t tsr_file_pixel_data(TSRFile *file, const uint8_t **bytes, size_t *length, TSRStatus *status);

/* Releases the decoded pixel data of a file that is kept open (memory stays bounded in large series). */
void tsr_file_release_pixel_data(TSRFile *file);

/* ---- attribute access on an item (dataset or sequence item) ---- */

/* 1 if the attribute is present (even empty), 0 otherwise. */
int32_t tsr_item_contains(TSRItem item, uint16_t group, uint16_t element);

/* The whole value as text, all values separated by '\\', trailing padding removed. Returns the full length of the
 * value (which may exceed capacity - 1, then the text is cut), or -1 when the attribute is absent. */
int32_t tsr_item_string(TSRItem item, uint16_t group, uint16_t element, char *buffer, size_t capacity);

/* The values as numbers, whatever the VR (DS, IS, US, SS, UL, SL, FL, FD, ...). Returns the number of values (which
 * may exceed capacity), -1 when absent, -2 when a value is not a number. */
int32_t tsr_item_numbers(TSRItem item, uint16_t group, uint16_t element, double *values, size_t capacity);

/* The raw value bytes of a binary element (OB, OW, US lists such as LUT Data) in host order. Returns the byte
 * count, -1 when absent. The pointer is borrowed. */
int64_t tsr_item_bytes(TSRItem item, uint16_t group, uint16_t element, const uint8_t **bytes);

/* The declared value length in bytes of an attribute, without loading a value left on disk (e.g. native Pixel
 * Data), or -1 when absent. */
int64_t tsr_item_value_length(TSRItem item, uint16_t group, uint16_t element);

/* Number of items in a sequence, or -1 when absent / not a sequence. */
int32_t tsr_item_sequence_count(TSRItem item, uint16_t group, uint16_t element);
/* A borrowed sequence item, or NULL. */
TSRItem tsr_item_sequence_item(TSRItem item, uint16_t group, uint16_t element, uint32_t index);

/* ---- writing ---- */

TSRWriter *tsr_writer_new(void);
void tsr_writer_free(TSRWriter *writer);
TSRItem tsr_writer_dataset(TSRWriter *writer);

/* Puts a value given as text (VR from the data dictionary; multiple values separated by '\\'). */
int32_t tsr_item_put_string(TSRItem item, uint16_t group, uint16_t element, const char *value, TSRStatus *status);
/* Puts one unsigned 16-bit value (US). */
int32_t tsr_item_put_uint16(TSRItem item, uint16_t group, uint16_t element, uint16_t value, TSRStatus *status);
/* Puts unsigned 16-bit values with VR US (for attributes whose dictionary VR is US-or-SS/OW, such as
 * (0028,3002) LUT Descriptor and (0028,3006) LUT Data). */
int32_t tsr_item_put_uint16s(TSRItem item, uint16_t group, uint16_t element, const uint16_t *values, size_t count,
                             TSRStatus *status);
/* Appends a new empty item to a sequence (created when absent) and returns it (borrowed), or NULL. */
TSRItem tsr_item_append_item(TSRItem item, uint16_t group, uint16_t element, TSRStatus *status);
/* Puts (7FE0,0010) Pixel Data: OW when bitsAllocated is 16, OB otherwise. bytes are host-order words for 16. */
int32_t tsr_item_put_pixel_data(TSRItem item, const void *bytes, size_t length, uint16_t bitsAllocated,
                                TSRStatus *status);

/* Writes a DICOM Part 10 file (meta header created) in the transfer syntax named by UID. Compressed syntaxes:
 * RLE (1.2.840.10008.1.2.5), JPEG baseline (.4.50), extended (.4.51), lossless SV1 (.4.70), JPEG-LS lossless (.4.80)
 * and near-lossless (.4.81, NEAR = nearLossless). Uncompressed: .1.2, .1.2.1, .1.2.2, deflated .1.2.1.99. */
int32_t tsr_writer_save(TSRWriter *writer, const char *path, const char *transferSyntaxUID, uint16_t nearLossless,
                        TSRStatus *status);

/* ---- DICOM SEG writing through dcmseg ---- */

typedef struct TSRSegmentDescription {
    const char *label;          /* (0062,0005) Segment Label */
    const char *categoryCode;   /* Segmented Property Category Code Sequence: value, scheme, meaning */
    const char *categoryScheme;
    const char *categoryMeaning;
    const char *typeCode;       /* Segmented Property Type Code Sequence: value, scheme, meaning */
    const char *typeScheme;
    const char *typeMeaning;
    const char *algorithmType;  /* MANUAL, SEMIAUTOMATIC or AUTOMATIC */
    const char *algorithmName;  /* required unless MANUAL */
} TSRSegmentDescription;

typedef struct TSRSegmentationSpec {
    const char *const *sourcePaths; /* the referenced image files, one per slice, in slice order */
    uint32_t sourceCount;
    uint16_t rows, columns;
    /* frames[s][k][r][c]: segment s (0-based) on source slice k; 0/1 for BINARY, 0..maxFractional for FRACTIONAL */
    const uint8_t *frames;
    const TSRSegmentDescription *segments;
    uint32_t segmentCount;
    int32_t fractional;            /* 0 = BINARY, 1 = FRACTIONAL (PROBABILITY) */
    uint16_t maxFractionalValue;   /* for FRACTIONAL, e.g. 255 */
    int32_t skipEmptyFrames;       /* 1: frames with no voxel of the segment are not written */
    const char *seriesDescription;
    const char *seriesNumber;
    const char *instanceNumber;
    const char *contentLabel;      /* CS, upper case, e.g. "ORGAN" */
    const char *contentCreator;    /* PN */
    const char *manufacturer, *modelName, *serialNumber, *softwareVersions;
    const char *seriesInstanceUID; /* NULL: a new one */
    const char *sopInstanceUID;    /* NULL: a new one */
    const char *contentDate, *contentTime; /* NULL: now */
} TSRSegmentationSpec;

int32_t tsr_segmentation_write(const TSRSegmentationSpec *spec, const char *path, TSRStatus *status);

/* ---- RT Structure Set reading through dcmrt (PS3.3 A.19, C.8.8.5 Structure Set, C.8.8.6 ROI Contour) ---- */

typedef struct TSRStructureSet TSRStructureSet;

/* Item counts taken with plain dcmdata, before dcmrt copies anything: the caller checks them against its limits
 * and only then calls tsr_structure_set_read(). -1 means the sequence is absent. */
typedef struct TSRStructureSetCounts {
    int64_t rois;                        /* (3006,0020) Structure Set ROI Sequence items */
    int64_t roiContours;                 /* (3006,0039) ROI Contour Sequence items */
    int64_t contours;                    /* (3006,0040) Contour Sequence items, all ROIs together */
    int64_t largestContourSequence;      /* the most (3006,0040) items of one ROI */
    int64_t referencedFramesOfReference; /* (3006,0010) Referenced Frame of Reference Sequence items */
    int64_t referencedSeries;            /* (3006,0014) RT Referenced Series Sequence items, all together */
    int64_t referencedImages;            /* (3006,0016) Contour Image Sequence items of those series */
} TSRStructureSetCounts;

int32_t tsr_structure_set_count(TSRFile *file, TSRStructureSetCounts *counts, TSRStatus *status);

/* Reads the RT Structure Set IOD of an open file (read with maxReadLength 0) with dcmrt's DRTStructureSetIOD.
 * Returns NULL and fills status on failure. Free with tsr_structure_set_free(). */
TSRStructureSet *tsr_structure_set_read(TSRFile *file, TSRStatus *status);
void tsr_structure_set_free(TSRStructureSet *set);

/* One (3006,0020) Structure Set ROI Sequence item. Text longer than a buffer is cut. */
typedef struct TSRROI {
    int32_t hasNumber;               /* 0 when (3006,0022) ROI Number is absent or not an integer */
    int32_t number;                  /* (3006,0022) ROI Number */
    char name[256];                  /* (3006,0026) ROI Name */
    char frameOfReferenceUID[128];   /* (3006,0024) Referenced Frame of Reference UID */
    char generationAlgorithm[32];    /* (3006,0036) ROI Generation Algorithm */
} TSRROI;

int32_t tsr_structure_set_roi_count(const TSRStructureSet *set);
int32_t tsr_structure_set_roi(const TSRStructureSet *set, uint32_t index, TSRROI *out, TSRStatus *status);

/* (3006,0039) ROI Contour Sequence item `index`: its (3006,0084) Referenced ROI Number and how many (3006,0040)
 * Contour Sequence items it has. Fails with TSR_NOT_FOUND without a Referenced ROI Number. */
int32_t tsr_structure_set_roi_contour_count(const TSRStructureSet *set);
int32_t tsr_structure_set_roi_contour(const TSRStructureSet *set, uint32_t index, int32_t *referencedROI,
                                      int32_t *contourCount, TSRStatus *status);

/* One (3006,0040) Contour Sequence item, without its points. */
typedef struct TSRContour {
    char geometricType[32];            /* (3006,0042) Contour Geometric Type: POINT, OPEN_PLANAR, ... */
    int32_t hasNumberOfPoints;         /* 0 when (3006,0046) is absent or not an integer */
    int32_t numberOfPoints;            /* (3006,0046) Number of Contour Points */
    int32_t imageCount;                /* (3006,0016) Contour Image Sequence items */
    char firstImageSOPInstanceUID[128]; /* the first item's (0008,1155), or empty */
} TSRContour;

int32_t tsr_structure_set_contour(const TSRStructureSet *set, uint32_t roiContour, uint32_t contour,
                                  TSRContour *out, TSRStatus *status);

/* (3006,0050) Contour Data of a contour: copies up to `capacity` values (x1 y1 z1 x2 ..., mm) and returns how many
 * values it holds (which may exceed capacity; 0 when absent), or -1 with TSR_PARSE when a value is no number. */
int64_t tsr_structure_set_contour_data(const TSRStructureSet *set, uint32_t roiContour, uint32_t contour,
                                       double *values, size_t capacity, TSRStatus *status);

/* The series named by (3006,0010) → (3006,0012) → (3006,0014), flattened in file order; a frame of reference
 * without a study is one entry with an empty series UID. */
typedef struct TSRReferencedSeries {
    char frameOfReferenceUID[128]; /* (0020,0052) of the (3006,0010) item */
    char seriesInstanceUID[128];   /* (0020,000E) of the (3006,0014) item, or empty */
    int32_t imageCount;            /* its (3006,0016) Contour Image Sequence items */
} TSRReferencedSeries;

int32_t tsr_structure_set_referenced_series_count(const TSRStructureSet *set);
int32_t tsr_structure_set_referenced_series(const TSRStructureSet *set, uint32_t index, TSRReferencedSeries *out);
/* (0008,1155) of Contour Image Sequence item `image` of referenced series `series`; returns its full length or -1. */
int32_t tsr_structure_set_referenced_image(const TSRStructureSet *set, uint32_t series, uint32_t image,
                                           char *buffer, size_t capacity);

/* A new DICOM UID under DCMTK's site root, with the given root if non-NULL. */
int32_t tsr_new_uid(const char *root, char *buffer, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif
