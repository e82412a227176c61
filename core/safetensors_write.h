/*
 * safetensors_write.h - write a single .safetensors file (the inverse of
 * safetensors.h's reader), used by the Hugging Face checkpoint exporters.
 *
 * A writer collects tensors (name, dtype, shape, bytes) and then writes them
 * in one go: the JSON header lists tensors sorted by name (as the PyPI
 * safetensors package does), is padded with spaces to a multiple of 8 bytes,
 * and the data section holds the tensors in the same order, back to back.
 * The file image is assembled in memory and written with qb_file_write_atomic
 * (temp file, fsync, rename), so a failed export never leaves a half-written
 * file. Peak memory is about twice the tensors' bytes (one shard, no
 * streaming yet).
 */
#ifndef QB_SAFETENSORS_WRITE_H
#define QB_SAFETENSORS_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "qb_common.h"

struct qb_stw;

enum qb_status qb_stw_new(struct qb_stw **out, struct qb_err *err);
void qb_stw_free(struct qb_stw *w); /* NULL-safe */

/* Add tensor `name` of dtype dt and shape[n_dims] (n_dims 0 = scalar); data holds
 * prod(shape) * qb_dtype_size(dt) bytes and is copied. Duplicate names are
 * QB_ERR_INTERNAL. */
enum qb_status qb_stw_add(struct qb_stw *w, const char *name, enum qb_dtype dt, int n_dims,
                          const int64_t *shape, const void *data, struct qb_err *err);
/* Same, taking ownership of a malloced buffer (freed by the writer, also on error). */
enum qb_status qb_stw_add_owned(struct qb_stw *w, const char *name, enum qb_dtype dt, int n_dims,
                                const int64_t *shape, void *data, struct qb_err *err);

/* Optional "__metadata__" entry (string values), e.g. {"format": "pt"}. */
enum qb_status qb_stw_set_metadata(struct qb_stw *w, const char *key, const char *value,
                                   struct qb_err *err);

/* Write everything to path atomically. */
enum qb_status qb_stw_write(const struct qb_stw *w, const char *path, struct qb_err *err);

#endif /* QB_SAFETENSORS_WRITE_H */
