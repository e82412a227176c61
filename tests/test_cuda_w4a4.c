/*
 * test_cuda_w4a4.c - native FP4 W4A4 (kernels/qb_w4a4.h): the layout, the
 * host side and the CPU emulation of the block-scaled GEMM, in every build;
 * the GPU activation quantizer against its host reference where a GPU is.
 *
 * On the CPU (no GPU needed):
 *   - the host+device codec (kernels/w4a4_codec.h) against core's encoders and
 *     decoders on every code and on ~1.3 M float inputs (bit-exact);
 *   - the swizzled scale offsets: hand-computed values and a bijection onto the
 *     padded 128 x 4 tiles;
 *   - weight repacking: un-swizzled scales and codes equal the core nvfp4 /
 *     mxfp4 payloads byte for byte, padding zero;
 *   - the host activation quantizer decodes to exactly qb_act_quantize_rows;
 *   - the emulated block-scaled product equals core/linear.c's W4A4 reference
 *     (qb_linear_matmul) within TOL_EMULATED on random shapes and on every
 *     linear of two layers of the demo model.
 * On a GPU: the quantizer kernel's codes, swizzled scales and token scales are
 * bit-identical to the host reference, and the decode GEMV over the uploaded
 * layouts matches the emulation (any GPU, sm_90 included); below sm_100
 * W4A4 is refused with a clear error; from sm_100 the cuBLASLt FP4 linear is
 * compared with the emulation (never run by the project: no such GPU).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qb_test_util.h"
#include "dtype.h"
#include "engine.h"
#include "fp_formats.h"
#include "kernels/qb_cuda.h"
#include "kernels/qb_w4a4.h"
#include "kernels/w4a4_codec.h"
#include "linear.h"
#include "model.h"
#include "quant.h"
#include "quant_blocks.h"
#include "quant_impl.h"
#include "threadpool.h"

/* Emulated GEMM vs core's reference: both multiply the same quantized values;
 * they differ in f32 rounding only (core rounds e2m1 * (s/g) per element and
 * sums in SIMD order; the GPU multiplies e2m1 * s exactly, sums in k order and
 * divides by g once), a few ulp per product: relative L2 error ~1e-7. */
#define TOL_EMULATED 1e-5
/* The cuBLASLt FP4 GEMM (sm_100+) vs the emulation: tensor-core accumulation
 * order and internal precision of the block sums. */
#define TOL_FP4_GEMM 1e-4
/* The decode GEMV vs the emulation: the same exact products, f32 sums in warp
 * order instead of k order. */
#define TOL_GEMV 1e-5
/* SwiGLU GEMV: the output is stored as bf16 (2^-9 relative) */
#define TOL_SWIGLU 8e-3

static struct qb_err err;


static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_u64(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static float frand(void) /* [-1, 1) */
{
    return (float)((next_u64() >> 40) * (2.0 / 16777216.0) - 1.0);
}

static uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static int same_float(float a, float b)
{
    return (isnan(a) && isnan(b)) || bits_of(a) == bits_of(b);
}

/* ---- the codec against core ------------------------------------------------------ */

static void check_codec_value(float x)
{
    cr_assert_eq(qb_w4_e4m3_from_f32(x), qb_e4m3_from_f32(x), "e4m3(%a)", (double)x);
    cr_assert_eq(qb_w4_e2m1_from_f32(x), qb_e2m1_from_f32(x), "e2m1(%a)", (double)x);
    float a = fabsf(x);
    cr_assert_eq(qb_w4_mx_scale(a), qb_e8m0_mx_scale(a, 2), "mx scale(%a)", (double)a);
    cr_assert(same_float(qb_w4_nvfp4_global(a), qb_nvfp4_global_scale(a)), "global(%a)",
              (double)a);
}

Test(w4a4_codec, decoders_match_core_on_every_code)
{
    for (int c = 0; c < 256; c++) {
        cr_assert(same_float(qb_w4_e4m3_to_f32((uint8_t)c), qb_e4m3_to_f32((uint8_t)c)),
                  "e4m3 code %d", c);
        cr_assert(same_float(qb_w4_e8m0_to_f32((uint8_t)c), qb_e8m0_to_f32((uint8_t)c)),
                  "e8m0 code %d", c);
    }
    for (int c = 0; c < 16; c++)
        cr_assert(same_float(qb_w4_e2m1_to_f32((uint8_t)c), qb_e2m1_values[c]), "e2m1 %d", c);
}

Test(w4a4_codec, encoders_match_core)
{
    static const float edges[] = {0.0f, -0.0f, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f,
                                  6.0f, 7.0f, 448.0f, 464.0f, 480.0f, 1e30f, 0x1p-6f, 0x1p-7f,
                                  0x1p-9f, 0x1p-10f, 0x1.8p-10f, 0x1p-149f, 0x1p-127f,
                                  INFINITY, -INFINITY, NAN};
    int n = 0;
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++, n++)
        check_codec_value(edges[i]);
    /* every E4M3 and E2M1 grid point, midpoint and neighbour ulp */
    for (int c = 0; c < 127; c++) {
        float v = qb_e4m3_to_f32((uint8_t)c), w = qb_e4m3_to_f32((uint8_t)(c + 1));
        float mid = (v + w) / 2;
        check_codec_value(mid);
        check_codec_value(float_of(bits_of(mid) + 1));
        check_codec_value(float_of(bits_of(mid) - 1));
        check_codec_value(-mid);
        n += 4;
    }
    for (int i = 0; i < (1 << 20); i++, n++) /* random bit patterns: every exponent */
        check_codec_value(float_of((uint32_t)next_u64()));
    for (int i = 0; i < (1 << 18); i++, n++) /* the range block scaling actually meets */
        check_codec_value(frand() * 8.0f);
    cr_log_info("codec: %d inputs bit-identical to core", n);
}

