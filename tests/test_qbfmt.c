/*
 * test_qbfmt.c - our quantized checkpoint: record packing against hand-computed
 * bytes, pack/unpack round trips with act-order g_idx, corrupt payloads and
 * metadata, and end to end through `quantbench quantize` (load, a numpy peer
 * decoding the file independently, bit-identical reruns, cancellation leaving
 * nothing on disk, corrupt files rejected with a clear error).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype.h"
#include "qb_test_util.h"
#include "qbfmt.h"
#include "quant_pipeline.h"

static void pack_one(int bits, const uint8_t *codes, float scale, int zero, uint8_t *out)
{
    struct qb_qresult q;
    cr_assert_eq(qb_qresult_alloc(&q, 1, 8, bits, 8, 0, 0, NULL), QB_OK);
    memcpy(q.codes, codes, 8);
    q.scales[0] = scale;
    q.zeros[0] = (uint8_t)zero;
    qb_qbfmt_pack(&q, out);
    qb_qresult_free(&q);
}

Test(qbfmt, records_match_hand_computed_bytes)
{
    uint8_t out[12];
    static const uint8_t c4[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    pack_one(4, c4, 1.0f, 3, out);
    static const uint8_t e4[8] = {0x00, 0x3c, 0x03, 0x04, 0x10, 0x32, 0x54, 0x76};
    cr_assert_eq(memcmp(out, e4, 8), 0, "int4 record");
    static const uint8_t c3[8] = {1, 2, 3, 4, 5, 6, 7, 0};
    pack_one(3, c3, -2.0f, 7, out); /* 3-bit stream: 1 | 2<<3 | 3<<6 | ... = 0x1f58d1 */
    static const uint8_t e3[7] = {0x00, 0xc0, 0x07, 0x03, 0xd1, 0x58, 0x1f};
    cr_assert_eq(memcmp(out, e3, 7), 0, "int3 record");
    static const uint8_t c2[8] = {0, 1, 2, 3, 3, 2, 1, 0};
    pack_one(2, c2, 0.5f, 1, out);
    static const uint8_t e2[6] = {0x00, 0x38, 0x01, 0x02, 0xe4, 0x1b};
    cr_assert_eq(memcmp(out, e2, 6), 0, "int2 record");
    cr_assert_eq(qb_qbfmt_record_bytes(4, 128), 68u);
    cr_assert_eq(qb_qbfmt_record_bytes(3, 128), 52u);
}

Test(qbfmt, pack_unpack_round_trip_all_widths)
{
    static const int bits[] = {2, 3, 4, 8};
    uint64_t s = 99;
    for (int b = 0; b < 4; b++) {
        for (int act = 0; act < 2; act++) {
            enum { R = 5, C = 64, G = 16 };
            struct qb_qresult q;
            cr_assert_eq(qb_qresult_alloc(&q, R, C, bits[b], G, 0, act, NULL), QB_OK);
            int maxq = (1 << bits[b]) - 1;
            for (int i = 0; i < R * C; i++)
                q.codes[i] = (uint8_t)((s = s * 6364136223846793005ull + 1) >> 40) % (maxq + 1);
            for (int i = 0; i < R * C / G; i++) {
                q.scales[i] = 0.001f * (float)(1 + i % 7);
                q.scales[i] = qb_f16_to_f32(qb_f32_to_f16(q.scales[i]));
                q.zeros[i] = (uint8_t)(i % (maxq + 1));
            }
            for (int c = 0; act && c < C; c++)
                q.g_idx[c] = (c * 7) % (C / G);
            uint8_t *buf = malloc(R * (C / G) * qb_qbfmt_record_bytes(bits[b], G));
            float *a = malloc(sizeof(float) * R * C), *d = malloc(sizeof(float) * R * C);
            qb_qbfmt_pack(&q, buf);
            qb_qresult_dequant(&q, a);
            cr_assert_eq(qb_qbfmt_unpack(buf, R * (C / G) * qb_qbfmt_record_bytes(bits[b], G), R,
                                         C, bits[b], G, q.g_idx, d, "t", NULL), QB_OK);
            cr_assert_eq(memcmp(a, d, sizeof(float) * R * C), 0, "%d bits act %d", bits[b], act);
            qb_qresult_free(&q);
            free(buf), free(a), free(d);
        }
    }
}

