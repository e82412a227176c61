/*
 * test_gguf_vocab.c - tokenizers rebuilt from GGUF metadata (core/gguf_vocab.c)
 * against llama.cpp's own tokenizer test vectors: for the nine vocabularies in
 * QB_SHARED_DATA/llamacpp-vocab-tests (Llama 2 SPM, Phi-3, GPT-2, StarCoder,
 * Falcon, DeepSeek LLM, DeepSeek Coder, MPT, Refact) every input of
 * ggml-vocab-NAME.gguf.inp (separated by "\n__ggml_vocab_test__\n") must encode
 * to the ids on the matching line of .out (no BOS), through the library and
 * through `quantbench tokenize VOCAB.gguf`. Skips when the data is absent.
 * Corrupt tokenizer metadata gives one clear error line.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "gguf_vocab.h"
#include "qb_test_util.h"

#define VOCAB_DIR QB_SHARED_DATA "/llamacpp-vocab-tests"
#define SEP "\n__ggml_vocab_test__\n"

static char *vocab_path(const char *name, const char *ext)
{
    struct stat sb;
    if (stat(VOCAB_DIR, &sb) != 0)
        cr_skip_test("no %s", VOCAB_DIR);
    return qb_asprintf("%s/ggml-vocab-%s.gguf%s", VOCAB_DIR, name, ext);
}

/* Parse "1 2 3" into ids; returns the count. */
static size_t parse_ids(const char *line, size_t line_len, int32_t *ids, size_t cap)
{
    size_t n = 0;
    char *copy = strndup(line, line_len), *p = copy, *end;
    for (long v; (v = strtol(p, &end, 10)), end != p; p = end) {
        cr_assert_lt(n, cap);
        ids[n++] = (int32_t)v;
    }
    free(copy);
    return n;
}

/* The i-th input (text, len) and expected ids line; returns 0 past the end. */
struct vectors {
    char *inp, *out;
    const char *ip, *op;
};

static int next_vector(struct vectors *v, const char **text, size_t *len, const char **line,
                       size_t *line_len)
{
    const char *sep = strstr(v->ip, SEP), *nl = strchr(v->op, '\n');
    if (!sep || !nl)
        return 0;
    *text = v->ip;
    *len = (size_t)(sep - v->ip);
    *line = v->op;
    *line_len = (size_t)(nl - v->op);
    v->ip = sep + strlen(SEP);
    v->op = nl + 1;
    return 1;
}

static void check_vocab(const char *name)
{
    char *gguf = vocab_path(name, ""), *inp = vocab_path(name, ".inp"),
         *out = vocab_path(name, ".out");
    struct vectors v = {qbt_read_file(inp, NULL), qbt_read_file(out, NULL), NULL, NULL};
    cr_assert(v.inp && v.out);
    v.ip = v.inp;
    v.op = v.out;
    struct qb_tokenizer *tok = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_gguf_vocab_load_file(gguf, &tok, &err), QB_OK, "%s", err.msg);
    const char *text, *line;
    size_t len, line_len, count = 0;
    static int32_t want[4096];
    while (next_vector(&v, &text, &len, &line, &line_len)) {
        int32_t *ids = NULL;
        size_t n = 0;
        size_t n_want = parse_ids(line, line_len, want, 4096);
        cr_assert_eq(qb_tok_encode(tok, text, len, 0, &ids, &n, &err), QB_OK, "%s", err.msg);
        int same = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
        cr_assert(same, "%s input %zu '%.*s': %zu ids, llama.cpp expects %zu (first %d vs %d)",
                  name, count, (int)(len < 60 ? len : 60), text, n, n_want,
                  n ? ids[0] : -1, n_want ? want[0] : -1);
        free(ids);
        count++;
    }
    cr_assert_geq(count, 40, "%s: only %zu test vectors read", name, count);
    qb_tok_free(tok);
    free(v.inp);
    free(v.out);
    free(gguf);
    free(inp);
    free(out);
}

Test(gguf_vocab, llama_spm) { check_vocab("llama-spm"); }
Test(gguf_vocab, phi_3) { check_vocab("phi-3"); }
Test(gguf_vocab, gpt_2) { check_vocab("gpt-2"); }
Test(gguf_vocab, starcoder) { check_vocab("starcoder"); }
Test(gguf_vocab, falcon) { check_vocab("falcon"); }
Test(gguf_vocab, deepseek_llm) { check_vocab("deepseek-llm"); }
Test(gguf_vocab, deepseek_coder) { check_vocab("deepseek-coder"); }
Test(gguf_vocab, mpt) { check_vocab("mpt"); }
Test(gguf_vocab, refact) { check_vocab("refact"); }