Test(w4a4_codec, block_encoders_match_core)
{
    for (int b = 0; b < 20000; b++) {
        float x[32], g = qb_nvfp4_global_scale(ldexpf(1.0f, (int)(next_u64() % 40) - 20));
        float mag = ldexpf(1.0f, (int)(next_u64() % 60) - 30);
        uint8_t c1[32], c2[32];
        for (int i = 0; i < 32; i++)
            x[i] = (b % 7 == 0 && i % 3) ? 0.0f : frand() * mag;
        cr_assert_eq(qb_w4_nvfp4_block(x, 16, g, c1), qb_nvfp4_block_encode(x, 16, g, c2));
        cr_assert_eq(memcmp(c1, c2, 16), 0, "nvfp4 block %d codes", b);
        cr_assert_eq(qb_w4_mxfp4_block(x, 32, c1), qb_mxfp4_block_encode(x, 32, c2));
        cr_assert_eq(memcmp(c1, c2, 32), 0, "mxfp4 block %d codes", b);
    }
}

/* ---- the swizzled layout ---------------------------------------------------------- */

Test(w4a4_layout, hand_computed_offsets)
{
    /* one 128 x 4 tile: (r % 32) * 16 + (r / 32) * 4 + c */
    cr_assert_eq(qb_w4a4_sf_offset(0, 0, 4), 0);
    cr_assert_eq(qb_w4a4_sf_offset(0, 3, 4), 3);
    cr_assert_eq(qb_w4a4_sf_offset(1, 0, 4), 16);
    cr_assert_eq(qb_w4a4_sf_offset(32, 0, 4), 4);
    cr_assert_eq(qb_w4a4_sf_offset(97, 2, 4), 1 * 16 + 3 * 4 + 2);
    cr_assert_eq(qb_w4a4_sf_offset(127, 3, 4), 511);
    /* k tiles of a 128-row band are adjacent, then the next band */
    cr_assert_eq(qb_w4a4_sf_offset(0, 4, 12), 512);
    cr_assert_eq(qb_w4a4_sf_offset(5, 9, 12), 1024 + 5 * 16 + 1);
    cr_assert_eq(qb_w4a4_sf_offset(128, 0, 12), 3 * 512);
    cr_assert_eq(qb_w4a4_sf_offset(130, 5, 12), 4 * 512 + 2 * 16 + 1);
}

Test(w4a4_layout, offsets_are_a_bijection_on_the_padded_tiles)
{
    static const int64_t shapes[][2] = {{1, 32}, {33, 96}, {128, 64}, {200, 96}, {300, 544}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        for (int kind = QB_ACT_NVFP4; kind <= QB_ACT_MXFP4; kind++) {
            struct qb_w4a4_shape s;
            QBT_OK(qb_w4a4_shape_init(&s, kind, shapes[i][0], shapes[i][1], "t", &err));
            cr_assert_eq(s.sf_rows % 128, 0);
            cr_assert_eq(s.sf_cols % 4, 0);
            size_t bytes = qb_w4a4_scales_bytes(&s);
            uint8_t *seen = calloc(bytes, 1);
            for (int64_t r = 0; r < s.sf_rows; r++)
                for (int64_t kb = 0; kb < s.sf_cols; kb++) {
                    size_t o = qb_w4a4_sf_offset(r, kb, s.sf_cols);
                    cr_assert_lt(o, bytes);
                    cr_assert_eq(seen[o], 0, "offset %zu hit twice", o);
                    seen[o] = 1;
                }
            free(seen);
        }
    }
}