Test(qbfmt, corrupt_payloads_are_rejected)
{
    uint8_t rec[8] = {0x00, 0x3c, 0x03, 0x04, 0x10, 0x32, 0x54, 0x76};
    float out[8];
    struct qb_err err = {0};
    cr_assert_eq(qb_qbfmt_unpack(rec, 8, 1, 8, 4, 8, NULL, out, "t", &err), QB_OK);
    cr_assert_eq(qb_qbfmt_unpack(rec, 7, 1, 8, 4, 8, NULL, out, "t", &err), QB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "7 bytes"), "%s", err.msg);
    uint8_t bad[8];
    memcpy(bad, rec, 8);
    bad[3] = 3; /* bits byte */
    cr_assert_eq(qb_qbfmt_unpack(bad, 8, 1, 8, 4, 8, NULL, out, "t", &err), QB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "corrupt"), "%s", err.msg);
    memcpy(bad, rec, 8);
    bad[2] = 16; /* zero > 15 */
    cr_assert_eq(qb_qbfmt_unpack(bad, 8, 1, 8, 4, 8, NULL, out, "t", &err), QB_ERR_FORMAT);
    memcpy(bad, rec, 8);
    bad[0] = 0x00, bad[1] = 0x7e; /* NaN scale */
    cr_assert_eq(qb_qbfmt_unpack(bad, 8, 1, 8, 4, 8, NULL, out, "t", &err), QB_ERR_FORMAT);
    int32_t g[8] = {0, 0, 0, 1, 0, 0, 0, 0};
    cr_assert_eq(qb_qbfmt_unpack(rec, 8, 1, 8, 4, 8, g, out, "t", &err), QB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "g_idx[3]"), "%s", err.msg);
    cr_assert_eq(qb_qbfmt_unpack(rec, 8, 1, 12, 4, 8, NULL, out, "t", &err), QB_ERR_FORMAT);
}

static const char *good_meta =
    "{\"format\": \"quantbench-quantized\", \"version\": 1, \"scheme\": \"gptq-int3\", "
    "\"method\": \"gptq\", \"weight_format\": \"uint-g\", \"bits\": 3, \"group\": 64, "
    "\"sym\": true, \"act_order\": true, \"static_groups\": false, \"damp\": 0.02}";

Test(qbfmt, metadata_parses_and_rejects_corruption)
{
    struct qb_qbfmt_meta m;
    struct qb_err err = {0};
    cr_assert_eq(qb_qbfmt_parse_meta(good_meta, strlen(good_meta), "q.json", &m, &err), QB_OK,
                 "%s", err.msg);
    cr_assert_str_eq(m.scheme, "gptq-int3");
    cr_assert(m.method == QB_METHOD_GPTQ && m.bits == 3 && m.group == 64 && m.sym &&
              m.act_order && !m.static_groups && m.damp == 0.02);
    static const char *const bad[][2] = {
        {"[1]", "not a JSON object"},
        {"{\"format\": \"other\"}", "'format'"},
        {"{\"format\": \"quantbench-quantized\", \"version\": 2}", "version 2"},
        {"{\"format\": \"quantbench-quantized\", \"version\": 1, \"scheme\": 3}", "'scheme'"},
        {"{\"format\": \"quantbench-quantized\", \"version\": 1, \"scheme\": \"x\", "
         "\"method\": \"magic\"}", "'method'"},
        {"{\"format\": \"quantbench-quantized\", \"version\": 1, \"scheme\": \"x\", "
         "\"method\": \"awq\", \"bits\": 5, \"group\": 128}", "'bits'"},
        {"{\"format\": \"quantbench-quantized\", \"version\": 1, \"scheme\": \"x\", "
         "\"method\": \"awq\", \"bits\": 4, \"group\": 12}", "'group'"},
        {"{\"format\": \"quantbench-quantized\", \"version\": 1, \"scheme\": \"x\", "
         "\"method\": \"awq\", \"bits\": 4, \"group\": 128, \"sym\": 1}", "'sym'"},
        {"{\"format\": \"quantbench-quantized\", \"version\": 1, \"scheme\": \"x\", "
         "\"method\": \"awq\", \"bits\": 4, \"group\": 128, \"weight_format\": \"uint-g\"}",
         "'weight_format'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_neq(qb_qbfmt_parse_meta(bad[i][0], strlen(bad[i][0]), "q.json", &m, &err),
                      QB_OK, "case %zu accepted", i);
        cr_assert(strstr(err.msg, bad[i][1]) && strstr(err.msg, "q.json"), "case %zu: %s", i,
                  err.msg);
    }
}

/* ---- end to end ---- */

static void quantize(const char *scheme, const char *out, const char *extra)
{
    const char *argv[20] = {QB_BINARY, "quantize", QB_DEMO_MODEL, "--scheme", scheme,
                            "--calib", QB_CALIB_TEXT, "--calib-samples", "3",
                            "--calib-seqlen", "64", "--seed", "5", "--out", out, "--json"};
    int n = 16;
    if (extra)
        argv[n++] = extra;
    argv[n] = NULL;
    struct qbt_run r;
    qbt_run(argv, NULL, 900, &r);
    cr_assert_eq(r.exit_code, 0, "quantize %s: %s", scheme, r.err);
    cr_assert(strstr(r.out, "\"peak_rss_kb\""), "%s", r.out);
    cr_assert(strstr(r.err, "peak RSS"), "%s", r.err);
    qbt_run_free(&r);
}

