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

#include "qb_common.h"
#include "tokenizer.h"
#include "tokenizer_impl.h"

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

/* Compares our encode/decode with tok_json against the peer's for peer_json (the same
 * file except in the self-check); returns the number of mismatches (details on stderr). */
static int compare_cases_with(const char *tok_json, const char *peer_json, const char *extra)
{
    struct qb_tokenizer *tok = NULL;
    struct qb_err err;
    cr_assert_eq(qb_tok_load_hf(tok_json, &tok, &err), QB_OK, "%s", err.msg);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' '%s' cases '%s' %s", QB_PYTHON, PEER, peer_json,
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
                    fprintf(stderr, "%s: case %d (special=%d) \"%.80s\" differs\n", tok_json, count,
                            special, text);
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
                        fprintf(stderr,
                                "%s: case %d decode differs:\n  ours: \"%.120s\"\n  "
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

static int compare_cases(const char *tok_json, const char *extra)
{
    return compare_cases_with(tok_json, tok_json, extra);
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

/* Split behaviours (Removed, MergedWithPrevious/Next, Contiguous, invert), empty regex
 * matches, Oniguruma shorthands (\\w \\W \\h \\d \\s) and anchors, Digits, ByteLevel
 * add_prefix_space, Punctuation (Falcon's pre-tokenizer), Replace with a regex: each on the
 * gpt2 vocabulary. */
Test(tokenizer_peer, pre_tokenizer_variants, .init = build_peers, .fini = remove_peers)
{
    static const char *const names[] = {
        "v_removed",         "v_merged_prev",   "v_merged_next", "v_contiguous_invert",
        "v_isolated_invert", "v_empty_matches", "v_shorthands",  "v_anchors",
        "v_digits_prefix",   "v_digits_runs",   "v_falcon",
    };
    int bad = 0;
    for (size_t i = 0; i < QB_ARRAY_LEN(names); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s/tokenizer.json", tmpdir, names[i]);
        int b = compare_cases(path, NULL);
        if (b)
            fprintf(stderr, "variant %s: %d mismatches\n", names[i], b);
        bad += b;
    }
    cr_assert_eq(bad, 0);
}

/* The comparator must fire: our gpt2-shaped tokenizer against the peer's ids for the
 * qwen2-shaped one has to report mismatches. */
Test(tokenizer_peer, comparator_detects_a_different_tokenizer, .init = build_peers,
     .fini = remove_peers)
{
    char ours[512], theirs[512];
    snprintf(ours, sizeof(ours), "%s/gpt2/tokenizer.json", tmpdir);
    snprintf(theirs, sizeof(theirs), "%s/qwen2/tokenizer.json", tmpdir);
    cr_assert_gt(compare_cases_with(ours, theirs, NULL), 100);
}

/* ---- llama.cpp's vocabulary tests through qb_tok_create ------------------------- */

struct gguf_vocab {
    cJSON *root;
    const char **tokens, **merges;
    float *scores;
    int32_t *types;
    struct qb_tok_spec spec;
};

static void load_gguf_vocab(const char *name, struct gguf_vocab *v)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' '%s' gguf-vocab '%s/llamacpp-vocab-tests/ggml-vocab-%s.gguf'",
             QB_PYTHON, PEER, QB_SHARED_DATA, name);
    char *out = run_capture(cmd);
    memset(v, 0, sizeof(*v));
    v->root = cJSON_Parse(out);
    free(out);
    cr_assert_not_null(v->root);
    const cJSON *toks = cJSON_GetObjectItem(v->root, "tokens");
    const cJSON *scores = cJSON_GetObjectItem(v->root, "scores");
    const cJSON *types = cJSON_GetObjectItem(v->root, "types");
    const cJSON *merges = cJSON_GetObjectItem(v->root, "merges");
    int n = cJSON_GetArraySize(toks), nm = cJSON_GetArraySize(merges);
    v->tokens = calloc((size_t)n, sizeof(char *));
    v->types = calloc((size_t)n, sizeof(int32_t));
    v->scores = calloc((size_t)n, sizeof(float));
    v->merges = calloc((size_t)nm + 1, sizeof(char *));
    int i = 0;
    for (const cJSON *t = toks->child; t; t = t->next, i++)
        v->tokens[i] = t->valuestring;
    i = 0;
    for (const cJSON *t = types ? types->child : NULL; t; t = t->next, i++)
        v->types[i] = (int32_t)t->valuedouble;
    i = 0;
    for (const cJSON *t = cJSON_IsArray(scores) ? scores->child : NULL; t; t = t->next, i++)
        v->scores[i] = (float)t->valuedouble;
    i = 0;
    for (const cJSON *t = merges ? merges->child : NULL; t; t = t->next, i++)
        v->merges[i] = t->valuestring;
    int spm = strcmp(cJSON_GetObjectItem(v->root, "model")->valuestring, "llama") == 0;
    v->spec = (struct qb_tok_spec){
        .kind = spm ? QB_TOK_SPM : QB_TOK_BPE,
        .n_vocab = n,
        .pieces = v->tokens,
        .scores = cJSON_IsArray(scores) ? v->scores : NULL,
        .types = v->types,
        .merges = v->merges,
        .n_merges = (size_t)nm,
        .add_space_prefix = cJSON_IsTrue(cJSON_GetObjectItem(v->root, "add_space_prefix")),
        .add_bos = cJSON_IsTrue(cJSON_GetObjectItem(v->root, "add_bos")),
        .bos_id = (int32_t)cJSON_GetObjectItem(v->root, "bos")->valuedouble,
        .eos_id = (int32_t)cJSON_GetObjectItem(v->root, "eos")->valuedouble,
        .unk_id = (int32_t)cJSON_GetObjectItem(v->root, "unk")->valuedouble,
    };
}

static void free_gguf_vocab(struct gguf_vocab *v)
{
    free(v->tokens);
    free(v->types);
    free(v->scores);
    free(v->merges);
    cJSON_Delete(v->root);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* Encodes every .inp text and compares with the .out line (ids `tokenizers` gave). */
static void check_llamacpp_vocab(const char *name)
{
    if (!peer_available() || system("'" QB_PYTHON "' -c 'import gguf' 2>/dev/null") != 0)
        cr_skip_test("QB_PYTHON lacks `tokenizers` or `gguf`");
    char path[1024];
    snprintf(path, sizeof(path), "%s/llamacpp-vocab-tests/ggml-vocab-%s.gguf.inp", QB_SHARED_DATA,
             name);
    if (access(path, R_OK) != 0)
        cr_skip_test("no llama.cpp vocab tests at %s", QB_SHARED_DATA);
    char *inp = read_file(path);
    snprintf(path, sizeof(path), "%s/llamacpp-vocab-tests/ggml-vocab-%s.gguf.out", QB_SHARED_DATA,
             name);
    char *outp = read_file(path);
    struct gguf_vocab v;
    load_gguf_vocab(name, &v);
    struct qb_tokenizer *tok = NULL;
    struct qb_err err;
    cr_assert_eq(qb_tok_create(&v.spec, &tok, &err), QB_OK, "%s", err.msg);
    const char *sep = "\n__ggml_vocab_test__\n";
    char *text = inp, *line = outp;
    int cases = 0, bad = 0;
    while (text && *line) {
        char *next = strstr(text, sep);
        size_t len = next ? (size_t)(next - text) : strlen(text);
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = '\0';
        int32_t *ids;
        size_t n;
        cr_assert_eq(qb_tok_encode(tok, text, len, 0, &ids, &n, &err), QB_OK, "%s", err.msg);
        char got[8192] = "";
        size_t at = 0;
        for (size_t i = 0; i < n && at < sizeof(got) - 16; i++)
            at += (size_t)snprintf(got + at, sizeof(got) - at, " %d", ids[i]);
        if (strcmp(got, line) != 0 && bad++ < 8)
            fprintf(stderr, "%s case %d \"%.*s\":\n  ours:%s\n  want:%s\n", name, cases,
                    (int)QB_MIN(len, 60), text, got, line);
        free(ids);
        cases++;
        text = next ? next + strlen(sep) : NULL;
        line = eol ? eol + 1 : line + strlen(line);
    }
    fprintf(stderr, "llama.cpp vocab %s: %d cases, %d mismatches\n", name, cases, bad);
    cr_assert_gt(cases, 20);
    cr_assert_eq(bad, 0);
    qb_tok_free(tok);
    free_gguf_vocab(&v);
    free(inp);
    free(outp);
}

Test(tokenizer_gguf_vocab, llama_spm)
{
    check_llamacpp_vocab("llama-spm");
}

Test(tokenizer_gguf_vocab, phi3_spm)
{
    check_llamacpp_vocab("phi-3");
}

Test(tokenizer_gguf_vocab, gpt2_bpe)
{
    check_llamacpp_vocab("gpt-2");
}

/* ---- NFC against Python's unicodedata -------------------------------------------- */

Test(tokenizer_nfc, matches_unicodedata)
{
    if (system("'" QB_PYTHON "' -c 'import unicodedata' 2>/dev/null") != 0)
        cr_skip_test("no QB_PYTHON");
    char *out = run_capture("'" QB_PYTHON "' '" PEER "' nfc-cases");
    cJSON *root = cJSON_Parse(out);
    cr_assert_not_null(root);
    const char *version = cJSON_GetObjectItem(root, "unicode")->valuestring;
    if (strcmp(version, tok_nfc_unicode_version) != 0)
        cr_skip_test("QB_PYTHON's unicodedata is Unicode %s, the NFC tables are %s", version,
                     tok_nfc_unicode_version);
    int count = 0, bad = 0;
    for (const cJSON *c = cJSON_GetObjectItem(root, "cases")->child; c; c = c->next, count++) {
        char *in, *want;
        size_t n = unhex(c->child->valuestring, &in);
        size_t wn = unhex(c->child->next->valuestring, &want);
        struct tok_buf got = {0};
        cr_assert_eq(tok_nfc(in, n, &got), QB_OK);
        if ((got.len != wn || memcmp(got.p, want, wn) != 0) && bad++ < 10)
            fprintf(stderr, "NFC of %s: got %.*s want %s\n", c->child->valuestring, (int)got.len,
                    got.p, want);
        free(got.p);
        free(in);
        free(want);
    }
    fprintf(stderr, "NFC (Unicode %s in Python): %d cases, %d mismatches\n",
            cJSON_GetObjectItem(root, "unicode")->valuestring, count, bad);
    cr_assert_gt(count, 10000);
    cr_assert_eq(bad, 0);
    cJSON_Delete(root);
    free(out);
}