Test(w4a4_layout, bad_shapes_are_refused)
{
    struct qb_w4a4_shape s;
    cr_assert_eq(qb_w4a4_shape_init(&s, QB_ACT_NVFP4, 4, 48, "x.weight", &err),
                 QB_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "x.weight") && strstr(err.msg, "multiple of 32"), "%s", err.msg);
    cr_assert_eq(qb_w4a4_shape_init(&s, QB_ACT_FP8_E4M3, 4, 64, "y", &err), QB_ERR_UNSUPPORTED);
}

/* ---- weights ------------------------------------------------------------------------ */

static void random_linear(enum qb_act_mode kind, int64_t rows, int64_t cols, int with_bias,
                          struct qb_linear *lin)
{
    size_t n = (size_t)rows * (size_t)cols;
    float *w = malloc(n * sizeof *w);
    struct qb_quant_params qp = {.act = kind};
    for (size_t i = 0; i < n; i++) /* rows of different magnitude, a few outliers */
        w[i] = frand() * 0.05f * (1 + (int)(i / (size_t)cols % 5)) * (i % 89 == 0 ? 6 : 1);
    QBT_OK(qb_linear_quantize(w, rows, cols, kind == QB_ACT_NVFP4 ? QB_WFMT_NVFP4 : QB_WFMT_MXFP4,
                          &qp, "test.weight", lin, &err));
    if (with_bias) {
        lin->owned_bias = malloc((size_t)rows * sizeof(float));
        for (int64_t r = 0; r < rows; r++)
            lin->owned_bias[r] = frand() * 0.1f;
        lin->bias = lin->owned_bias;
    }
    free(w);
}

/* Un-swizzled scales and the codes equal the core payload; padding bytes are 0. */
static void check_repack(const struct qb_linear *lin)
{
    struct qb_w4a4_operand op;
    QBT_OK(qb_w4a4_pack_weight(lin, "test.weight", &op, &err));
    int block = op.s.block;
    int64_t kbs = lin->cols / block;
    size_t rec = 1 + (size_t)block / 2, hdr = op.kind == QB_ACT_NVFP4 ? 16 : 0;
    const uint8_t *p = (const uint8_t *)lin->data + hdr;
    uint8_t *sc = malloc((size_t)(lin->rows * kbs));
    qb_w4a4_unswizzle(&op, sc);
    for (int64_t r = 0; r < lin->rows; r++)
        for (int64_t kb = 0; kb < kbs; kb++) {
            const uint8_t *b = p + (size_t)(r * kbs + kb) * rec;
            cr_assert_eq(sc[r * kbs + kb], b[0], "scale (%lld, %lld)", (long long)r,
                         (long long)kb);
            cr_assert_eq(memcmp(op.codes + r * (lin->cols / 2) + kb * block / 2, b + 1,
                                (size_t)block / 2), 0, "codes (%lld, %lld)", (long long)r,
                         (long long)kb);
        }
    size_t used = 0; /* every byte outside the real scales is padding: zero */
    for (size_t i = 0; i < qb_w4a4_scales_bytes(&op.s); i++)
        used += op.scales[i] != 0;
    size_t nonzero_real = 0;
    for (int64_t i = 0; i < lin->rows * kbs; i++)
        nonzero_real += sc[i] != 0;
    cr_assert_eq(used, nonzero_real, "non-zero padding in the swizzled scales");
    if (op.kind == QB_ACT_NVFP4)
        cr_assert(same_float(op.global[lin->rows - 1], lin->qp.global_scale));
    free(sc);
    qb_w4a4_operand_free(&op);
}

Test(w4a4_weights, repacking_keeps_the_core_payload)
{
    static const int64_t shapes[][2] = {{200, 96}, {128, 256}, {33, 64}, {768, 256}, {5, 544}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int kind = QB_ACT_NVFP4; kind <= QB_ACT_MXFP4; kind++) {
            struct qb_linear lin;
            random_linear(kind, shapes[i][0], shapes[i][1], 0, &lin);
            check_repack(&lin);
            qb_linear_release(&lin);
        }
}

Test(w4a4_weights, weight_only_fp4_is_refused)
{
    struct qb_linear lin;
    struct qb_w4a4_operand op;
    random_linear(QB_ACT_NVFP4, 8, 64, 0, &lin);
    lin.qp.act = QB_ACT_F32;
    cr_assert_eq(qb_w4a4_pack_weight(&lin, "w.weight", &op, &err), QB_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "w.weight"), "%s", err.msg);
    qb_linear_release(&lin);
}

