/*
 * test_tokenizer_cli.c - `quantbench tokenize` end to end (ids, --json, --bos, --decode,
 * exit codes and one-line errors), one tokenizer shared by several threads, and
 * megabyte-long pre-tokens (PCRE2 JIT stack, O(n log n) merging).
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qb_test_tok.h"
#include "tokenizer.h"

Test(tokenizer, long_inputs_do_not_overflow_the_regex_stack)
{
    struct qb_tokenizer *tok = load_demo();
    size_t n = 1 << 20;
    char *s = malloc(n);
    const char fill[] = {'a', ' ', '\n', '7', '!'};
    for (size_t k = 0; k < QB_ARRAY_LEN(fill); k++) {
        memset(s, fill[k], n);
        int32_t *ids;
        size_t count;
        encode(tok, s, n, 0, &ids, &count);
        cr_assert_gt(count, 0);
        free(ids);
    }
    free(s);
    qb_tok_free(tok);
}

/* ---- threads ------------------------------------------------------------------- */

struct thread_job {
    const struct qb_tokenizer *tok;
    const char *text;
    size_t len;
    int32_t *ids;
    size_t n;
};

static void *encode_thread(void *arg)
{
    struct thread_job *j = arg;
    struct qb_err err;
    if (qb_tok_encode(j->tok, j->text, j->len, 1, &j->ids, &j->n, &err))
        j->ids = NULL;
    return NULL;
}

Test(tokenizer, one_tokenizer_many_threads)
{
    struct qb_tokenizer *tok = load_demo();
    size_t len;
    char *text = slurp(EVAL_TXT, &len);
    len /= 4;
    struct thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct thread_job){tok, text, len, NULL, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, encode_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_not_null(jobs[i].ids);
        cr_assert_eq(jobs[i].n, jobs[0].n);
        cr_assert(memcmp(jobs[i].ids, jobs[0].ids, jobs[0].n * sizeof(int32_t)) == 0);
    }
    for (int i = 0; i < 4; i++)
        free(jobs[i].ids);
    free(text);
    qb_tok_free(tok);
}

/* ---- the command --------------------------------------------------------------- */

struct run_result {
    int code;
    char out[8192], err[8192];
};

/* Runs `quantbench tokenize ARGS` with `input` on stdin. */
static void run_cli(const char *args, const char *input, size_t input_len, struct run_result *r)
{
    char in_path[] = "/tmp/qb-tok-in-XXXXXX", out_path[] = "/tmp/qb-tok-out-XXXXXX",
         err_path[] = "/tmp/qb-tok-err-XXXXXX";
    int fi = mkstemp(in_path), fo = mkstemp(out_path), fe = mkstemp(err_path);
    cr_assert(fi >= 0 && fo >= 0 && fe >= 0);
    cr_assert_eq(write(fi, input, input_len), (ssize_t)input_len);
    close(fi);
    close(fo);
    close(fe);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s' tokenize %s <'%s' >'%s' 2>'%s'", QB_BINARY, args, in_path,
             out_path, err_path);
    int status = system(cmd);
    r->code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    FILE *f = fopen(out_path, "rb");
    size_t n = fread(r->out, 1, sizeof(r->out) - 1, f);
    r->out[n] = '\0';
    fclose(f);
    f = fopen(err_path, "rb");
    n = fread(r->err, 1, sizeof(r->err) - 1, f);
    r->err[n] = '\0';
    fclose(f);
    unlink(in_path);
    unlink(out_path);
    unlink(err_path);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(tokenize_cli, ids_json_bos_and_decode)
{
    struct run_result r;
    const char *demo = QB_TEST_DATA "/ref-llama-10m";
    const char text[] = "Hello world\n  x \n";
    char args[1024];
    snprintf(args, sizeof(args), "'%s'", demo);
    run_cli(args, text, strlen(text), &r);
    cr_assert_eq(r.code, 0, "%s", r.err);
    struct qb_tokenizer *tok = load_demo();
    int32_t *ids;
    size_t n;
    encode(tok, text, strlen(text), 0, &ids, &n);
    char want[4096] = "";
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        at += (size_t)snprintf(want + at, sizeof(want) - at, i ? " %d" : "%d", ids[i]);
    snprintf(want + at, sizeof(want) - at, "\n");
    cr_assert_str_eq(r.out, want);

    snprintf(args, sizeof(args), "'%s/tokenizer.json' --bos --json", demo);
    run_cli(args, text, strlen(text), &r);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cJSON *root = cJSON_Parse(r.out);
    cr_assert_not_null(root, "not JSON: %s", r.out);
    const cJSON *arr = cJSON_GetObjectItem(root, "ids");
    cr_assert_eq((size_t)cJSON_GetArraySize(arr), n + 1);
    cr_assert_eq(arr->child->valuedouble, 8190);
    cJSON_Delete(root);

    /* decode gives the exact bytes back, no newline added */
    snprintf(args, sizeof(args), "'%s' --decode", demo);
    run_cli(args, want, strlen(want), &r);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, text);

    /* empty stdin: one empty line */
    snprintf(args, sizeof(args), "'%s'", demo);
    run_cli(args, "", 0, &r);
    cr_assert_eq(r.code, 0);
    cr_assert_str_eq(r.out, "\n");
    free(ids);
    qb_tok_free(tok);
}

Test(tokenize_cli, errors_and_usage)
{
    struct run_result r;
    run_cli("--help", "", 0, &r);
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, "usage: quantbench tokenize"));
    run_cli("", "", 0, &r);
    cr_assert_eq(r.code, 2);
    run_cli("--frobnicate x", "", 0, &r);
    cr_assert_eq(r.code, 2);
    run_cli("/nonexistent-model", "hi", 2, &r);
    cr_assert_eq(r.code, 1);
    cr_assert_eq(count_lines(r.err), 1, "stderr: %s", r.err);
    cr_assert(strstr(r.err, "quantbench: cannot open '/nonexistent-model'"), "%s", r.err);
    cr_assert_str_eq(r.out, "");

    char args[1024];
    snprintf(args, sizeof(args), "'%s/ref-llama-10m' --decode", QB_TEST_DATA);
    run_cli(args, "1 2 99999", 9, &r);
    cr_assert_eq(r.code, 1);
    cr_assert_eq(count_lines(r.err), 1, "stderr: %s", r.err);
    cr_assert(strstr(r.err, "99999"), "%s", r.err);
    run_cli(args, "1 two 3", 7, &r);
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "'two'"), "%s", r.err);

    /* garbage tokenizer.json */
    char path[] = "/tmp/qb-tok-bad-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_eq(write(fd, "{\"model\": {", 11), 11);
    close(fd);
    snprintf(args, sizeof(args), "'%s'", path);
    run_cli(args, "hi", 2, &r);
    unlink(path);
    cr_assert_eq(r.code, 1);
    cr_assert_eq(count_lines(r.err), 1, "stderr: %s", r.err);
    cr_assert(strstr(r.err, "not valid JSON"), "%s", r.err);
}