static int same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *x = qbt_read_file(a, &la), *y = qbt_read_file(b, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

Test(qbfmt_e2e, quantize_load_peer_and_rerun, .timeout = 1800)
{
    char *tmp = qbt_tempdir(), a[512], b[512], p[600], raw[600];
    snprintf(a, sizeof a, "%s/a", tmp);
    snprintf(b, sizeof b, "%s/b", tmp);
    quantize("gptq-int4", a, "--act-order");
    quantize("gptq-int4", b, "--act-order");
    snprintf(p, sizeof p, "%s/model.safetensors", a);
    snprintf(raw, sizeof raw, "%s/model.safetensors", b);
    cr_assert(same_file(p, raw), "same seed, same bytes");
    cr_assert_eq(dir_entries(tmp), 2, "no temporary directory left behind");
    /* loads as a model with the scheme and dequantized linears */
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_model_load(a, NULL, &m, &err), QB_OK, "%s", err.msg);
    cr_assert_str_eq(m->scheme.name, "gptq-int4");
    cr_assert_eq(m->scheme.method, QB_METHOD_GPTQ);
    /* an independent decoder (numpy) reads layer 0's q_proj from the file */
    if (qbt_python_has("numpy,safetensors")) {
        snprintf(raw, sizeof raw, "%s/q.f32", tmp);
        char *cmd = qb_asprintf(
            "%s -c \"import numpy as np\nfrom safetensors import safe_open\n"
            "f = safe_open('%s', 'numpy')\n"
            "q = f.get_tensor('model.layers.0.self_attn.q_proj.qweight')\n"
            "g = f.get_tensor('model.layers.0.self_attn.q_proj.g_idx')\n"
            "R, C, G = q.shape[0], g.shape[0], 128\n"
            "rec = q.reshape(R, C // G, 4 + G // 2)\n"
            "sc = rec[:, :, 0:2].copy().view(np.float16)[:, :, 0].astype(np.float32)\n"
            "z = rec[:, :, 2].astype(np.float32)\n"
            "nib = np.stack([rec[:, :, 4:] & 15, rec[:, :, 4:] >> 4], -1).reshape(R, C)\n"
            "w = sc[:, g] * (nib.astype(np.float32) - z[:, g])\n"
            "w.astype(np.float32).tofile('%s')\"", QB_PYTHON, p, raw);
        cr_assert_eq(system(cmd), 0, "numpy peer failed");
        free(cmd);
        size_t len;
        float *peer = (float *)qbt_read_file(raw, &len);
        const struct qb_linear *q = &m->layers[0].lin[QB_LIN_Q];
        cr_assert_eq(q->fmt, QB_WFMT_INT4, "loaded as a packed int4 linear");
        cr_assert_eq(len, sizeof(float) * q->rows * q->cols);
        float *ours = malloc(len);
        qb_model_linear_to_f32(q, ours);
        cr_assert_eq(memcmp(peer, ours, len), 0, "numpy decodes the same weights");
        free(ours);
        free(peer);
        unlink(raw);
    }
    qb_model_free(m);
    /* AWQ reruns are bit-identical too */
    snprintf(a, sizeof a, "%s/c", tmp);
    snprintf(b, sizeof b, "%s/d", tmp);
    quantize("awq-int4", a, NULL);
    quantize("awq-int4", b, NULL);
    snprintf(p, sizeof p, "%s/model.safetensors", a);
    snprintf(raw, sizeof raw, "%s/model.safetensors", b);
    cr_assert(same_file(p, raw), "awq: same seed, same bytes");
    /* eval loads it */
    const char *ev[] = {QB_BINARY, "eval", a, "--data", QB_EVAL_TEXT, "--chunks", "2", NULL};
    struct qbt_run r;
    qbt_run(ev, NULL, 600, &r);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "awq-int4"), "%s", r.out);
    qbt_run_free(&r);
    qbt_rmtree(tmp);
    free(tmp);
}

struct cancel_ctx {
    struct qb_qbfmt_writer *w;
    struct qb_progress *p;
    int calls;
};

static enum qb_status cancel_sink(void *ctx, int layer, enum qb_linear_slot slot,
                                  const struct qb_qresult *q, struct qb_err *err)
{
    struct cancel_ctx *c = ctx;
    if (++c->calls == 3)
        qb_progress_cancel(c->p);
    return qb_qbfmt_writer_add(c->w, layer, slot, q, err);
}