/* ---- activations ---------------------------------------------------------------------- */

/* bf16 activations: rows of varied magnitude, an all-zero row, a tiny row. */
static uint16_t *random_act(int64_t n, int64_t cols)
{
    uint16_t *a = malloc((size_t)(n * cols) * 2);
    for (int64_t t = 0; t < n; t++) {
        float mag = t == 1 ? 0.0f : t == 2 ? 1e-30f : ldexpf(1.0f, (int)(t % 9) - 4);
        for (int64_t i = 0; i < cols; i++)
            a[t * cols + i] = qb_f32_to_bf16(frand() * mag * (i % 61 == 0 ? 8 : 1));
    }
    return a;
}

static float *to_f32(const uint16_t *a, size_t n)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = qb_bf16_to_f32(a[i]);
    return x;
}

Test(w4a4_act, host_quantizer_decodes_to_the_cpu_reference)
{
    static const int64_t shapes[][2] = {{9, 256}, {3, 96}, {17, 768}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int kind = QB_ACT_NVFP4; kind <= QB_ACT_MXFP4; kind++) {
            int64_t n = shapes[i][0], cols = shapes[i][1];
            uint16_t *a = random_act(n, cols);
            float *x = to_f32(a, (size_t)(n * cols)), *ref = malloc((size_t)(n * cols) * 4);
            struct qb_w4a4_operand op;
            qb_act_quantize_rows(kind, x, n, cols, ref);
            QBT_OK(qb_w4a4_quantize_act(kind, a, n, cols, &op, &err));
            uint8_t *sc = malloc((size_t)(n * cols / op.s.block));
            qb_w4a4_unswizzle(&op, sc);
            for (int64_t t = 0; t < n; t++)
                for (int64_t k = 0; k < cols; k++) {
                    uint8_t code = (uint8_t)(op.codes[(t * cols + k) / 2] >> ((k & 1) * 4));
                    uint8_t s = sc[t * (cols / op.s.block) + k / op.s.block];
                    float v = kind == QB_ACT_NVFP4
                                  ? qb_e2m1_to_f32(code) * (qb_e4m3_to_f32(s) / op.global[t])
                                  : qb_e2m1_to_f32(code) * qb_e8m0_to_f32(s);
                    cr_assert(same_float(v, ref[t * cols + k]) ||
                                  (v == 0.0f && ref[t * cols + k] == 0.0f),
                              "kind %d token %lld col %lld: %a vs %a", kind, (long long)t,
                              (long long)k, (double)v, (double)ref[t * cols + k]);
                }
            free(sc), free(a), free(x), free(ref);
            qb_w4a4_operand_free(&op);
        }
}

/* ---- the emulated product against core/linear.c --------------------------------------- */

static double check_emulation(const struct qb_linear *lin, int64_t n, struct qb_pool *pool)
{
    struct qb_w4a4_operand w, a;
    uint16_t *ab = random_act(n, lin->cols);
    float *x = to_f32(ab, (size_t)(n * lin->cols));
    float *y = malloc((size_t)(n * lin->rows) * 4), *ref = malloc((size_t)(n * lin->rows) * 4);
    QBT_OK(qb_w4a4_pack_weight(lin, "test.weight", &w, &err));
    QBT_OK(qb_w4a4_quantize_act(lin->qp.act, ab, n, lin->cols, &a, &err));
    qb_w4a4_emulate_linear(&w, lin->bias, &a, y);
    qb_linear_matmul(lin, x, n, ref, pool);
    double e = qbt_rel_l2(y, ref, (size_t)(n * lin->rows));
    cr_assert(e <= TOL_EMULATED, "%lld x %lld, act %d: rel L2 %.3g > %.3g",
              (long long)lin->rows, (long long)lin->cols, lin->qp.act, e, TOL_EMULATED);
    qb_w4a4_operand_free(&w);
    qb_w4a4_operand_free(&a);
    free(ab), free(x), free(y), free(ref);
    return e;
}

