/*
 * safetensors.h - safetensors checkpoints over mmap, single file or sharded.
 *
 * File layout (https://github.com/huggingface/safetensors):
 *
 *   +----------------+---------------------------+---------------------------+
 *   | u64 LE  N      | N bytes JSON header       | data section              |
 *   +----------------+---------------------------+---------------------------+
 *   header: {"__metadata__": {str: str}?,
 *            "<name>": {"dtype": "BF16", "shape": [d0, d1, ...],
 *                       "data_offsets": [begin, end]}, ...}
 *   offsets are relative to the start of the data section.
 *
 * Nothing in the file is trusted: the header length must lie within the file,
 * offsets inside the data section and non-overlapping, shape x dtype size must
 * equal the byte span, names unique. A sharded checkpoint is read through
 * model.safetensors.index.json, whose shard names must be plain file names
 * that exist and whose entries must name tensors present in their shard.
 *
 * Tensor data pointers point into the mapping: they stay valid until the
 * checkpoint is closed. qb_ckpt_release() lets the kernel drop pages of a
 * tensor we are done with (the layer-by-layer calibration pipeline).
 */
#ifndef QB_SAFETENSORS_H
#define QB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "fileutil.h"
#include "qb_common.h"

#define QB_ST_MAX_DIMS 8
#define QB_ST_MAX_HEADER (100u << 20)

struct qb_st_tensor {
    char *name;
    enum qb_dtype dtype;
    int n_dims;
    int64_t shape[QB_ST_MAX_DIMS];
    int64_t n_elems;
    size_t begin, end;     /* offsets within the data section */
    const void *data;      /* into the mapping; NULL until mapped */
    int shard;             /* index into the checkpoint's files */
};

/* Parse and validate a header. hdr is the JSON (len bytes), data_size the size of the
 * data section that follows it. On success *tensors (malloced array, names malloced;
 * free with qb_st_tensors_free) has *n entries, sorted by name, data pointers NULL. */
enum qb_status qb_st_parse_header(const char *hdr, size_t len, size_t data_size,
                                  const char *origin, struct qb_st_tensor **tensors, size_t *n,
                                  struct qb_err *err);
void qb_st_tensors_free(struct qb_st_tensor *tensors, size_t n);

/* Validate a whole safetensors file image (size bytes): the 8-byte length, the
 * header and every entry. *data_start is the offset of the data section. */
enum qb_status qb_st_parse_buffer(const void *buf, size_t size, const char *origin,
                                  size_t *data_start, struct qb_st_tensor **ts, size_t *n,
                                  struct qb_err *err);

struct qb_ckpt_file {
    char *path;
    struct qb_mmap map;
    size_t data_start;     /* byte offset of the data section in the file */
};

struct qb_ckpt {
    char *dir;
    struct qb_ckpt_file *files;
    int n_files;
    struct qb_st_tensor *tensors; /* all shards, sorted by name */
    size_t n_tensors;
};

/* Open dir/model.safetensors or dir/model.safetensors.index.json + shards. */
enum qb_status qb_ckpt_open(const char *dir, struct qb_ckpt **out, struct qb_err *err);
/* Open one .safetensors file as a checkpoint of one shard. */
enum qb_status qb_ckpt_open_file(const char *path, struct qb_ckpt **out, struct qb_err *err);
void qb_ckpt_close(struct qb_ckpt *ck); /* NULL-safe */

/* Tensor by exact name, or NULL. */
const struct qb_st_tensor *qb_ckpt_find(const struct qb_ckpt *ck, const char *name);
/* Bytes of a tensor's data. */
size_t qb_st_tensor_bytes(const struct qb_st_tensor *t);
/* Advise the kernel that a tensor's pages are no longer needed. */
void qb_ckpt_release(const struct qb_ckpt *ck, const struct qb_st_tensor *t);

/* Convert a tensor (F32/F16/BF16) to f32; out holds n_elems floats. */
enum qb_status qb_st_tensor_to_f32(const struct qb_st_tensor *t, float *out, struct qb_err *err);

#endif /* QB_SAFETENSORS_H */
