/*
 * test_gguf_export.c - qb_gguf_export on the demo model: files read back by the
 * PyPI `gguf` package (tests/gguf_export_peer.py: metadata, tokenizer arrays,
 * tensor names/shapes/types, gguf.quants.dequantize against our dequantizer,
 * the HF weights within each type's error bound, and F16/Q8_0/Q4_0 bytes equal
 * to gguf.quants.quantize), the Ollama Modelfile, and the failure paths
 * (unknown scheme, unsupported checkpoint, cancellation, unwritable target)
 * leaving nothing behind.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "gguf_export.h"
#include "qb_test_util.h"

static char *work;

static void setup(void)
{
    work = qbt_tempdir();
}

static void teardown(void)
{
    qbt_rmtree(work);
    free(work);
}

TestSuite(gguf_export, .init = setup, .fini = teardown, .timeout = 300);

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* Our dequantization of every tensor of path into dir/NAME.f32. */
static void dump_ours(const char *path, const char *dir)
{
    struct qb_gguf *g = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_gguf_open(path, &g, &err), QB_OK, "%s", err.msg);
    for (size_t i = 0; i < qb_gguf_n_tensors(g); i++) {
        const struct qb_gguf_tensor *t = qb_gguf_tensor_at(g, i);
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        float *v = malloc((size_t)n * sizeof *v);
        cr_assert_eq(qb_ggml_dequantize_row(t->type, t->data, v, n), 0, "%s", t->name);
        char *fn = qb_asprintf("%s/%s.f32", dir, t->name);
        FILE *f = fopen(fn, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(v, sizeof *v, (size_t)n, f), (size_t)n);
        fclose(f);
        free(fn);
        free(v);
    }
    qb_gguf_close(g);
}

static void export_and_check(const char *ftype)
{
    char *out = qb_asprintf("%s/demo-%s.gguf", work, ftype);
    char *scheme = qb_asprintf("gguf-%s", ftype);
    struct qb_err err = {0};
    cr_assert_eq(qb_gguf_export(QB_DEMO_MODEL, scheme, out, NULL, &err), QB_OK, "%s", err.msg);
    char *mf_path = qb_asprintf("%s/Modelfile", work);
    char *mf = qbt_read_file(mf_path, NULL);
    cr_assert_not_null(mf, "no Modelfile beside the GGUF");
    char *from = qb_asprintf("FROM ./demo-%s.gguf\n", ftype);
    cr_assert_not_null(strstr(mf, from), "%s", mf);
    cr_assert_not_null(strstr(mf, "PARAMETER stop \"<|end_of_text|>\"\n"), "%s", mf);
    cr_assert_not_null(strstr(mf, "PARAMETER num_ctx 1024\n"), "%s", mf);
    cr_assert_not_null(strstr(mf, "TEMPLATE \"\"\"{{ .Prompt }}\"\"\"\n"), "%s", mf);
    if (!qbt_python_has("gguf,numpy")) {
        cr_log_warn("QB_PYTHON lacks gguf/numpy: peer check skipped");
    } else {
        char *ours = qb_asprintf("%s/ours-%s", work, ftype);
        cr_assert_eq(mkdir(ours, 0755), 0);
        dump_ours(out, ours);
        char *cmd = qb_asprintf("'%s' '%s/tests/gguf_export_peer.py' '%s' '%s' %s '%s'",
                                QB_PYTHON, QB_SOURCE_DIR, out, QB_DEMO_MODEL, ftype, ours);
        cr_assert_eq(system(cmd), 0, "peer failed: %s", cmd);
        free(cmd);
        free(ours);
    }
    free(from);
    free(mf);
    free(mf_path);
    free(scheme);
    free(out);
}

Test(gguf_export, f16) { export_and_check("f16"); }
Test(gguf_export, q8_0) { export_and_check("q8_0"); }
Test(gguf_export, q4_0) { export_and_check("q4_0"); }
Test(gguf_export, q6_k) { export_and_check("q6_k"); }
Test(gguf_export, q5_k_m) { export_and_check("q5_k_m"); }
Test(gguf_export, q4_k_m) { export_and_check("q4_k_m"); }
Test(gguf_export, q3_k_s) { export_and_check("q3_k_s"); }
Test(gguf_export, q2_k) { export_and_check("q2_k"); }

Test(gguf_export, unknown_scheme_is_usage_error)
{
    char *out = qb_asprintf("%s/x.gguf", work);
    struct qb_err err = {0};
    cr_assert_eq(qb_gguf_export(QB_DEMO_MODEL, "int4", out, NULL, &err), QB_ERR_USAGE);
    cr_assert_not_null(strstr(err.msg, "gguf-q4_k_m"), "%s", err.msg);
    cr_assert_eq(count_entries(work), 0);
    free(out);
}

Test(gguf_export, cancelled_export_leaves_nothing)
{
    char *out = qb_asprintf("%s/x.gguf", work);
    struct qb_progress *p = qb_progress_create();
    qb_progress_cancel(p);
    struct qb_err err = {0};
    cr_assert_eq(qb_gguf_export(QB_DEMO_MODEL, "gguf-q4_k_m", out, p, &err), QB_ERR_CANCELLED,
                 "%s", err.msg);
    cr_assert_eq(count_entries(work), 0, "a cancelled export left files behind");
    qb_progress_free(p);
    free(out);
}

Test(gguf_export, unwritable_target_fails_cleanly)
{
    char *out = qb_asprintf("%s/no/such/dir/x.gguf", work);
    struct qb_err err = {0};
    cr_assert_neq(qb_gguf_export(QB_DEMO_MODEL, "gguf-q8_0", out, NULL, &err), QB_OK);
    cr_assert_gt(strlen(err.msg), 0);
    cr_assert_eq(count_entries(work), 0);
    free(out);
}

Test(gguf_export, biased_checkpoint_is_unsupported)
{
    char *copy = qbt_demo_copy();
    char *cfg_path = qb_asprintf("%s/config.json", QB_DEMO_MODEL);
    char *cfg = qbt_read_file(cfg_path, NULL);
    char *p = strstr(cfg, "\"attention_bias\": false");
    cr_assert_not_null(p);
    memcpy(p, "\"attention_bias\": true ", 23);
    qbt_write_file(copy, "config.json", cfg, strlen(cfg));
    char *out = qb_asprintf("%s/x.gguf", work);
    struct qb_err err = {0};
    enum qb_status st = qb_gguf_export(copy, "gguf-q8_0", out, NULL, &err);
    cr_assert_neq(st, QB_OK);
    cr_assert_eq(count_entries(work), 0);
    qbt_rmtree(copy);
    free(copy);
    free(out);
    free(cfg);
    free(cfg_path);
}

Test(gguf_export, modelfile_text)
{
    char *t = qb_gguf_modelfile_text("m.gguf", "</s>", 4096);
    cr_assert_str_eq(t, "# Ollama Modelfile written by quantbench: ollama create NAME -f "
                        "Modelfile\nFROM ./m.gguf\n# a base model: the prompt is passed through "
                        "unchanged\nTEMPLATE \"\"\"{{ .Prompt }}\"\"\"\nPARAMETER stop \"</s>\"\n"
                        "PARAMETER num_ctx 4096\n");
    free(t);
    t = qb_gguf_modelfile_text("m.gguf", "bad\"quote", 8);
    cr_assert_null(strstr(t, "PARAMETER stop"), "a stop token with a quote is left out");
    free(t);
}