Test(w4a4_emulation, random_shapes_match_the_cpu_reference)
{
    static const int64_t shapes[][3] = {{200, 96, 5}, {128, 256, 1}, {33, 64, 16}, {256, 544, 9},
                                        {64, 1024, 3}};
    struct qb_pool *pool = qb_pool_create(2);
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int kind = QB_ACT_NVFP4; kind <= QB_ACT_MXFP4; kind++) {
            struct qb_linear lin;
            random_linear(kind, shapes[i][0], shapes[i][1], (int)(i % 2), &lin);
            double e = check_emulation(&lin, shapes[i][2], pool);
            cr_log_info("%s %lldx%lld n=%lld: rel L2 %.3g (tolerance %.3g)",
                        kind == QB_ACT_NVFP4 ? "nvfp4-w4a4" : "mxfp4-w4a4",
                        (long long)shapes[i][0], (long long)shapes[i][1],
                        (long long)shapes[i][2], e, TOL_EMULATED);
            qb_linear_release(&lin);
        }
    qb_pool_free(pool);
}

static void check_demo_model(const char *scheme_name)
{
    struct qb_model *m = NULL;
    struct qb_scheme scheme;
    struct qb_model_load_opts lo = {.no_tokenizer = 1};
    struct qb_pool *pool = qb_pool_create(2);
    QBT_OK(qb_scheme_parse(scheme_name, 0, &scheme, &err));
    QBT_OK(qb_model_load(QB_TEST_DATA "/ref-llama-10m", &lo, &m, &err));
    QBT_OK(qb_model_apply_scheme(m, &scheme, NULL, &err));
    int layers[2] = {0, m->cfg.n_layers - 1};
    for (int li = 0; li < 2; li++)
        for (int s = 0; s < QB_LIN_COUNT; s++) {
            const struct qb_linear *lin = &m->layers[layers[li]].lin[s];
            double e = check_emulation(lin, 7, pool);
            cr_log_info("%s layer %d %s [%lld x %lld]: rel L2 %.3g", scheme_name, layers[li],
                        qb_linear_slot_name(s), (long long)lin->rows, (long long)lin->cols, e);
        }
    qb_model_free(m);
    qb_pool_free(pool);
}

Test(w4a4_emulation, demo_model_nvfp4_w4a4)
{
    check_demo_model("nvfp4-w4a4");
}

Test(w4a4_emulation, demo_model_mxfp4_w4a4)
{
    check_demo_model("mxfp4-w4a4");
}

Test(w4a4_report, status_note_says_compiled_not_executed)
{
    const char *note = qb_w4a4_status_note(QB_ACT_NVFP4, 9);
    cr_assert(note != NULL);
    cr_assert_null(qb_w4a4_status_note(QB_ACT_F32, 9));
    cr_assert_null(qb_w4a4_status_note(QB_ACT_FP8_E4M3, 12));
#ifdef QB_HAVE_CUDA
    cr_assert(strstr(note, "compiled") && strstr(note, "not executed"), "%s", note);
#endif
}

/* ---- on the GPU ------------------------------------------------------------------------ */

#ifdef QB_HAVE_CUDA

static void *dev(const void *h, size_t bytes)
{
    void *d = NULL;
    QBT_OK(qb_cuda_alloc(&d, bytes, "test buffer", &err));
    if (h)
        QBT_OK(qb_cuda_upload(d, h, bytes, &err));
    return d;
}

/* The reservation rule the engine follows (qb_w4a4_act_rows / qb_w4a4_scratch_elems)
 * leaves room for every call of up to chunk tokens: host arithmetic, no GPU. */
Test(w4a4_gpu, reservation_sizes_fit_every_call)
{
    static const int chunks[] = {1, 16, 100, 512};
    static const int64_t cols[] = {256, 544, 4096, 14336};
    for (size_t i = 0; i < sizeof chunks / sizeof *chunks; i++) {
        int rows = (qb_w4a4_act_rows(chunks[i]) + 15) / 16 * 16; /* as reserve_act rounds */
        cr_assert_geq(rows, 128);
        for (size_t j = 0; j < sizeof cols / sizeof *cols; j++)
            for (int n = 1; n <= chunks[i]; n++) {
                cr_assert_leq(qb_w4a4_act_bytes(n, cols[j]), (size_t)rows * (size_t)cols[j],
                              "chunk %d n %d cols %lld", chunks[i], n, (long long)cols[j]);
                cr_assert_leq((size_t)(n == 1 ? 1 : (n + 15) / 16 * 16) * 4096 * 4,
                              qb_w4a4_scratch_elems(chunks[i], 4096) * 2);
            }
    }
}

