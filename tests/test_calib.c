/*
 * test_calib.c - calibration windows (splitmix64 draws, BOS, caps, errors) and
 * the quantize command's usage errors.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "calib.h"
#include "qb_test_util.h"

Test(calib, splitmix64_reference_values)
{
    /* the reference generator (Vigna's splitmix64.c) from state 0 */
    uint64_t s = 0;
    cr_assert_eq(qb_splitmix64(&s), 0xe220a8397b1dcdafull);
    cr_assert_eq(qb_splitmix64(&s), 0x6e789e6aa1b965f4ull);
    cr_assert_eq(qb_splitmix64(&s), 0x06c45d188009454full);
}

Test(calib, starts_are_in_range_and_reproducible)
{
    int64_t a[500], b[500], c[500];
    qb_calib_draw_starts(7, 1000, 100, 500, a);
    qb_calib_draw_starts(7, 1000, 100, 500, b);
    qb_calib_draw_starts(8, 1000, 100, 500, c);
    int differ = 0, hit_last = 0;
    for (int i = 0; i < 500; i++) {
        cr_assert(a[i] >= 0 && a[i] <= 900);
        cr_assert_eq(a[i], b[i]);
        differ |= a[i] != c[i];
        hit_last |= a[i] == 900;
    }
    cr_assert(differ, "another seed draws other windows");
    qb_calib_draw_starts(1, 100, 100, 3, a); /* text exactly one window long */
    cr_assert(a[0] == 0 && a[1] == 0 && a[2] == 0);
    (void)hit_last;
}

static struct qb_model *demo(void)
{
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_model_load(QB_DEMO_MODEL, NULL, &m, &err), QB_OK, "%s", err.msg);
    return m;
}

Test(calib, windows_are_text_slices_with_bos)
{
    struct qb_model *m = demo();
    size_t len;
    char *text = qbt_read_file(QB_CALIB_TEXT, &len);
    int32_t *toks;
    size_t n;
    cr_assert_eq(qb_tok_encode(m->tok, text, len, 0, &toks, &n, NULL), QB_OK);
    struct qb_calib_opts o = {.path = QB_CALIB_TEXT, .n_samples = 16, .seqlen = 128, .seed = 3};
    struct qb_calib_data d;
    struct qb_err err = {0};
    cr_assert_eq(qb_calib_load(m, &o, &d, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(d.n_samples, 16);
    cr_assert_eq(d.seqlen, 128);
    cr_assert_eq(d.n_text_tokens, (int64_t)n);
    cr_assert(!d.capped_by_ctx && !d.capped_by_text);
    int64_t starts[16];
    qb_calib_draw_starts(3, (int64_t)n, 128, 16, starts);
    for (int i = 0; i < 16; i++) {
        const int32_t *w = d.ids + i * 128;
        cr_assert_eq(w[0], m->cfg.bos_id, "window %d starts with BOS", i);
        cr_assert_eq(memcmp(w + 1, toks + starts[i] + 1, 127 * sizeof(int32_t)), 0);
    }
    qb_calib_free(&d);
    free(toks);
    free(text);
    qb_model_free(m);
}

Test(calib, caps_seqlen_by_context_and_text)
{
    struct qb_model *m = demo();
    struct qb_calib_opts o = {.n_samples = 8, .seqlen = 100000};
    struct qb_calib_data d;
    const char *big = "The quick brown fox jumps over the lazy dog. ";
    size_t blen = strlen(big);
    char *text = malloc(blen * 400 + 1);
    for (int i = 0; i < 400; i++)
        memcpy(text + i * blen, big, blen);
    cr_assert_eq(qb_calib_from_text(m, text, blen * 400, &o, &d, NULL), QB_OK);
    cr_assert_eq(d.seqlen, m->cfg.max_ctx);
    cr_assert(d.capped_by_ctx);
    qb_calib_free(&d);
    /* a short text: windows overlap and seqlen drops to the text's length */
    o.seqlen = 512;
    cr_assert_eq(qb_calib_from_text(m, big, blen, &o, &d, NULL), QB_OK);
    cr_assert(d.capped_by_text);
    cr_assert_eq(d.seqlen, d.n_text_tokens);
    cr_assert_eq(d.n_samples, 8);
    qb_calib_free(&d);
    free(text);
    qb_model_free(m);
}

Test(calib, errors)
{
    struct qb_model *m = demo();
    struct qb_calib_opts o = {.path = "/nonexistent/calib.txt", .n_samples = 4, .seqlen = 16};
    struct qb_calib_data d;
    struct qb_err err = {0};
    cr_assert_eq(qb_calib_load(m, &o, &d, &err), QB_ERR_IO);
    cr_assert(strstr(err.msg, "/nonexistent/calib.txt"), "%s", err.msg);
    cr_assert_eq(qb_calib_from_text(m, "", 0, &o, &d, &err), QB_ERR_FORMAT);
    o.n_samples = 0;
    cr_assert_eq(qb_calib_from_text(m, "hello world", 11, &o, &d, &err), QB_ERR_USAGE);
    qb_model_free(m);
}

static void run_cli(const char *const *argv, int want_rc, const char *want_err)
{
    struct qbt_run r;
    qbt_run(argv, NULL, 120, &r);
    cr_assert_eq(r.exit_code, want_rc, "exit %d, stderr: %s", r.exit_code, r.err);
    if (want_err)
        cr_assert(strstr(r.err, want_err), "stderr: %s", r.err);
    qbt_run_free(&r);
}

Test(quantize_cli, usage_errors)
{
    const char *no_calib[] = {QB_BINARY, "quantize", QB_DEMO_MODEL, "--scheme", "gptq-int4",
                              "--out", "/tmp/qb-never", NULL};
    run_cli(no_calib, 2, "--calib");
    const char *awq_sym[] = {QB_BINARY, "quantize", QB_DEMO_MODEL, "--scheme", "awq-int4",
                             "--calib", QB_CALIB_TEXT, "--sym", "--out", "/tmp/qb-never", NULL};
    run_cli(awq_sym, 2, "GPTQ options");
    const char *no_out[] = {QB_BINARY, "quantize", QB_DEMO_MODEL, "--scheme", "gptq-int4", NULL};
    run_cli(no_out, 2, "--out");
    const char *bad_damp[] = {QB_BINARY, "quantize", QB_DEMO_MODEL, "--scheme", "gptq-int4",
                              "--calib", QB_CALIB_TEXT, "--damp", "x", "--out", "/tmp/q", NULL};
    run_cli(bad_damp, 2, "--damp");
    const char *help[] = {QB_BINARY, "quantize", "--help", NULL};
    run_cli(help, 0, NULL);
    char *dir = qbt_tempdir(); /* exists */
    const char *exists[] = {QB_BINARY, "quantize", QB_DEMO_MODEL, "--scheme", "gptq-int4",
                            "--calib", QB_CALIB_TEXT, "--out", dir, NULL};
    run_cli(exists, 1, "already exists");
    qbt_rmtree(dir);
    free(dir);
    const char *eval_no_calib[] = {QB_BINARY, "eval", QB_DEMO_MODEL, "--data", QB_EVAL_TEXT,
                                   "--scheme", "awq-int4", NULL};
    run_cli(eval_no_calib, 2, "--calib");
}
