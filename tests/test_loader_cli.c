/*
 * test_loader_cli.c - broken checkpoints, configs and tokenizers through the
 * CLI: one line on stderr, exit 1, nothing on stdout; usage errors exit 2.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "qb_test_util.h"

/* Run `quantbench eval` on a broken model dir: exit 1, one stderr line mentioning `what`. */
static void expect_cli_error(const char *dir, const char *what)
{
    const char *argv[] = {QB_BINARY, "eval", dir, "--data", QB_EVAL_TEXT, "--chunks", "1",
                          "--backend", "cpu", NULL};
    struct qbt_run r;
    qbt_run(argv, NULL, 120, &r);
    cr_assert_eq(r.exit_code, 1, "exit %d for %s; stderr: %s", r.exit_code, what, r.err);
    cr_assert_eq(qbt_count_lines(r.err), 1, "stderr for %s: %s", what, r.err);
    cr_assert(strstr(r.err, what) != NULL, "stderr '%s' lacks '%s'", r.err, what);
    cr_assert_str_eq(r.out, "");
    qbt_run_free(&r);
}

Test(model_cli, broken_checkpoints_fail_with_one_line)
{
    char *dir = qbt_demo_copy();
    size_t len = 0;
    char *shard = qbt_read_file(QB_DEMO_MODEL "/model-00001-of-00002.safetensors", &len);
    cr_assert_not_null(shard);
    /* truncated shard */
    qbt_write_file(dir, "model-00001-of-00002.safetensors", shard, len / 2);
    expect_cli_error(dir, "model-00001-of-00002.safetensors");
    /* absurd header length */
    unsigned char bad[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    qbt_write_file(dir, "model-00001-of-00002.safetensors", bad, sizeof bad);
    expect_cli_error(dir, "header length");
    qbt_write_file(dir, "model-00001-of-00002.safetensors", shard, len);
    /* shard named in the index but absent */
    char *idx = qbt_read_file(QB_DEMO_MODEL "/model.safetensors.index.json", NULL);
    char *p = strstr(idx, "model-00002-of-00002");
    memcpy(p, "model-00009", 11);
    qbt_write_file(dir, "model.safetensors.index.json", idx, strlen(idx));
    expect_cli_error(dir, "does not exist");
    free(idx);
    qbt_write_file(dir, "config.json", "{\"model_type\": ", 15);
    expect_cli_error(dir, "config.json");
    free(shard);
    qbt_rmtree(dir);
    free(dir);
}

Test(model_cli, bad_config_and_tokenizer)
{
    char *dir = qbt_demo_copy();
    char *cfg = qbt_read_file(QB_DEMO_MODEL "/config.json", NULL);
    char *p = strstr(cfg, "\"num_attention_heads\": 4");
    cr_assert_not_null(p);
    memcpy(p, "\"num_attention_heads\": 0", 24);
    qbt_write_file(dir, "config.json", cfg, strlen(cfg));
    expect_cli_error(dir, "num_attention_heads");
    free(cfg);
    qbt_rmtree(dir);
    free(dir);
    dir = qbt_demo_copy();
    qbt_write_file(dir, "tokenizer.json", "garbage", 7);
    expect_cli_error(dir, "tokenizer.json");
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/tokenizer.json", dir) > 0);
    unlink(path);
    expect_cli_error(dir, "tokenizer.json");
    free(path);
    qbt_rmtree(dir);
    free(dir);
}

Test(model_cli, usage_errors_exit_2)
{
    const char *a1[] = {QB_BINARY, "eval", NULL};
    const char *a2[] = {QB_BINARY, "eval", QB_DEMO_MODEL, "--data", QB_EVAL_TEXT, "--ctx", "x",
                        NULL};
    const char *a3[] = {QB_BINARY, "not-a-command", NULL};
    const char *a4[] = {QB_BINARY, "compare", QB_DEMO_MODEL, "--data", QB_EVAL_TEXT,
                        "--schemes", "int5", NULL};
    const char *const *cases[] = {a1, a2, a3};
    for (size_t i = 0; i < 3; i++) {
        struct qbt_run r;
        qbt_run(cases[i], NULL, 30, &r);
        cr_assert_eq(r.exit_code, 2, "case %zu exit %d: %s", i, r.exit_code, r.err);
        qbt_run_free(&r);
    }
    struct qbt_run r;
    qbt_run(a4, NULL, 30, &r);
    cr_assert_eq(r.exit_code, 2, "unknown scheme exit %d: %s", r.exit_code, r.err);
    cr_assert(strstr(r.err, "int5") != NULL);
    qbt_run_free(&r);
    const char *h[] = {QB_BINARY, "--help", NULL};
    qbt_run(h, NULL, 30, &r);
    cr_assert_eq(r.exit_code, 0);
    cr_assert(strstr(r.out, "compare") != NULL);
    qbt_run_free(&r);
    const char *v[] = {QB_BINARY, "--version", NULL};
    qbt_run(v, NULL, 30, &r);
    cr_assert_eq(r.exit_code, 0);
    cr_assert(strncmp(r.out, "quantbench ", 11) == 0);
    qbt_run_free(&r);
    const char *eh[] = {QB_BINARY, "eval", "--help", NULL};
    qbt_run(eh, NULL, 30, &r);
    cr_assert_eq(r.exit_code, 0);
    cr_assert(strstr(r.out, "--data") != NULL);
    qbt_run_free(&r);
}