/* GPU quantizer vs host reference, bit for bit, with n_pad padding rows. */
static void check_gpu_quantizer(struct qb_cuda_ctx *c, enum qb_act_mode kind, int n,
                                int64_t cols)
{
    int n_pad = (n + 15) / 16 * 16;
    struct qb_w4a4_operand ref;
    struct qb_w4a4_shape sp;
    uint16_t *a = random_act(n, cols);
    QBT_OK(qb_w4a4_quantize_act(kind, a, n, cols, &ref, &err));
    QBT_OK(qb_w4a4_shape_init(&sp, kind, n_pad, cols, "padded", &err));
    size_t cb = qb_w4a4_codes_bytes(&sp), sb = qb_w4a4_scales_bytes(&sp);
    uint16_t *d_a = dev(a, (size_t)n * (size_t)cols * 2);
    uint8_t *d_codes = dev(NULL, cb), *d_scales = dev(NULL, sb);
    float *d_g = dev(NULL, (size_t)n_pad * 4);
    uint8_t *junk = malloc(cb > sb ? cb : sb); /* the kernel must overwrite every byte */
    memset(junk, 0xab, cb > sb ? cb : sb);
    QBT_OK(qb_cuda_upload(d_codes, junk, cb, &err));
    QBT_OK(qb_cuda_upload(d_scales, junk, sb, &err));
    free(junk);
    QBT_OK(qb_w4a4_quantize_act_gpu(c, kind, d_a, n, n_pad, cols, d_codes, d_scales, d_g, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    uint8_t *codes = malloc(cb), *scales = malloc(sb);
    float *g = malloc((size_t)n_pad * 4);
    QBT_OK(qb_cuda_download(codes, d_codes, cb, &err));
    QBT_OK(qb_cuda_download(scales, d_scales, sb, &err));
    QBT_OK(qb_cuda_download(g, d_g, (size_t)n_pad * 4, &err));
    cr_assert_eq(memcmp(codes, ref.codes, qb_w4a4_codes_bytes(&ref.s)), 0,
                 "kind %d n %d cols %lld: codes differ", kind, n, (long long)cols);
    for (size_t i = qb_w4a4_codes_bytes(&ref.s); i < cb; i++)
        cr_assert_eq(codes[i], 0, "padding codes not zero");
    /* the padded row count only changes the tile count, not the offsets of real rows */
    for (int64_t t = 0; t < sp.sf_rows; t++)
        for (int64_t kb = 0; kb < sp.sf_cols; kb++) {
            size_t o = qb_w4a4_sf_offset(t, kb, sp.sf_cols);
            uint8_t want = t < n && kb < cols / sp.block
                               ? ref.scales[qb_w4a4_sf_offset(t, kb, ref.s.sf_cols)]
                               : 0;
            cr_assert_eq(scales[o], want, "kind %d scale (%lld, %lld)", kind, (long long)t,
                         (long long)kb);
        }
    for (int t = 0; t < n_pad; t++)
        cr_assert(same_float(g[t], t < n ? ref.global[t] : 1.0f), "token scale %d", t);
    cr_log_info("GPU quantizer %s n=%d cols=%lld: bit-identical",
                kind == QB_ACT_NVFP4 ? "nvfp4" : "mxfp4", n, (long long)cols);
    free(codes), free(scales), free(g), free(a);
    qb_cuda_free(d_a), qb_cuda_free(d_codes), qb_cuda_free(d_scales), qb_cuda_free(d_g);
    qb_w4a4_operand_free(&ref);
}

Test(w4a4_gpu, quantizer_kernel_is_bit_exact)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    static const int64_t shapes[][2] = {{1, 4096}, {7, 256}, {16, 96}, {33, 768}, {200, 544}};
    struct qb_cuda_ctx *c = NULL;
    QBT_OK(qb_cuda_ctx_create(&c, &err));
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int kind = QB_ACT_NVFP4; kind <= QB_ACT_MXFP4; kind++)
            check_gpu_quantizer(c, kind, (int)shapes[i][0], shapes[i][1]);
    qb_cuda_ctx_free(c);
}

/* A W4A4 weight on the device in the FP4 layout (no FP4-GEMM check: the GEMV runs
 * anywhere), with its bias. */
static void upload_w4a4(const struct qb_linear *lin, struct qb_cuda_weight *w)
{
    QBT_OK(qb_w4a4_weight_upload_any(lin, "test.weight", w, &err));
    if (lin->bias)
        w->bias = dev(lin->bias, (size_t)lin->rows * 4);
}

