/*
 * test_tokenizer_peer.c - our tokenizer against the PyPI `tokenizers` package.
 *
 * tests/tokenizer_peer.py (run with QB_PYTHON) trains small BPE tokenizers shaped
 * like real checkpoints (Llama-2 SentencePiece-style, Metaspace first/always,
 * GPT-2 byte-level with flagged added tokens, Qwen2 Split regex) and prints, for
 * ~700 varied strings (and whole files), the ids `tokenizers` gives with and
 * without special tokens and decode(ids). Every id and every decoded byte must be
 * equal. Skips when QB_PYTHON lacks `tokenizers`.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer.h"

#define PEER QB_TEST_DATA "/../tokenizer_peer.py"

static int peer_available(void)
{
    return system("'" QB_PYTHON "' '" PEER "' check >/dev/null 2>&1") == 0;
}

static char *run_capture(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, p);
        if (!got)
            break;
        n += got;
    }
    buf[n] = '\0';
    int rc = pclose(p);
    cr_assert_eq(rc, 0, "command failed (%d): %s", rc, cmd);
    return buf;
}

static size_t unhex(const char *hex, char **out)
{
    size_t n = strlen(hex) / 2;
    char *b = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        b[i] = (char)v;
    }
    b[n] = '\0';
    *out = b;
    return n;
}

static int ids_equal(const cJSON *want, const int32_t *got, size_t n)
{
    if ((size_t)cJSON_GetArraySize(want) != n)
        return 0;
    size_t i = 0;
    for (const cJSON *v = want->child; v; v = v->next, i++) {
        if ((int32_t)v->valuedouble != got[i])
            return 0;
    }
    return 1;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ... (%zu)\n" : "\n", n);
}

/* Compares every case; returns the number of mismatches (details on stderr). */
static int compare_cases(const char *tok_json, const char *extra)
{
    struct qb_tokenizer *tok = NULL;
    struct qb_err err;
    cr_assert_eq(qb_tok_load_hf(tok_json, &tok, &err), QB_OK, "%s", err.msg);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' '%s' cases '%s' %s", QB_PYTHON, PEER, tok_json,
             extra ? extra : "");
    char *out = run_capture(cmd);
    cJSON *root = cJSON_Parse(out);
    cr_assert_not_null(root, "peer output is not JSON");
    const cJSON *cases = cJSON_GetObjectItem(root, "cases");
    int bad = 0, count = 0;
    for (const cJSON *c = cases->child; c; c = c->next, count++) {
        char *text, *want_dec;
        size_t len = unhex(cJSON_GetObjectItem(c, "hex")->valuestring, &text);
        size_t want_dec_len = unhex(cJSON_GetObjectItem(c, "decoded_hex")->valuestring, &want_dec);
        for (int special = 0; special <= 1; special++) {
            int32_t *ids = NULL;
            size_t n = 0;
            cr_assert_eq(qb_tok_encode(tok, text, len, special, &ids, &n, &err), QB_OK, "%s",
                         err.msg);
            const cJSON *want = cJSON_GetObjectItem(c, special ? "ids_special" : "ids");
            if (!ids_equal(want, ids, n)) {
                if (bad++ < 12) {
                    fprintf(stderr, "%s: case %d (special=%d) \"%.80s\" differs\n", tok_json,
                            count, special, text);
                    print_ids("ours", ids, n);
                    char *w = cJSON_PrintUnformatted(want);
                    fprintf(stderr, "  want: %.400s\n", w);
                    free(w);
                }
            } else if (!special) {
                char *dec = NULL;
                size_t dec_len = 0;
                cr_assert_eq(qb_tok_decode(tok, ids, n, &dec, &dec_len, &err), QB_OK, "%s",
                             err.msg);
                if (dec_len != want_dec_len || memcmp(dec, want_dec, dec_len) != 0) {
                    if (bad++ < 12)
                        fprintf(stderr, "%s: case %d decode differs:\n  ours: \"%.120s\"\n  "
                                        "want: \"%.120s\"\n",
                                tok_json, count, dec, want_dec);
                }
                free(dec);
            }
            free(ids);
        }
        free(text);
        free(want_dec);
    }
    cr_assert_gt(count, 600, "too few peer cases (%d)", count);
    fprintf(stderr, "%s: %d cases, %d mismatches\n", tok_json, count, bad);
    cJSON_Delete(root);
    free(out);
    qb_tok_free(tok);
    return bad;
}

static char tmpdir[256];

static void build_peers(void)
{
    if (!peer_available())
        cr_skip_test("QB_PYTHON (%s) has no `tokenizers` package", QB_PYTHON);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/qb-tok-peer-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' '%s' build '%s' '%s/calib-gutenberg.txt'", QB_PYTHON, PEER,
             tmpdir, QB_TEST_DATA);
    free(run_capture(cmd));
}

static void remove_peers(void)
{
    if (!tmpdir[0])
        return;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

static void check_trained(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s/tokenizer.json", tmpdir, name);
    cr_assert_eq(compare_cases(path, QB_TEST_DATA "/calib-gutenberg.txt"), 0,
                 "%s differs from tokenizers", name);
}

TestSuite(tokenizer_peer, .timeout = 600);

Test(tokenizer_peer, demo_llama3_style)
{
    if (!peer_available())
        cr_skip_test("QB_PYTHON (%s) has no `tokenizers` package", QB_PYTHON);
    cr_assert_eq(compare_cases(QB_TEST_DATA "/ref-llama-10m/tokenizer.json",
                               QB_TEST_DATA "/eval-gutenberg.txt"),
                 0);
}

Test(tokenizer_peer, llama2_sentencepiece_style, .init = build_peers, .fini = remove_peers)
{
    check_trained("llama2");
}

Test(tokenizer_peer, metaspace_first_no_split, .init = build_peers, .fini = remove_peers)
{
    check_trained("metaspace");
}

Test(tokenizer_peer, metaspace_always_split, .init = build_peers, .fini = remove_peers)
{
    check_trained("metaspace_split");
}

Test(tokenizer_peer, gpt2_byte_level_added_tokens, .init = build_peers, .fini = remove_peers)
{
    check_trained("gpt2");
}

Test(tokenizer_peer, qwen2_split_regex, .init = build_peers, .fini = remove_peers)
{
    check_trained("qwen2");
}
