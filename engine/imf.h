/* imf: the intermediate file format, luamr's own binary columnar container for mapper
 * output. Depends on frame, mr_error, libdeflate (compression, CRC32) and POSIX file I/O.
 * Local files only: the runner uploads/downloads intermediates to and from S3.
 *
 * A file holds one schema (column names and types, fixed by the first frame added) and a
 * sequence of row groups of at most IMF_GROUP_ROWS rows. Every row group belongs to one
 * partition (0..nparts-1), so a mapper writes the output for all R reducers into one file
 * and reducer r streams only partition r, one row group at a time, with memory bounded by
 * one group. Every column of a group is stored as blocks, each raw-deflate compressed (or
 * stored raw when compression does not pay) and each carrying a CRC32; a footer indexes the
 * groups. The byte layout is in docs/intermediate-format.md.
 *
 * Files are written to a temporary name beside the target and renamed on imf_writer_close,
 * so a crashed mapper never leaves a plausible-looking intermediate behind. Any damage a
 * reader notices (bad magic, unknown version, CRC mismatch, short block, missing footer)
 * is MR_ECORRUPT with a message naming the file, the group/column/block and the byte
 * offset; nothing is ever read silently past damage.
 *
 * Byte order is little-endian on disk; luamr builds only on little-endian hosts. */
#ifndef LUAMR_IMF_H
#define LUAMR_IMF_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "mr_error.h"

#define IMF_VERSION 1
/* Default row-group size: large enough that per-group overhead (headers, CRCs, compressor
 * set-up) is noise, small enough that one group of a wide frame fits in a task's memory. */
#define IMF_GROUP_ROWS ((size_t)1 << 20)
/* A group is also cut early when one string column would exceed this many bytes. */
#define IMF_GROUP_STR_BYTES ((size_t)64 << 20)
/* Upper bound on partitions per file (sanity limit for readers of damaged files). */
#define IMF_MAX_PARTS (1 << 20)

typedef struct imf_writer imf_writer;
typedef struct imf_reader imf_reader;

/* ---- writing ---- */

/* Starts a file at local_path (written as a temporary beside it until close).
 * level: 0 = store uncompressed, 1..12 = deflate level (1 is the cheap default the config
 * uses), -1 = default (1). */
imf_writer *imf_writer_open(const char *local_path, int level, mr_err *e);
/* Optional, before the first add: rows per group (>= 1; default IMF_GROUP_ROWS). */
mr_code imf_writer_set_group_rows(imf_writer *w, size_t rows, mr_err *e);
/* Optional: at most this many bytes of small frames are held for coalescing (default
 * 64 MB; a map task sets a share of its memory budget). */
void imf_writer_set_pending_max(imf_writer *w, size_t bytes);
/* Optional: declares the partition count R up front so readers see nparts == R even when
 * the last partitions received no rows; adding a partition >= R is then an error. Without
 * it nparts is the largest partition added + 1 (1 when nothing was added). */
mr_code imf_writer_set_nparts(imf_writer *w, int nparts, mr_err *e);
/* Appends all rows of f to partition (0 <= partition < IMF_MAX_PARTS), cut into row groups.
 * The first frame fixes the schema; later frames must have the same column names and types
 * (any order), else MR_EINVAL naming the column (the writer stays usable). A frame with no
 * rows still fixes the schema and counts its partition. Small frames (under 64K rows or the
 * group size) are copied into a per-partition buffer (at most 64 MB in all) and written as
 * one group when it fills or at close, so many small adds do not make tiny groups. Rows of
 * one partition are read back in the order they were added. */
mr_code imf_writer_add(imf_writer *w, const frame *f, int partition, mr_err *e);
/* Writes the footer and renames the temporary file into place. After a failed close the
 * temporary is removed. Either way only imf_writer_free remains to be called. */
mr_code imf_writer_close(imf_writer *w, mr_err *e);
/* Frees the writer; a writer that was not closed removes its temporary file. Accepts NULL. */
void imf_writer_free(imf_writer *w);
/* Bytes written so far (all groups; footer included after close). */
uint64_t imf_writer_bytes(const imf_writer *w);
/* Raw (uncompressed, in-memory column) bytes handed to the writer so far. */
uint64_t imf_writer_raw_bytes(const imf_writer *w);

/* ---- reading ---- */

/* Opens a file and checks its header, schema and footer (not the blocks: see imf_verify). */
imf_reader *imf_reader_open(const char *local_path, mr_err *e);
void imf_reader_free(imf_reader *r);   /* accepts NULL */
int imf_reader_nparts(const imf_reader *r);
size_t imf_reader_ngroups(const imf_reader *r);
/* Rows in partition p (-1: all partitions); 0 for a partition out of range. */
uint64_t imf_reader_rows(const imf_reader *r, int partition);
/* The schema as a frame with no rows (owned by the reader). */
const frame *imf_reader_schema(const imf_reader *r);
/* Next row group of partition (-1: every group in file order). *out is a new frame the
 * caller frees, or NULL once the partition is exhausted (MR_OK). Each partition has its
 * own cursor, so interleaving partitions is fine. Memory: one group's bytes + its frame. */
mr_code imf_reader_next(imf_reader *r, int partition, frame **out, mr_err *e);
/* Moves every cursor back to the first group. */
void imf_reader_rewind(imf_reader *r);

/* The whole of partition (-1: all) as one frame, columns in schema order. A partition with
 * no rows yields an empty frame with the schema's columns. */
frame *imf_read_all(const char *local_path, int partition, mr_err *e);

/* Walks the whole file and checks its structure and every CRC without decoding values;
 * MR_OK means the file is complete and undamaged (the resume path relies on this). */
mr_code imf_verify(const char *local_path, mr_err *e);

#endif