/* The decode GEMV (q|k|v in one call, then accumulate) against the CPU emulation. */
static void check_gpu_gemv(struct qb_cuda_ctx *c, enum qb_act_mode kind, int64_t cols)
{
    static const int64_t rows[3] = {256, 64, 72};
    struct qb_linear lin[3];
    struct qb_cuda_weight w[3];
    const struct qb_cuda_weight *wp[3] = {&w[0], &w[1], &w[2]};
    struct qb_w4a4_operand a, wo;
    uint16_t *x = random_act(1, cols);
    float want[392], got[392];
    int64_t off = 0;
    QBT_OK(qb_w4a4_quantize_act(kind, x, 1, cols, &a, &err));
    for (int i = 0; i < 3; i++) {
        random_linear(kind, rows[i], cols, i != 1, &lin[i]);
        upload_w4a4(&lin[i], &w[i]);
        QBT_OK(qb_w4a4_pack_weight(&lin[i], "w", &wo, &err));
        qb_w4a4_emulate_linear(&wo, lin[i].bias, &a, want + off);
        qb_w4a4_operand_free(&wo);
        off += rows[i];
    }
    uint16_t *d_x = dev(x, (size_t)cols * 2);
    float *d_y = dev(NULL, sizeof got);
    QBT_OK(qb_w4a4_gemv(c, wp, 3, d_x, d_y, 0, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    QBT_OK(qb_cuda_download(got, d_y, sizeof got, &err));
    double e = qbt_rel_l2(got, want, 392);
    cr_log_info("GPU W4A4 GEMV %s cols=%lld (q|k|v): rel L2 %.3g (tolerance %.3g)",
                kind == QB_ACT_NVFP4 ? "nvfp4" : "mxfp4", (long long)cols, e, TOL_GEMV);
    cr_assert(e <= TOL_GEMV, "GEMV rel L2 %.3g > %.3g", e, TOL_GEMV);
    QBT_OK(qb_w4a4_gemv(c, wp, 3, d_x, d_y, 1, &err)); /* accumulate: twice the result */
    QBT_OK(qb_cuda_sync(c, &err));
    QBT_OK(qb_cuda_download(got, d_y, sizeof got, &err));
    for (int i = 0; i < 392; i++)
        want[i] *= 2;
    e = qbt_rel_l2(got, want, 392);
    cr_assert(e <= TOL_GEMV, "accumulated GEMV rel L2 %.3g > %.3g", e, TOL_GEMV);
    /* SwiGLU of w0 (gate) and a second 256-row weight (up, no bias: the engine's MLP) */
    struct qb_linear up;
    struct qb_cuda_weight wu;
    float g_ref[256], u_ref[256], sw_ref[256], sw_got[256];
    uint16_t sw_bf16[256];
    random_linear(kind, 256, cols, 0, &up);
    upload_w4a4(&up, &wu);
    qb_cuda_free(w[0].bias), w[0].bias = NULL;
    QBT_OK(qb_w4a4_pack_weight(&lin[0], "w", &wo, &err));
    qb_w4a4_emulate_linear(&wo, NULL, &a, g_ref);
    qb_w4a4_operand_free(&wo);
    QBT_OK(qb_w4a4_pack_weight(&up, "w", &wo, &err));
    qb_w4a4_emulate_linear(&wo, NULL, &a, u_ref);
    qb_w4a4_operand_free(&wo);
    for (int i = 0; i < 256; i++)
        sw_ref[i] = g_ref[i] / (1.0f + expf(-g_ref[i])) * u_ref[i];
    uint16_t *d_out = dev(NULL, sizeof sw_bf16);
    QBT_OK(qb_w4a4_gemv_swiglu(c, &w[0], &wu, d_x, d_out, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    QBT_OK(qb_cuda_download(sw_bf16, d_out, sizeof sw_bf16, &err));
    for (int i = 0; i < 256; i++)
        sw_got[i] = qb_bf16_to_f32(sw_bf16[i]);
    e = qbt_rel_l2(sw_got, sw_ref, 256);
    cr_assert(e <= TOL_SWIGLU, "SwiGLU GEMV rel L2 %.3g > %.3g", e, TOL_SWIGLU);
    for (int i = 0; i < 3; i++) {
        qb_cuda_weight_free(&w[i]);
        qb_linear_release(&lin[i]);
    }
    qb_cuda_weight_free(&wu);
    qb_linear_release(&up);
    qb_w4a4_operand_free(&a);
    qb_cuda_free(d_x), qb_cuda_free(d_y), qb_cuda_free(d_out);
    free(x);
}

/* Runs on any GPU (sm_90 included), though the engine only dispatches W4A4 on sm_100+. */
Test(w4a4_gpu, decode_gemv_matches_emulation)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    struct qb_cuda_ctx *c = NULL;
    QBT_OK(qb_cuda_ctx_create(&c, &err));
    QBT_OK(qb_cuda_ctx_reserve_act(c, 16, 4096, &err));
    for (int kind = QB_ACT_NVFP4; kind <= QB_ACT_MXFP4; kind++) {
        check_gpu_gemv(c, kind, 256);
        check_gpu_gemv(c, kind, 544);
        check_gpu_gemv(c, kind, 4096);
    }
    qb_cuda_ctx_free(c);
}

static int cc_major(void)
{
    struct qb_cuda_device d;
    QBT_OK(qb_cuda_device_query(&d, &err));
    return d.cc_major;
}

Test(w4a4_gpu, refused_below_sm100)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    if (cc_major() >= 10)
        cr_skip_test("this GPU has FP4 tensor cores (see fp4_gemm_matches_emulation)");
    struct qb_linear lin;
    struct qb_cuda_weight w;
    cr_assert_eq(qb_cuda_supports(QB_WFMT_NVFP4, QB_ACT_NVFP4), 0);
    cr_assert_eq(qb_cuda_supports(QB_WFMT_MXFP4, QB_ACT_MXFP4), 0);
    cr_assert_eq(qb_cuda_supports(QB_WFMT_NVFP4, QB_ACT_F32), 1); /* weight-only stays */
    random_linear(QB_ACT_NVFP4, 64, 128, 0, &lin);
    cr_assert_eq(qb_cuda_weight_upload(&lin, "l.weight", &w, &err), QB_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "l.weight") && strstr(err.msg, "sm_100") &&
                  strstr(err.msg, "not executed"), "%s", err.msg);
    qb_linear_release(&lin);
}

/* Runs only on sm_100+: never executed by the project (no such GPU). */
Test(w4a4_gpu, fp4_gemm_matches_emulation)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    if (cc_major() < 10)
        cr_skip_test("no FP4 tensor cores below sm_100 (path compiled, not executed)");
    static const int64_t shapes[][3] = {{256, 256, 1}, {768, 256, 9}, {256, 768, 33}};
    struct qb_cuda_ctx *c = NULL;
    QBT_OK(qb_cuda_ctx_create(&c, &err));
    QBT_OK(qb_cuda_ctx_reserve_dequant(c, 768 * 256, &err));
    QBT_OK(qb_cuda_ctx_reserve_act(c, 128, 768, &err));
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int kind = QB_ACT_NVFP4; kind <= QB_ACT_MXFP4; kind++) {
            int64_t rows = shapes[i][0], cols = shapes[i][1], n = shapes[i][2];
            struct qb_linear lin;
            struct qb_cuda_weight w;
            struct qb_w4a4_operand wo, ao;
            random_linear(kind, rows, cols, 1, &lin);
            if (!qb_cuda_supports(lin.fmt, kind)) {
                cr_log_warn("cuBLASLt has no FP4 GEMM for act mode %d here", kind);
                qb_linear_release(&lin);
                continue;
            }
            uint16_t *a = random_act(n, cols);
            float *want = malloc((size_t)(n * rows) * 4), *got = malloc((size_t)(n * rows) * 4);
            QBT_OK(qb_w4a4_pack_weight(&lin, "w", &wo, &err));
            QBT_OK(qb_w4a4_quantize_act(kind, a, n, cols, &ao, &err));
            qb_w4a4_emulate_linear(&wo, lin.bias, &ao, want);
            QBT_OK(qb_cuda_weight_upload(&lin, "w", &w, &err));
            uint16_t *d_a = dev(a, (size_t)(n * cols) * 2);
            float *d_y = dev(NULL, (size_t)(n * rows) * 4);
            QBT_OK(qb_w4a4_linear(c, &w, d_a, (int)n, d_y, (int)rows, 0, &err));
            QBT_OK(qb_cuda_sync(c, &err));
            QBT_OK(qb_cuda_download(got, d_y, (size_t)(n * rows) * 4, &err));
            double e = qbt_rel_l2(got, want, (size_t)(n * rows));
            cr_log_info("FP4 GEMM act %d %lldx%lld n=%lld: rel L2 %.3g", kind, (long long)rows,
                        (long long)cols, (long long)n, e);
            cr_assert(e <= TOL_FP4_GEMM, "rel L2 %.3g > %.3g", e, TOL_FP4_GEMM);
            qb_cuda_free(d_a), qb_cuda_free(d_y);
            qb_cuda_weight_free(&w);
            qb_w4a4_operand_free(&wo), qb_w4a4_operand_free(&ao);
            free(a), free(want), free(got);
            qb_linear_release(&lin);
        }
    qb_cuda_ctx_free(c);
}

#else

Test(w4a4_gpu, skipped_without_cuda)
{
    cr_skip_test("built without CUDA (-DQUANTBENCH_CUDA=OFF)");
}

#endif