Test(qbfmt_e2e, cancel_leaves_nothing_on_disk)
{
    char *tmp = qbt_tempdir(), out[512];
    snprintf(out, sizeof out, "%s/out", tmp);
    struct qb_model *m = NULL;
    cr_assert_eq(qb_model_load(QB_DEMO_MODEL, NULL, &m, NULL), QB_OK);
    struct qb_qpipe_opts o = {.calib = {.path = QB_CALIB_TEXT, .n_samples = 2, .seqlen = 32}};
    cr_assert_eq(qb_qpipe_opts_from_scheme("gptq-int4", 0, &o, NULL), QB_OK);
    struct qb_qbfmt_meta meta = {QB_QBFMT_VERSION, "gptq-int4", QB_METHOD_GPTQ, 4, 128, 0, 0, 0,
                                 0.01};
    struct cancel_ctx c = {NULL, qb_progress_create(), 0};
    cr_assert_eq(qb_qbfmt_writer_open(out, m, &meta, &c.w, NULL), QB_OK);
    cr_assert_eq(dir_entries(tmp), 1, "the temporary directory exists while writing");
    o.sink = cancel_sink;
    o.sink_ctx = &c;
    struct qb_qpipe_report rep;
    struct qb_err err = {0};
    qb_progress_begin(c.p, QB_JOB_QUANTIZE, "test");
    cr_assert_eq(qb_qpipe_run(m, &o, c.p, &rep, &err), QB_ERR_CANCELLED, "%s", err.msg);
    qb_qbfmt_writer_abort(c.w);
    cr_assert_eq(dir_entries(tmp), 0, "nothing left after a cancelled run");
    qb_progress_free(c.p);
    qb_model_free(m);
    qbt_rmtree(tmp);
    free(tmp);
}

static void set_meta(const char *dir, const char *json)
{
    qbt_write_file(dir, QB_QBFMT_META, json, strlen(json));
}

Test(qbfmt_e2e, corrupt_checkpoints_fail_with_a_clear_error, .timeout = 900)
{
    char *tmp = qbt_tempdir(), dir[512];
    snprintf(dir, sizeof dir, "%s/q", tmp);
    quantize("gptq-int4", dir, NULL);
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    /* metadata says 3 bits: qweight shapes no longer match */
    set_meta(dir, "{\"format\": \"quantbench-quantized\", \"version\": 1, \"scheme\": \"x\", "
                  "\"method\": \"gptq\", \"weight_format\": \"uint-g\", \"bits\": 3, "
                  "\"group\": 128}");
    cr_assert_eq(qb_model_load(dir, NULL, &m, &err), QB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "q_proj.qweight") && strstr(err.msg, "[256, 104]"), "%s", err.msg);
    /* act-order claimed but no g_idx stored */
    set_meta(dir, "{\"format\": \"quantbench-quantized\", \"version\": 1, \"scheme\": \"x\", "
                  "\"method\": \"gptq\", \"weight_format\": \"int4\", \"bits\": 4, "
                  "\"group\": 128, \"act_order\": true}");
    cr_assert_eq(qb_model_load(dir, NULL, &m, &err), QB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "g_idx") && strstr(err.msg, "missing"), "%s", err.msg);
    set_meta(dir, "{\"format\": \"quantbench-quantized\"");
    cr_assert_eq(qb_model_load(dir, NULL, &m, &err), QB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "quantbench.json"), "%s", err.msg);
    /* a record whose bits byte is wrong */
    set_meta(dir, "{\"format\": \"quantbench-quantized\", \"version\": 1, \"scheme\": \"x\", "
                  "\"method\": \"gptq\", \"weight_format\": \"int4\", \"bits\": 4, "
                  "\"group\": 128}");
    cr_assert_eq(qb_model_load(dir, NULL, &m, &err), QB_OK, "%s", err.msg);
    const struct qb_st_tensor *t =
        qb_ckpt_find(m->ckpt, "model.layers.2.mlp.up_proj.qweight");
    size_t off = m->ckpt->files[0].data_start + t->begin + 68 * 5 + 3;
    qb_model_free(m);
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t len;
    char *bytes = qbt_read_file(path, &len);
    bytes[off] = 8;
    qbt_write_file(dir, "model.safetensors", bytes, len);
    free(bytes);
    cr_assert_eq(qb_model_load(dir, NULL, &m, &err), QB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "layers.2.mlp.up_proj.qweight") && strstr(err.msg, "corrupt"),
              "%s", err.msg);
    qbt_rmtree(tmp);
    free(tmp);
}