/* `quantbench tokenize VOCAB.gguf` on a few inputs of every vocabulary. */
Test(gguf_vocab, cli_tokenize_gguf, .timeout = 120)
{
    static const char *const names[] = {"llama-spm", "phi-3", "gpt-2", "starcoder", "falcon",
                                        "deepseek-llm", "deepseek-coder", "mpt", "refact"};
    char *dir = qbt_tempdir();
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char *gguf = vocab_path(names[k], ""), *inp = vocab_path(names[k], ".inp"),
             *out = vocab_path(names[k], ".out");
        struct vectors v = {qbt_read_file(inp, NULL), qbt_read_file(out, NULL), NULL, NULL};
        v.ip = v.inp;
        v.op = v.out;
        const char *text, *line;
        size_t len, line_len;
        for (int i = 0; next_vector(&v, &text, &len, &line, &line_len); i++) {
            if (i % 9 != 4) /* a sample: every ninth input */
                continue;
            qbt_write_file(dir, "in.txt", text, len);
            char *in_path = qb_asprintf("%s/in.txt", dir);
            const char *argv[] = {QB_BINARY, "tokenize", gguf, NULL};
            struct qbt_run r;
            qbt_run(argv, in_path, 60, &r);
            cr_assert_eq(r.exit_code, 0, "%s: %s", names[k], r.err);
            int32_t got[4096], want[4096];
            size_t ng = parse_ids(r.out, strlen(r.out), got, 4096);
            size_t nw = parse_ids(line, line_len, want, 4096);
            cr_assert(ng == nw && memcmp(got, want, ng * sizeof *got) == 0,
                      "%s input %d: tokenize printed '%s', expected '%.*s'", names[k], i, r.out,
                      (int)line_len, line);
            qbt_run_free(&r);
            free(in_path);
        }
        free(v.inp);
        free(v.out);
        free(gguf);
        free(inp);
        free(out);
    }
    qbt_rmtree(dir);
    free(dir);
}

/* ---- corrupt tokenizer metadata ------------------------------------------------ */

static void expect_vocab_error(const char *model, int bad_types, int drop_tokens,
                               const char *needle)
{
    struct qb_gguf_writer *w = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_gguf_writer_new(&w, &err), QB_OK);
    static const char *const toks[] = {"a", "b", "ab"};
    const int32_t types[] = {1, 1, 1};
    static const char *const merges[] = {"a b"};
    if (model)
        cr_assert_eq(qb_gguf_add_str(w, "tokenizer.ggml.model", model, &err), QB_OK);
    if (!drop_tokens)
        cr_assert_eq(qb_gguf_add_str_array(w, "tokenizer.ggml.tokens", toks, NULL, 3, &err),
                     QB_OK);
    cr_assert_eq(qb_gguf_add_array(w, "tokenizer.ggml.token_type", QB_GGUF_I32, types,
                                   bad_types ? 2 : 3, &err), QB_OK);
    cr_assert_eq(qb_gguf_add_str_array(w, "tokenizer.ggml.merges", merges, NULL, 1, &err), QB_OK);
    char *dir = qbt_tempdir(), *path = qb_asprintf("%s/v.gguf", dir);
    cr_assert_eq(qb_gguf_write(w, path, &err), QB_OK, "%s", err.msg);
    qb_gguf_writer_free(w);
    struct qb_tokenizer *tok = NULL;
    enum qb_status st = qb_gguf_vocab_load_file(path, &tok, &err);
    if (!needle) {
        cr_assert_eq(st, QB_OK, "%s", err.msg);
        int32_t *ids = NULL;
        size_t n = 0;
        cr_assert_eq(qb_tok_encode(tok, "ab", 2, 0, &ids, &n, &err), QB_OK, "%s", err.msg);
        cr_assert(n == 1 && ids[0] == 2, "'ab' should merge to id 2");
        free(ids);
    } else {
        cr_assert_neq(st, QB_OK);
        cr_assert_null(tok);
        cr_assert_not_null(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
        cr_assert_null(strchr(err.msg, '\n'));
    }
    qb_tok_free(tok);
    qbt_rmtree(dir);
    free(dir);
    free(path);
}

Test(gguf_vocab, tiny_bpe_loads) { expect_vocab_error("gpt2", 0, 0, NULL); }
Test(gguf_vocab, unsupported_model) { expect_vocab_error("bert", 0, 0, "'bert' is not supported"); }
Test(gguf_vocab, missing_model_key) { expect_vocab_error(NULL, 0, 0, "tokenizer.ggml.model"); }
Test(gguf_vocab, missing_tokens) { expect_vocab_error("gpt2", 0, 1, "tokenizer.ggml.tokens"); }
Test(gguf_vocab, short_token_type) { expect_vocab_error("gpt2", 1, 0, "token_type has 2 entries"); }
