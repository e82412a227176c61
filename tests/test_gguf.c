/*
 * test_gguf.c - GGUF reader/writer round trips, corrupt-file rejection,
 * llama naming / Q-K permutation / metadata helpers, tokenizer.ggml.pre
 * tables and llama.cpp's quantization mix rules. No Python needed (the PyPI
 * `gguf` peer comparisons live in test_gguf_peer.c).
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ggml_quants.h"
#include "gguf.h"

/* ---- helpers ---------------------------------------------------------------- */

static char *tmp_dir(void)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "/tmp/qb-gguf-XXXXXX");
    cr_assert_not_null(mkdtemp(buf));
    return buf;
}

struct bb {
    uint8_t p[4096];
    size_t n;
};

static void bb_put(struct bb *b, const void *d, size_t n)
{
    cr_assert(b->n + n <= sizeof b->p);
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u32(struct bb *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(struct bb *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_str(struct bb *b, const char *s)
{
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}

/* Knobs of a small hand-built GGUF: 3 kvs, tensors t0 (q8_0 [2][32]) and
 * t1 (f32 [8]). Defaults give a valid file. */
struct knobs {
    const char *magic;
    uint32_t version;
    uint64_t n_tensors, n_kv;
    uint32_t align_type, align_value;
    const char *kv1_key;
    uint32_t kv1_type;
    uint8_t bool_val;
    uint32_t arr_elem;
    uint64_t arr_count;
    uint64_t str1_len;
    const char *t1_name;
    uint32_t t0_n_dims;
    uint64_t t0_ne[4];
    uint32_t t0_type;
    uint64_t t0_off, t1_off;
};

static struct knobs defaults(void)
{
    struct knobs k = {
        .magic = "GGUF", .version = 3, .n_tensors = 2, .n_kv = 3,
        .align_type = QB_GGUF_U32, .align_value = 32,
        .kv1_key = "a.flag", .kv1_type = QB_GGUF_BOOL, .bool_val = 1,
        .arr_elem = QB_GGUF_STRING, .arr_count = 2, .str1_len = 2,
        .t1_name = "t1", .t0_n_dims = 2, .t0_ne = {32, 2, 1, 1}, .t0_type = QB_GGML_Q8_0,
        .t0_off = 0, .t1_off = 96,
    };
    return k;
}

static void build(struct bb *b, const struct knobs *k)
{
    b->n = 0;
    bb_put(b, k->magic, 4);
    bb_u32(b, k->version);
    bb_u64(b, k->n_tensors);
    bb_u64(b, k->n_kv);
    bb_str(b, "general.alignment");
    bb_u32(b, k->align_type);
    if (k->align_type == QB_GGUF_U64)
        bb_u64(b, k->align_value);
    else
        bb_u32(b, k->align_value);
    bb_str(b, k->kv1_key);
    bb_u32(b, k->kv1_type);
    bb_put(b, &k->bool_val, 1);
    bb_str(b, "a.list");
    bb_u32(b, QB_GGUF_ARRAY);
    bb_u32(b, k->arr_elem);
    bb_u64(b, k->arr_count);
    bb_str(b, "x");
    bb_u64(b, k->str1_len);
    bb_put(b, "yz", 2);
    bb_str(b, "t0");
    bb_u32(b, k->t0_n_dims);
    for (uint32_t d = 0; d < k->t0_n_dims && d < 8; d++)
        bb_u64(b, d < 4 ? k->t0_ne[d] : 1);
    bb_u32(b, k->t0_type);
    bb_u64(b, k->t0_off);
    bb_str(b, k->t1_name);
    bb_u32(b, 1);
    bb_u64(b, 8);
    bb_u32(b, QB_GGML_F32);
    bb_u64(b, k->t1_off);
    while (b->n % 32)
        b->p[b->n++] = 0;
    for (int i = 0; i < 128; i++) /* data: 68 bytes q8_0, pad, 32 bytes f32 */
        b->p[b->n++] = (uint8_t)(i < 68 ? 0x10 : 0);
}

static enum qb_status open_knobs(const struct knobs *k, size_t truncate_to, struct qb_err *err)
{
    struct bb b;
    struct qb_gguf *g = NULL;
    build(&b, k);
    size_t len = truncate_to ? truncate_to : b.n;
    qb_err_clear(err);
    enum qb_status st = qb_gguf_open_buffer(b.p, len, "corrupt.gguf", &g, err);
    if (!st) {
        cr_assert_not_null(g);
        qb_gguf_close(g);
    } else {
        cr_assert_null(g);
    }
    return st;
}

static void expect_reject(const struct knobs *k, const char *needle)
{
    struct qb_err err;
    enum qb_status st = open_knobs(k, 0, &err);
    cr_assert_eq(st, QB_ERR_FORMAT, "expected a format error containing '%s', got %d '%s'", needle,
                 st, err.msg);
    cr_assert_not_null(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
    cr_assert_not_null(strstr(err.msg, "corrupt.gguf"), "message '%s' lacks the file", err.msg);
    cr_assert_null(strchr(err.msg, '\n'));
}

/* ---- corrupt files ----------------------------------------------------------- */

Test(gguf_corrupt, handbuilt_file_is_valid)
{
    struct knobs k = defaults();
    struct bb b;
    struct qb_gguf *g;
    struct qb_err err;
    build(&b, &k);
    cr_assert_eq(qb_gguf_open_buffer(b.p, b.n, "ok.gguf", &g, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(qb_gguf_n_tensors(g), 2);
    const struct qb_gguf_tensor *t0 = qb_gguf_find_tensor(g, "t0");
    cr_assert_eq(t0->bytes, 68);
    cr_assert_eq(t0->ne[0], 32);
    cr_assert_eq(t0->ne[1], 2);
    struct qb_gguf_array arr;
    cr_assert_eq(qb_gguf_get_array(g, "a.list", &arr, &err), QB_OK);
    size_t len;
    const char *s = qb_gguf_array_str(g, &arr, 1, &len);
    cr_assert_eq(len, 2);
    cr_assert(!memcmp(s, "yz", 2));
    qb_gguf_close(g);
}

Test(gguf_corrupt, bad_magic_and_version)
{
    struct knobs k = defaults();
    k.magic = "GGML";
    expect_reject(&k, "not a GGUF file");
    k = defaults();
    k.version = 1;
    expect_reject(&k, "version 1");
    k.version = 4;
    expect_reject(&k, "version 4");
}

Test(gguf_corrupt, huge_counts)
{
    struct knobs k = defaults();
    k.n_kv = UINT64_MAX;
    expect_reject(&k, "metadata count");
    k = defaults();
    k.n_tensors = 1ull << 40;
    expect_reject(&k, "tensor count");
    k = defaults();
    k.arr_count = 1ull << 60;
    expect_reject(&k, "string array 'a.list' claims");
    k = defaults();
    k.arr_elem = QB_GGUF_U64;
    k.arr_count = 1ull << 61;
    expect_reject(&k, "array 'a.list' claims");
}

Test(gguf_corrupt, string_past_eof)
{
    struct knobs k = defaults();
    k.str1_len = 1ull << 40;
    expect_reject(&k, "string array element claims");
}

Test(gguf_corrupt, bad_types)
{
    struct knobs k = defaults();
    k.kv1_type = 13;
    expect_reject(&k, "invalid value type 13");
    k = defaults();
    k.arr_elem = 99;
    expect_reject(&k, "invalid element type 99");
    k = defaults();
    k.bool_val = 2;
    expect_reject(&k, "not 0 or 1");
    k = defaults();
    k.t0_type = 4; /* removed Q4_2 */
    expect_reject(&k, "invalid ggml type 4");
    k.t0_type = 1000;
    expect_reject(&k, "invalid ggml type 1000");
    k = defaults();
    k.align_type = QB_GGUF_U64;
    expect_reject(&k, "general.alignment has type");
    k = defaults();
    k.align_value = 48;
    expect_reject(&k, "not a power of two");
}

Test(gguf_corrupt, offsets)
{
    struct knobs k = defaults();
    k.t1_off = 100; /* not a multiple of 32 */
    expect_reject(&k, "not a multiple of the alignment");
    k.t1_off = 64; /* overlaps t0's 68 bytes */
    expect_reject(&k, "overlap");
    k.t1_off = 128; /* past the data section */
    expect_reject(&k, "outside");
    k.t1_off = UINT64_MAX - 31;
    expect_reject(&k, "outside");
    k = defaults();
    k.t1_off = 0; /* both start at 0 */
    expect_reject(&k, "overlap");
}

Test(gguf_corrupt, duplicates)
{
    struct knobs k = defaults();
    k.kv1_key = "general.alignment";
    k.kv1_type = QB_GGUF_BOOL;
    expect_reject(&k, "duplicate metadata key 'general.alignment'");
    k = defaults();
    k.t1_name = "t0";
    expect_reject(&k, "duplicate tensor name 't0'");
}

Test(gguf_corrupt, dims)
{
    struct knobs k = defaults();
    k.t0_n_dims = 5;
    expect_reject(&k, "n_dims 5");
    k.t0_n_dims = 0;
    expect_reject(&k, "n_dims 0");
    k = defaults();
    k.t0_n_dims = 4;
    k.t0_ne[1] = 1ull << 40;
    k.t0_ne[2] = 1ull << 40;
    expect_reject(&k, "overflows");
    k = defaults();
    k.t0_ne[1] = 0;
    expect_reject(&k, "dimension 1 is 0");
    k = defaults();
    k.t0_ne[0] = 33; /* q8_0 rows must be multiples of 32 */
    expect_reject(&k, "not a multiple of the q8_0 block");
    k = defaults();
    k.t0_ne[1] = 1ull << 63;
    expect_reject(&k, "dimension 1");
}

Test(gguf_corrupt, every_truncation_is_a_clean_error)
{
    struct knobs k = defaults();
    struct bb b;
    struct qb_err err;
    build(&b, &k);
    for (size_t len = 1; len < b.n; len++) {
        enum qb_status st = open_knobs(&k, len, &err);
        cr_assert_eq(st, QB_ERR_FORMAT, "prefix %zu accepted", len);
    }
    cr_assert_eq(qb_gguf_open_buffer(b.p, 0, "empty.gguf", &(struct qb_gguf *){NULL}, &err),
                 QB_ERR_FORMAT);
}

Test(gguf_corrupt, byte_flips_never_crash)
{
    struct knobs k = defaults();
    struct bb b;
    build(&b, &k);
    const uint8_t vals[] = {0x00, 0xff, 0x7f, 0x01};
    for (size_t i = 0; i < b.n - 128; i++) {
        for (size_t v = 0; v < sizeof vals; v++) {
            struct bb m = b;
            struct qb_gguf *g = NULL;
            struct qb_err err;
            m.p[i] = vals[v];
            if (qb_gguf_open_buffer(m.p, m.n, "flip.gguf", &g, &err) == QB_OK) {
                for (size_t t = 0; t < qb_gguf_n_tensors(g); t++)
                    cr_assert(qb_gguf_tensor_at(g, t)->bytes <= m.n);
                qb_gguf_close(g);
            } else {
                cr_assert_gt(strlen(err.msg), 0);
            }
        }
    }
}

Test(gguf_corrupt, missing_file_and_directory)
{
    struct qb_gguf *g = NULL;
    struct qb_err err;
    cr_assert_eq(qb_gguf_open("/nonexistent/x.gguf", &g, &err), QB_ERR_IO);
    cr_assert_not_null(strstr(err.msg, "/nonexistent/x.gguf"));
    cr_assert_eq(qb_gguf_open("/tmp", &g, &err), QB_ERR_IO);
    cr_assert_null(g);
}

/* ---- writer / reader round trip ------------------------------------------------ */

static enum qb_status fill_ramp(void *ctx, void *dst, size_t bytes, struct qb_err *err)
{
    (void)err;
    float *f = dst;
    for (size_t i = 0; i < bytes / 4; i++)
        f[i] = (float)i * *(float *)ctx;
    return QB_OK;
}

static enum qb_status fill_fail(void *ctx, void *dst, size_t bytes, struct qb_err *err)
{
    (void)ctx;
    (void)dst;
    (void)bytes;
    return qb_err_set(err, QB_ERR_NUMERIC, "tensor went NaN");
}

Test(gguf_rw, every_value_type_round_trips)
{
    char *dir = tmp_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/all.gguf", dir);
    struct qb_gguf_writer *w;
    struct qb_err err;
    cr_assert_eq(qb_gguf_writer_new(&w, &err), QB_OK);
    cr_assert_eq(qb_gguf_writer_set_alignment(w, 64, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_u8(w, "v.u8", 250, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_i8(w, "v.i8", -120, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_u16(w, "v.u16", 65535, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_i16(w, "v.i16", -32768, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_u32(w, "v.u32", 4294967295u, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_i32(w, "v.i32", INT32_MIN, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_u64(w, "v.u64", UINT64_MAX, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_i64(w, "v.i64", INT64_MIN, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_f32(w, "v.f32", 1.5e-7f, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_f64(w, "v.f64", -1e300, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_bool(w, "v.bool", 7, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_str(w, "v.str", "llama-bpe ✓", &err), QB_OK);
    const int32_t ints[] = {3, -1, 1 << 30};
    cr_assert_eq(qb_gguf_add_array(w, "v.arr_i32", QB_GGUF_I32, ints, 3, &err), QB_OK);
    const char *strs[] = {"a", "", "Ġthe"};
    cr_assert_eq(qb_gguf_add_str_array(w, "v.arr_str", strs, NULL, 3, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_array(w, "v.arr_empty", QB_GGUF_F32, NULL, 0, &err), QB_OK);
    /* errors the writer must refuse */
    cr_assert_eq(qb_gguf_add_u8(w, "v.u8", 1, &err), QB_ERR_USAGE);
    cr_assert_eq(qb_gguf_add_array(w, "v.bad", QB_GGUF_STRING, strs, 1, &err), QB_ERR_USAGE);
    int64_t ne_q[2] = {64, 3};
    uint8_t q8[2 * 34 * 3];
    memset(q8, 0x11, sizeof q8);
    cr_assert_eq(qb_gguf_add_tensor(w, "w.q8", QB_GGML_Q8_0, 2, ne_q, q8, sizeof q8, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_tensor(w, "w.q8", QB_GGML_Q8_0, 2, ne_q, q8, sizeof q8, &err),
                 QB_ERR_USAGE);
    cr_assert_eq(qb_gguf_add_tensor(w, "w.short", QB_GGML_Q8_0, 2, ne_q, q8, 10, &err),
                 QB_ERR_USAGE);
    int64_t ne_bad[2] = {40, 3};
    cr_assert_eq(qb_gguf_add_tensor(w, "w.bad", QB_GGML_Q8_0, 2, ne_bad, q8, sizeof q8, &err),
                 QB_ERR_USAGE);
    cr_assert_not_null(strstr(err.msg, "not a multiple"));
    float scale = 0.5f;
    int64_t ne_f[3] = {4, 3, 2};
    cr_assert_eq(qb_gguf_add_tensor_fill(w, "w.ramp", QB_GGML_F32, 3, ne_f, fill_ramp, &scale, &err),
                 QB_OK);
    cr_assert_eq(qb_gguf_write(w, path, &err), QB_OK, "%s", err.msg);
    qb_gguf_writer_free(w);

    struct qb_gguf *g;
    cr_assert_eq(qb_gguf_open(path, &g, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(qb_gguf_version(g), 3);
    cr_assert_eq(qb_gguf_alignment(g), 64);
    cr_assert_eq(qb_gguf_data_offset(g) % 64, 0);
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
    uint64_t u64; int64_t i64; float f32; double f64; int b;
    cr_assert_eq(qb_gguf_get_u8(g, "v.u8", &u8, &err), QB_OK);
    cr_assert_eq(u8, 250);
    cr_assert_eq(qb_gguf_get_i8(g, "v.i8", &i8, &err), QB_OK);
    cr_assert_eq(i8, -120);
    cr_assert_eq(qb_gguf_get_u16(g, "v.u16", &u16, &err), QB_OK);
    cr_assert_eq(u16, 65535);
    cr_assert_eq(qb_gguf_get_i16(g, "v.i16", &i16, &err), QB_OK);
    cr_assert_eq(i16, -32768);
    cr_assert_eq(qb_gguf_get_u32(g, "v.u32", &u32, &err), QB_OK);
    cr_assert_eq(u32, 4294967295u);
    cr_assert_eq(qb_gguf_get_i32(g, "v.i32", &i32, &err), QB_OK);
    cr_assert_eq(i32, INT32_MIN);
    cr_assert_eq(qb_gguf_get_u64(g, "v.u64", &u64, &err), QB_OK);
    cr_assert_eq(u64, UINT64_MAX);
    cr_assert_eq(qb_gguf_get_i64(g, "v.i64", &i64, &err), QB_OK);
    cr_assert_eq(i64, INT64_MIN);
    cr_assert_eq(qb_gguf_get_f32(g, "v.f32", &f32, &err), QB_OK);
    cr_assert_eq(f32, 1.5e-7f);
    cr_assert_eq(qb_gguf_get_f64(g, "v.f64", &f64, &err), QB_OK);
    cr_assert_eq(f64, -1e300);
    cr_assert_eq(qb_gguf_get_bool(g, "v.bool", &b, &err), QB_OK);
    cr_assert_eq(b, 1);
    const char *s;
    size_t len;
    cr_assert_eq(qb_gguf_get_str(g, "v.str", &s, &len, &err), QB_OK);
    cr_assert_str_eq(s, "llama-bpe ✓");
    cr_assert_eq(len, strlen("llama-bpe ✓"));
    cr_assert_eq(qb_gguf_get_uint(g, "v.u8", &u64, &err), QB_OK);
    cr_assert_eq(u64, 250);
    cr_assert_eq(qb_gguf_get_uint(g, "v.i8", &u64, &err), QB_ERR_FORMAT);
    cr_assert_eq(qb_gguf_get_float(g, "v.f32", &f64, &err), QB_OK);
    cr_assert_eq((float)f64, 1.5e-7f);
    /* type mismatch and missing keys */
    cr_assert_eq(qb_gguf_get_u32(g, "v.u8", &u32, &err), QB_ERR_FORMAT);
    cr_assert_not_null(strstr(err.msg, "has type u8, expected u32"));
    cr_assert_eq(qb_gguf_get_u32(g, "nope", &u32, &err), QB_ERR_RANGE);
    cr_assert_not_null(strstr(err.msg, "missing key 'nope'"));
    struct qb_gguf_array arr;
    cr_assert_eq(qb_gguf_get_array(g, "v.arr_i32", &arr, &err), QB_OK);
    cr_assert_eq(arr.type, QB_GGUF_I32);
    cr_assert_eq(arr.n, 3);
    cr_assert_eq(qb_gguf_array_i64(&arr, 1), -1);
    cr_assert_eq(qb_gguf_array_i64(&arr, 2), 1 << 30);
    cr_assert_eq(qb_gguf_array_i64(&arr, 3), 0);
    cr_assert_eq(qb_gguf_get_array(g, "v.arr_str", &arr, &err), QB_OK);
    cr_assert_eq(arr.n, 3);
    s = qb_gguf_array_str(g, &arr, 2, &len);
    cr_assert_eq(len, strlen("Ġthe"));
    cr_assert(!memcmp(s, "Ġthe", len));
    s = qb_gguf_array_str(g, &arr, 1, &len);
    cr_assert_eq(len, 0);
    cr_assert_null(qb_gguf_array_str(g, &arr, 3, &len));
    cr_assert_eq(qb_gguf_get_array(g, "v.arr_empty", &arr, &err), QB_OK);
    cr_assert_eq(arr.n, 0);
    /* general.alignment was added for the non-default alignment */
    cr_assert_eq(qb_gguf_get_u32(g, "general.alignment", &u32, &err), QB_OK);
    cr_assert_eq(u32, 64);
    cr_assert_eq(qb_gguf_n_tensors(g), 2);
    const struct qb_gguf_tensor *t = qb_gguf_tensor_at(g, 0);
    cr_assert_str_eq(t->name, "w.q8");
    cr_assert_eq(t->type, QB_GGML_Q8_0);
    cr_assert_eq(t->bytes, sizeof q8);
    cr_assert(!memcmp(t->data, q8, sizeof q8));
    t = qb_gguf_find_tensor(g, "w.ramp");
    cr_assert_not_null(t);
    cr_assert_eq(t->n_dims, 3);
    cr_assert_eq(t->ne[2], 2);
    cr_assert_eq(t->ne[3], 1);
    cr_assert_eq(t->offset % 64, 0);
    cr_assert_eq(((const float *)t->data)[23], 11.5f);
    cr_assert_null(qb_gguf_find_tensor(g, "w.bad"));
    qb_gguf_close(g);
    unlink(path);
    rmdir(dir);
}

static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

Test(gguf_rw, failed_write_leaves_nothing)
{
    char *dir = tmp_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/fail.gguf", dir);
    struct qb_gguf_writer *w;
    struct qb_err err;
    cr_assert_eq(qb_gguf_writer_new(&w, &err), QB_OK);
    int64_t ne[1] = {8};
    cr_assert_eq(qb_gguf_add_tensor_fill(w, "x", QB_GGML_F32, 1, ne, fill_fail, NULL, &err), QB_OK);
    cr_assert_eq(qb_gguf_write(w, path, &err), QB_ERR_NUMERIC);
    cr_assert_str_eq(err.msg, "tensor went NaN");
    cr_assert_eq(dir_entries(dir), 0, "a temp or target file was left behind");
    char bad[160];
    snprintf(bad, sizeof bad, "%s/missing-dir/x.gguf", dir);
    cr_assert_eq(qb_gguf_write(w, bad, &err), QB_ERR_IO);
    cr_assert_not_null(strstr(err.msg, "missing-dir"));
    qb_gguf_writer_free(w);
    rmdir(dir);
}

/* ---- llama helpers --------------------------------------------------------------- */

Test(gguf_llama, tensor_names_and_hf_mapping)
{
    char buf[80];
    cr_assert_str_eq(qb_gguf_llama_tensor_name(QB_GGUF_T_TOKEN_EMBD, 0, buf, sizeof buf),
                     "token_embd.weight");
    cr_assert_str_eq(qb_gguf_llama_tensor_name(QB_GGUF_T_OUTPUT, 5, buf, sizeof buf), "output.weight");
    cr_assert_str_eq(qb_gguf_llama_tensor_name(QB_GGUF_T_ATTN_OUTPUT, 7, buf, sizeof buf),
                     "blk.7.attn_output.weight");
    cr_assert_str_eq(qb_gguf_llama_tensor_name(QB_GGUF_T_FFN_DOWN, 31, buf, sizeof buf),
                     "blk.31.ffn_down.weight");
    static const char *const pairs[][2] = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
        {"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"},
        {"model.layers.12.self_attn.q_proj.weight", "blk.12.attn_q.weight"},
        {"model.layers.12.self_attn.k_proj.bias", "blk.12.attn_k.bias"},
        {"model.layers.3.self_attn.v_proj.weight", "blk.3.attn_v.weight"},
        {"model.layers.3.self_attn.o_proj.weight", "blk.3.attn_output.weight"},
        {"model.layers.3.post_attention_layernorm.weight", "blk.3.ffn_norm.weight"},
        {"model.layers.3.mlp.gate_proj.weight", "blk.3.ffn_gate.weight"},
        {"model.layers.3.mlp.up_proj.weight", "blk.3.ffn_up.weight"},
        {"model.layers.3.mlp.down_proj.weight", "blk.3.ffn_down.weight"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        cr_assert_eq(qb_gguf_llama_name_from_hf(pairs[i][0], buf, sizeof buf), 0, "%s", pairs[i][0]);
        cr_assert_str_eq(buf, pairs[i][1]);
    }
    cr_assert_eq(qb_gguf_llama_name_from_hf("model.layers.3.self_attn.rotary_emb.inv_freq", buf,
                                            sizeof buf), -1);
    cr_assert_eq(qb_gguf_llama_name_from_hf("model.layers.x.mlp.up_proj.weight", buf, sizeof buf), -1);
}

Test(gguf_llama, qk_permutation_matches_hand_computed_rows)
{
    /* 2 heads, head_dim 4: HF rows per head [a0 a1 b0 b1] (halves a,b) ->
     * GGUF [a0 b0 a1 b1]: gguf row order = hf rows 0 2 1 3 | 4 6 5 7 */
    int32_t src[8][3], dst[8][3], back[8][3];
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 3; c++)
            src[r][c] = r * 10 + c;
    cr_assert_eq(qb_gguf_permute_qk(src, dst, 8, 3, 2, sizeof(int32_t)), 0);
    const int want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 3; c++)
            cr_assert_eq(dst[r][c], want[r] * 10 + c, "row %d", r);
    cr_assert_eq(qb_gguf_unpermute_qk(dst, back, 8, 3, 2, sizeof(int32_t)), 0);
    cr_assert(!memcmp(src, back, sizeof src));
    /* head_dim 64 (the demo model): permute then unpermute is the identity and
     * row h*64 + 2i + 1 comes from h*64 + 32 + i */
    static float a[256 * 2], b[256 * 2], c2[256 * 2];
    for (int i = 0; i < 512; i++)
        a[i] = (float)i;
    cr_assert_eq(qb_gguf_permute_qk(a, b, 256, 2, 4, sizeof(float)), 0);
    cr_assert_eq(b[(64 * 1 + 2 * 5 + 1) * 2], a[(64 * 1 + 32 + 5) * 2]);
    cr_assert_eq(qb_gguf_unpermute_qk(b, c2, 256, 2, 4, sizeof(float)), 0);
    cr_assert(!memcmp(a, c2, sizeof a));
    cr_assert_eq(qb_gguf_permute_qk(a, b, 6, 2, 4, sizeof(float)), -1);
}

Test(gguf_llama, metadata_round_trip)
{
    char *dir = tmp_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/meta.gguf", dir);
    struct qb_gguf_writer *w;
    struct qb_err err;
    struct qb_gguf_llama_hparams hp = {
        .name = "ref-llama-10m", .n_vocab = 8192, .n_ctx = 1024, .n_embd = 256, .n_ff = 768,
        .n_layer = 8, .n_head = 4, .n_head_kv = 2, .head_dim = 64, .rope_theta = 10000.0f,
        .rms_norm_eps = 1e-5f, .file_type = QB_GGUF_FTYPE_Q4_K_M,
    };
    cr_assert_eq(qb_gguf_writer_new(&w, &err), QB_OK);
    cr_assert_eq(qb_gguf_llama_add_metadata(w, &hp, &err), QB_OK);
    cr_assert_eq(qb_gguf_write(w, path, &err), QB_OK, "%s", err.msg);
    qb_gguf_writer_free(w);
    struct qb_gguf *g;
    struct qb_gguf_llama_hparams rd;
    cr_assert_eq(qb_gguf_open(path, &g, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(qb_gguf_llama_read_hparams(g, &rd, &err), QB_OK, "%s", err.msg);
    cr_assert_str_eq(rd.name, "ref-llama-10m");
    cr_assert_eq(rd.n_vocab, 8192);
    cr_assert_eq(rd.n_layer, 8);
    cr_assert_eq(rd.n_head_kv, 2);
    cr_assert_eq(rd.head_dim, 64);
    cr_assert_eq(rd.rms_norm_eps, 1e-5f);
    cr_assert_eq(rd.file_type, 15);
    const char *arch;
    uint32_t qv;
    cr_assert_eq(qb_gguf_get_str(g, "general.architecture", &arch, NULL, &err), QB_OK);
    cr_assert_str_eq(arch, "llama");
    cr_assert_eq(qb_gguf_get_u32(g, "general.quantization_version", &qv, &err), QB_OK);
    cr_assert_eq(qv, 2);
    cr_assert_eq(qb_gguf_get_u32(g, "llama.attention.head_count_kv", &qv, &err), QB_OK);
    cr_assert_eq(qv, 2);
    qb_gguf_close(g);
    unlink(path);
    rmdir(dir);
}

/* ---- tokenizer.ggml.pre ------------------------------------------------------------ */

Test(gguf_pre, regex_to_name)
{
    const char *llama3_hf[] = {
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
        "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
    cr_assert_str_eq(qb_gguf_pre_from_regexes(llama3_hf, 1), "llama-bpe");
    const char *qwen2_hf[] = {
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
        "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
    cr_assert_str_eq(qb_gguf_pre_from_regexes(qwen2_hf, 1), "qwen2");
    const char *gpt2_hf[] = {
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"};
    cr_assert_str_eq(qb_gguf_pre_from_regexes(gpt2_hf, 1), "gpt-2");
    const char *starcoder_hf[] = {"\\p{N}", gpt2_hf[0]};
    cr_assert_str_eq(qb_gguf_pre_from_regexes(starcoder_hf, 2), "starcoder");
    const char *ds_coder[] = {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"};
    cr_assert_str_eq(qb_gguf_pre_from_regexes(ds_coder, 5), "deepseek-coder");
    const char *unknown[] = {"\\w+"};
    cr_assert_null(qb_gguf_pre_from_regexes(unknown, 1));
    cr_assert_null(qb_gguf_pre_from_regexes(gpt2_hf, 0));
}

Test(gguf_pre, name_to_regex_and_back)
{
    static const char *const names[] = {"llama-bpe", "qwen2", "gpt-2", "starcoder", "falcon",
                                        "deepseek-llm", "deepseek-coder", "deepseek-v3",
                                        "poro-chat", "viking"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n;
        int known;
        const char *const *rx = qb_gguf_pre_regexes(names[i], &n, &known);
        cr_assert(known && n >= 1, "%s", names[i]);
        cr_assert_str_eq(qb_gguf_pre_from_regexes(rx, n), names[i]);
    }
    /* the nine llama.cpp vocab-test pre names */
    static const char *const vocab_pres[] = {"default", "gpt-2", "starcoder", "falcon",
                                             "deepseek-llm", "deepseek-coder", "mpt", "refact"};
    for (size_t i = 0; i < sizeof vocab_pres / sizeof vocab_pres[0]; i++) {
        size_t n;
        int known;
        qb_gguf_pre_regexes(vocab_pres[i], &n, &known);
        cr_assert(known, "%s", vocab_pres[i]);
    }
    size_t n, n2;
    int known;
    const char *const *mpt = qb_gguf_pre_regexes("mpt", &n, &known);
    const char *const *gpt2 = qb_gguf_pre_regexes("gpt-2", &n2, &known);
    cr_assert_eq(mpt, gpt2);
    const char *const *falcon = qb_gguf_pre_regexes("falcon", &n, &known);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(falcon[2], "[0-9][0-9][0-9]");
    const char *const *dsl = qb_gguf_pre_regexes("deepseek-llm", &n, &known);
    cr_assert_eq(n, 6);
    cr_assert_str_eq(dsl[0], "[\r\n]");
    cr_assert_str_eq(dsl[5], "\\p{N}+");
    const char *const *def = qb_gguf_pre_regexes("no-such-pre", &n, &known);
    cr_assert_eq(known, 0);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(def[3], "[0-9][0-9][0-9]");
}

/* ---- llama.cpp b4748 mixing rules ----------------------------------------------------- */

enum kind { K_EMBD, K_OUT, K_NORM, K_Q, K_K, K_V, K_O, K_GATE, K_UP, K_DOWN, K_N };

struct shape_model {
    int n_layer, n_head, n_head_kv, n_embd, n_ff, n_kv_rows;
};

static int64_t kind_ne0(const struct shape_model *m, enum kind k)
{
    return k == K_DOWN ? m->n_ff : m->n_embd;
}

static void kind_name(enum kind k, int layer, char *buf)
{
    static const char *const stems[K_N] = {"token_embd", "output", "attn_norm", "attn_q", "attn_k",
                                           "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                           "ffn_down"};
    if (k <= K_OUT)
        sprintf(buf, "%s.weight", stems[k]);
    else
        sprintf(buf, "blk.%d.%s.weight", layer, stems[k]);
}

/* expected[kind] is a ggml type, or -1 for "promoted on more-bits layers":
 * then `more` holds the promoted type and `base` the other layers' type; -2
 * for "first `first_n` layers get `first_t`". */
struct expect {
    int t[K_N];
    int more_kinds_v, more_kinds_down; /* 1 when V / down follow use_more_bits */
    int more_t;
    int v_first_n, v_first_t, down_first_n, down_first_t;
};

static int hand_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static void check_mix(int ftype, const struct shape_model *m, const struct expect *e,
                      const int *more_layers, int n_more)
{
    struct qb_gguf_mix_arch arch = {m->n_layer, m->n_head, m->n_head_kv, 0, 1, 0};
    struct qb_err err;
    for (int layer = 0; layer < m->n_layer; layer++) {
        int listed = 0;
        for (int j = 0; j < n_more; j++)
            listed |= more_layers[j] == layer;
        cr_assert_eq(listed, hand_more_bits(layer, m->n_layer), "layer list %d", layer);
        for (int k = 0; k < K_N; k++) {
            if ((k == K_EMBD || k == K_OUT) && layer > 0)
                continue;
            char name[64];
            kind_name((enum kind)k, layer, name);
            int want = e->t[k];
            if (k == K_V && e->more_kinds_v && listed)
                want = e->more_t;
            if (k == K_DOWN && e->more_kinds_down && listed)
                want = e->more_t;
            if (k == K_V && layer < e->v_first_n)
                want = e->v_first_t;
            if (k == K_DOWN && layer < e->down_first_n)
                want = e->down_first_t;
            int got = -1;
            int n_dims = k == K_NORM ? 1 : 2;
            cr_assert_eq(qb_gguf_mix_type(ftype, &arch, name, n_dims, kind_ne0(m, (enum kind)k),
                                          QB_GGML_F32, &got, &err), QB_OK, "%s", err.msg);
            cr_assert_eq(got, want, "%s %s: got %s want %s", qb_gguf_ftype_name(ftype), name,
                         qb_ggml_type_info(got)->name, qb_ggml_type_info(want)->name);
        }
    }
}

#define T(...) {__VA_ARGS__}
enum { F32 = QB_GGML_F32, F16 = QB_GGML_F16, Q4_0 = QB_GGML_Q4_0, Q5_0 = QB_GGML_Q5_0,
       Q5_1 = QB_GGML_Q5_1, Q8_0 = QB_GGML_Q8_0, Q2K = QB_GGML_Q2_K, Q3K = QB_GGML_Q3_K,
       Q4K = QB_GGML_Q4_K, Q5K = QB_GGML_Q5_K, Q6K = QB_GGML_Q6_K, IQ4NL = QB_GGML_IQ4_NL };

Test(gguf_mix, llama3_8b)
{
    /* 32 layers, 32 heads / 8 kv heads (n_gqa 4), hidden 4096, ffn 14336 */
    const struct shape_model m = {32, 32, 8, 4096, 14336, 1024};
    const int more[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    const int nm = 16;
    /*                      embd  out  norm  q    k    v    o    gate up   down */
    struct expect q4km = {T(Q4K, Q6K, F32, Q4K, Q4K, Q4K, Q4K, Q4K, Q4K, Q4K), 1, 1, Q6K, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q4_K_M, &m, &q4km, more, nm);
    struct expect q5km = {T(Q5K, Q6K, F32, Q5K, Q5K, Q5K, Q5K, Q5K, Q5K, Q5K), 1, 1, Q6K, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q5_K_M, &m, &q5km, more, nm);
    struct expect q4ks = {T(Q4K, Q6K, F32, Q4K, Q4K, Q4K, Q4K, Q4K, Q4K, Q4K), 0, 0, 0, 4, Q5K, 4, Q5K};
    check_mix(QB_GGUF_FTYPE_Q4_K_S, &m, &q4ks, more, nm);
    struct expect q5ks = {T(Q5K, Q6K, F32, Q5K, Q5K, Q5K, Q5K, Q5K, Q5K, Q5K), 0, 0, 0, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q5_K_S, &m, &q5ks, more, nm);
    struct expect q3km = {T(Q3K, Q6K, F32, Q3K, Q3K, Q4K, Q4K, Q3K, Q3K, Q4K), 0, 0, 0, 2, Q5K, 2, Q5K};
    check_mix(QB_GGUF_FTYPE_Q3_K_M, &m, &q3km, more, nm);
    struct expect q3ks = {T(Q3K, Q6K, F32, Q3K, Q3K, Q3K, Q3K, Q3K, Q3K, Q3K), 0, 0, 0, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q3_K_S, &m, &q3ks, more, nm);
    struct expect q2k = {T(Q2K, Q6K, F32, Q2K, Q2K, Q4K, Q3K, Q2K, Q2K, Q3K), 0, 0, 0, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q2_K, &m, &q2k, more, nm);
    struct expect q6k = {T(Q6K, Q6K, F32, Q6K, Q6K, Q6K, Q6K, Q6K, Q6K, Q6K), 0, 0, 0, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q6_K, &m, &q6k, more, nm);
    struct expect q80 = {T(Q8_0, Q8_0, F32, Q8_0, Q8_0, Q8_0, Q8_0, Q8_0, Q8_0, Q8_0), 0, 0, 0, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q8_0, &m, &q80, more, nm);
    struct expect q40 = {T(Q4_0, Q6K, F32, Q4_0, Q4_0, Q4_0, Q4_0, Q4_0, Q4_0, Q4_0), 0, 0, 0, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q4_0, &m, &q40, more, nm);
    struct expect f16 = {T(F16, F16, F32, F16, F16, F16, F16, F16, F16, F16), 0, 0, 0, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_F16, &m, &f16, more, nm);
}

Test(gguf_mix, demo_model_shapes_need_no_fallback)
{
    /* ref-llama-10m: 8 layers, 4 heads / 2 kv (n_gqa 2), hidden 256, ffn 768 = 3*256:
     * every row length is a multiple of 256, so no fallback applies */
    const struct shape_model m = {8, 4, 2, 256, 768, 128};
    const int more[] = {0, 3, 6, 7};
    struct expect q4km = {T(Q4K, Q6K, F32, Q4K, Q4K, Q4K, Q4K, Q4K, Q4K, Q4K), 1, 1, Q6K, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q4_K_M, &m, &q4km, more, 4);
    struct expect q2k = {T(Q2K, Q6K, F32, Q2K, Q2K, Q3K, Q3K, Q2K, Q2K, Q3K), 0, 0, 0, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q2_K, &m, &q2k, more, 4); /* n_gqa 2 < 4: attn_v Q3_K */
    struct expect q3km = {T(Q3K, Q6K, F32, Q3K, Q3K, Q4K, Q4K, Q3K, Q3K, Q4K), 0, 0, 0, 2, Q5K, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q3_K_M, &m, &q3km, more, 4); /* 8/16 = 0 layers of Q5_K down */
    struct expect q4ks = {T(Q4K, Q6K, F32, Q4K, Q4K, Q4K, Q4K, Q4K, Q4K, Q4K), 0, 0, 0, 4, Q5K, 1, Q5K};
    check_mix(QB_GGUF_FTYPE_Q4_K_S, &m, &q4ks, more, 4);
}

Test(gguf_mix, fallbacks_for_rows_not_divisible_by_256)
{
    /* hidden 320 and ffn 864: multiples of 32, not of 256 */
    const struct shape_model m = {8, 5, 5, 320, 864, 320};
    const int more[] = {0, 3, 6, 7};
    struct expect q4km = {T(Q5_0, Q8_0, F32, Q5_0, Q5_0, Q5_0, Q5_0, Q5_0, Q5_0, Q5_0), 1, 1, Q8_0, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q4_K_M, &m, &q4km, more, 4);
    struct expect q5ks = {T(Q5_1, Q8_0, F32, Q5_1, Q5_1, Q5_1, Q5_1, Q5_1, Q5_1, Q5_1), 0, 0, 0, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q5_K_S, &m, &q5ks, more, 4);
    struct expect q2k = {T(IQ4NL, Q8_0, F32, IQ4NL, IQ4NL, IQ4NL, IQ4NL, IQ4NL, IQ4NL, IQ4NL), 0, 0, 0, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q2_K, &m, &q2k, more, 4);
    struct expect q6k = {T(Q8_0, Q8_0, F32, Q8_0, Q8_0, Q8_0, Q8_0, Q8_0, Q8_0, Q8_0), 0, 0, 0, 0, 0, 0, 0};
    check_mix(QB_GGUF_FTYPE_Q6_K, &m, &q6k, more, 4);

    struct qb_gguf_mix_arch arch = {8, 5, 5, 0, 1, 1};
    struct qb_err err;
    int got;
    cr_assert_eq(qb_gguf_mix_type(QB_GGUF_FTYPE_Q3_K_S, &arch, "blk.0.ffn_up.weight", 2, 320,
                                  F32, &got, &err), QB_OK);
    cr_assert_eq(got, Q4_0, "modern fallback Q3_K -> Q4_0");
    arch.modern_fallback = 0;
    /* not even a multiple of 32: F16, or an error for the 32-block ftypes */
    cr_assert_eq(qb_gguf_mix_type(QB_GGUF_FTYPE_Q4_K_M, &arch, "blk.0.ffn_up.weight", 2, 100, F32,
                                  &got, &err), QB_OK);
    cr_assert_eq(got, F16);
    cr_assert_eq(qb_gguf_mix_type(QB_GGUF_FTYPE_Q4_0, &arch, "blk.0.ffn_up.weight", 2, 100, F32,
                                  &got, &err), QB_ERR_UNSUPPORTED);
    cr_assert_not_null(strstr(err.msg, "blk.0.ffn_up.weight"));
}

Test(gguf_mix, special_cases)
{
    struct qb_gguf_mix_arch tied = {32, 32, 8, 0, 0, 0};
    struct qb_err err;
    int got;
    /* tied embeddings: token_embd is treated as the output tensor */
    cr_assert_eq(qb_gguf_mix_type(QB_GGUF_FTYPE_Q4_K_M, &tied, "token_embd.weight", 2, 4096, F32,
                                  &got, &err), QB_OK);
    cr_assert_eq(got, Q6K);
    /* 70B (80 layers, GQA): attn_v Q4_K -> Q5_K */
    struct qb_gguf_mix_arch l70 = {80, 64, 8, 0, 1, 0};
    cr_assert_eq(qb_gguf_mix_type(QB_GGUF_FTYPE_Q4_K_M, &l70, "blk.11.attn_v.weight", 2, 8192, F32,
                                  &got, &err), QB_OK);
    cr_assert_eq(got, Q5K);
    /* 8 experts: attn_v and attn_k Q8_0 */
    struct qb_gguf_mix_arch moe = {32, 32, 8, 8, 1, 0};
    cr_assert_eq(qb_gguf_mix_type(QB_GGUF_FTYPE_Q4_K_M, &moe, "blk.1.attn_k.weight", 2, 4096, F32,
                                  &got, &err), QB_OK);
    cr_assert_eq(got, Q8_0);
    /* not quantized: norms, 1-D, names not ending in weight */
    cr_assert_eq(qb_gguf_mix_type(QB_GGUF_FTYPE_Q4_K_M, &tied, "blk.0.ffn_norm.weight", 1, 4096,
                                  F32, &got, &err), QB_OK);
    cr_assert_eq(got, F32);
    cr_assert_eq(qb_gguf_mix_type(QB_GGUF_FTYPE_Q2_K, &tied, "rope_freqs.weight", 1, 64, F32, &got,
                                  &err), QB_OK);
    cr_assert_eq(got, F32);
    cr_assert_eq(qb_gguf_mix_type(QB_GGUF_FTYPE_Q4_K_M, &tied, "blk.0.attn_q.bias", 2, 4096, F16,
                                  &got, &err), QB_OK);
    cr_assert_eq(got, F16);
    cr_assert_eq(qb_gguf_mix_type(99, &tied, "output.weight", 2, 4096, F32, &got, &err),
                 QB_ERR_USAGE);
    cr_assert_eq(qb_gguf_ftype_from_name("gguf-q4_k_m"), QB_GGUF_FTYPE_Q4_K_M);
    cr_assert_eq(qb_gguf_ftype_from_name("Q8_0"), QB_GGUF_FTYPE_Q8_0);
    cr_assert_eq(qb_gguf_ftype_from_name("f16"), QB_GGUF_FTYPE_F16);
    cr_assert_eq(qb_gguf_ftype_from_name("q4_k_x"), -1);
    cr_assert_str_eq(qb_gguf_ftype_name(QB_GGUF_FTYPE_Q3_K_M), "Q3_K_M");
}

/* ---- llama.cpp vocabulary files ------------------------------------------------------ */

Test(gguf_vocab, reads_llamacpp_vocab_files)
{
    static const struct {
        const char *file, *model, *pre;
        uint64_t n_tokens;
        uint32_t bos;
    } files[] = {
        {"llama-spm", "llama", "default", 32000, 1},
        {"phi-3", "llama", "default", 32064, 1},
        {"gpt-2", "gpt2", "gpt-2", 50257, 50256},
        {"starcoder", "gpt2", "starcoder", 49152, 0},
        {"falcon", "gpt2", "falcon", 65024, 11},
        {"deepseek-llm", "gpt2", "deepseek-llm", 102400, 100000},
        {"deepseek-coder", "gpt2", "deepseek-coder", 32256, 32013},
        {"mpt", "gpt2", "mpt", 50432, 0},
        {"refact", "gpt2", "refact", 49216, 0},
    };
    char path[512];
    snprintf(path, sizeof path, "%s/llamacpp-vocab-tests", QB_SHARED_DATA);
    struct stat sb;
    if (stat(path, &sb) != 0)
        cr_skip_test("no %s", path);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        struct qb_gguf *g;
        struct qb_err err;
        const char *s;
        struct qb_gguf_array arr;
        uint32_t bos;
        snprintf(path, sizeof path, "%s/llamacpp-vocab-tests/ggml-vocab-%s.gguf", QB_SHARED_DATA,
                 files[i].file);
        cr_assert_eq(qb_gguf_open(path, &g, &err), QB_OK, "%s", err.msg);
        cr_assert_eq(qb_gguf_n_tensors(g), 0);
        cr_assert_eq(qb_gguf_get_str(g, "tokenizer.ggml.model", &s, NULL, &err), QB_OK);
        cr_assert_str_eq(s, files[i].model);
        cr_assert_eq(qb_gguf_get_str(g, "tokenizer.ggml.pre", &s, NULL, &err), QB_OK);
        cr_assert_str_eq(s, files[i].pre);
        size_t n_rx;
        int known;
        qb_gguf_pre_regexes(s, &n_rx, &known);
        cr_assert(known, "pre '%s' unknown", s);
        cr_assert_eq(qb_gguf_get_array(g, "tokenizer.ggml.tokens", &arr, &err), QB_OK);
        cr_assert_eq(arr.type, QB_GGUF_STRING);
        cr_assert_eq(arr.n, files[i].n_tokens, "%s", files[i].file);
        struct qb_gguf_array types;
        cr_assert_eq(qb_gguf_get_array(g, "tokenizer.ggml.token_type", &types, &err), QB_OK);
        cr_assert_eq(types.type, QB_GGUF_I32);
        cr_assert_eq(types.n, arr.n);
        cr_assert_eq(qb_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos, &err), QB_OK);
        cr_assert_eq(bos, files[i].bos, "%s", files[i].file);
        if (!strcmp(files[i].model, "gpt2")) {
            struct qb_gguf_array merges;
            cr_assert_eq(qb_gguf_get_array(g, "tokenizer.ggml.merges", &merges, &err), QB_OK);
            size_t len;
            const char *m0 = qb_gguf_array_str(g, &merges, 0, &len);
            cr_assert_not_null(memchr(m0, ' ', len), "merge 0 has no space");
        } else {
            struct qb_gguf_array scores;
            cr_assert_eq(qb_gguf_get_array(g, "tokenizer.ggml.scores", &scores, &err), QB_OK);
            cr_assert_eq(scores.type, QB_GGUF_F32);
            cr_assert_eq(scores.n, arr.n);
        }
        qb_gguf_close(g);
    }
}
