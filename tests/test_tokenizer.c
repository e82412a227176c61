/*
 * test_tokenizer.c - tokenizer checks that need no Python: the demo model's eval ids
 * against the transformers reference, the qb_tok_create builder against the JSON
 * loader, hand-computed BPE cases and every corrupt-input path.
 * (test_tokenizer_cli.c has the command, threads and long inputs; test_tokenizer_peer.c
 * the comparisons with the PyPI `tokenizers` package.)
 * qb-test-labels: arm64
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qb_test_tok.h"
#include "tokenizer.h"

/* ---- the demo model against the transformers reference ------------------------ */

Test(tokenizer, demo_eval_ids_match_reference)
{
    struct qb_tokenizer *tok = load_demo();
    size_t len, rlen;
    char *text = slurp(EVAL_TXT, &len);
    char *ref = slurp(QB_TEST_DATA "/ref-llama-10m.reference.json", &rlen);
    cJSON *root = cJSON_Parse(ref);
    cr_assert_not_null(root);
    int32_t *ids;
    size_t n;
    double t0 = qb_now_seconds();
    encode(tok, text, len, 1, &ids, &n);
    double dt = qb_now_seconds() - t0;
    fprintf(stderr, "encode of %zu bytes: %zu tokens in %.3f s\n", len, n, dt);
    cr_assert_lt(dt, 5.0, "encode of the eval text took %.2f s", dt);
    cr_assert_eq(n, (size_t)cJSON_GetObjectItem(root, "eval_tokens_with_bos")->valuedouble);
    cr_assert_eq(n, 124517);
    cr_assert_eq(ids[0], 8190);
    cr_assert_eq(qb_tok_bos(tok), 8190);
    cr_assert_eq(qb_tok_eos(tok), 8191);
    cr_assert(qb_tok_adds_bos(tok));
    cr_assert_eq(qb_tok_vocab_size(tok), 8192);
    const cJSON *head = cJSON_GetObjectItem(root, "eval_head_ids");
    cr_assert(cJSON_IsArray(head) && cJSON_GetArraySize(head) > 16);
    size_t i = 0;
    for (const cJSON *v = head->child; v; v = v->next, i++)
        cr_assert_eq(ids[i], (int32_t)v->valuedouble, "eval id %zu: %d, want %d", i, ids[i],
                     (int32_t)v->valuedouble);
    /* decode(encode(text)) gives the text back for valid UTF-8 input */
    char *dec;
    size_t dec_len;
    struct qb_err err;
    cr_assert_eq(qb_tok_decode(tok, ids + 1, n - 1, &dec, &dec_len, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(dec_len, len);
    cr_assert(memcmp(dec, text, len) == 0);
    free(dec);
    free(ids);
    cJSON_Delete(root);
    free(ref);
    free(text);
    qb_tok_free(tok);
}

/* ---- hand-computed cases ------------------------------------------------------- */

static struct qb_tokenizer *load_str(const char *json, struct qb_err *err, enum qb_status *st)
{
    struct qb_tokenizer *tok = NULL;
    *st = qb_tok_load_hf_buffer(json, strlen(json), "test.json", &tok, err);
    return tok;
}

static void expect_ids(const struct qb_tokenizer *tok, const char *text, const int32_t *want,
                       size_t n_want)
{
    int32_t *ids;
    size_t n;
    encode(tok, text, strlen(text), 0, &ids, &n);
    cr_assert_eq(n, n_want, "'%s': %zu ids, want %zu", text, n, n_want);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(ids[i], want[i], "'%s': id %zu is %d, want %d", text, i, ids[i], want[i]);
    free(ids);
}

Test(tokenizer, merge_ranks_and_ties_by_hand)
{
    /* "aaa": a+a (rank 0) merges leftmost first -> [aa, a]; "abab": a+b rank 1 twice, then
     * ab+ab rank 2 -> [abab]. Rank, not vocab id, decides. */
    const char *json =
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"aa\":5,\"ab\":3,\"abab\":4,"
        "\"ba\":2},\"merges\":[\"a a\",[\"a\",\"b\"],\"ab ab\",\"b a\"]}}";
    struct qb_err err;
    enum qb_status st;
    struct qb_tokenizer *tok = load_str(json, &err, &st);
    cr_assert_eq(st, QB_OK, "%s", err.msg);
    expect_ids(tok, "aaa", (int32_t[]){5, 0}, 2);
    expect_ids(tok, "abab", (int32_t[]){4}, 1);
    expect_ids(tok, "bab", (int32_t[]){1, 3}, 2); /* a b (1) beats b a (3) */
    expect_ids(tok, "", NULL, 0);
    /* no unk token and no byte fallback: unknown characters vanish, as in tokenizers */
    expect_ids(tok, "axb", (int32_t[]){3}, 1); /* then a, b are adjacent and merge */
    char *dec;
    size_t n;
    cr_assert_eq(qb_tok_decode(tok, (int32_t[]){4, 0}, 2, &dec, &n, &err), QB_OK);
    cr_assert_str_eq(dec, "abab a"); /* no decoder: joined with spaces */
    free(dec);
    qb_tok_free(tok);
}

Test(tokenizer, byte_fallback_and_unk_by_hand)
{
    const char *json =
        "{\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,"
        "\"vocab\":{\"<unk>\":0,\"<0xC3>\":1,\"<0xA9>\":2,\"x\":3},\"merges\":[]},"
        "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"},"
        "{\"type\":\"Fuse\"}]}}";
    struct qb_err err;
    enum qb_status st;
    struct qb_tokenizer *tok = load_str(json, &err, &st);
    cr_assert_eq(st, QB_OK, "%s", err.msg);
    expect_ids(tok, "x\xC3\xA9x", (int32_t[]){3, 1, 2, 3}, 4); /* é -> <0xC3><0xA9> */
    expect_ids(tok, "xyx", (int32_t[]){3, 0, 3}, 3);           /* y has no bytes -> unk */
    char *dec;
    size_t n;
    cr_assert_eq(qb_tok_decode(tok, (int32_t[]){3, 1, 2}, 3, &dec, &n, &err), QB_OK);
    cr_assert_str_eq(dec, "x\xC3\xA9");
    free(dec);
    /* a lone lead byte is invalid UTF-8: one U+FFFD per byte token */
    cr_assert_eq(qb_tok_decode(tok, (int32_t[]){1, 3}, 2, &dec, &n, &err), QB_OK);
    cr_assert_str_eq(dec, "\xEF\xBF\xBDx");
    free(dec);
    qb_tok_free(tok);
}

/* ---- builder vs JSON loader ---------------------------------------------------- */

struct owned_spec {
    struct qb_tok_spec spec;
    char **pieces, **merges;
    int32_t *types;
    char *regex;
};

/* A qb_tok_spec with the demo tokenizer's data, read straight from its JSON. */
static void demo_spec(struct owned_spec *o)
{
    size_t len;
    char *json = slurp(DEMO_JSON, &len);
    cJSON *root = cJSON_Parse(json);
    const cJSON *model = cJSON_GetObjectItem(root, "model");
    const cJSON *vocab = cJSON_GetObjectItem(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItem(model, "merges");
    const cJSON *added = cJSON_GetObjectItem(root, "added_tokens");
    int n = cJSON_GetArraySize(vocab) + cJSON_GetArraySize(added);
    memset(o, 0, sizeof(*o));
    o->pieces = calloc((size_t)n, sizeof(char *));
    o->types = calloc((size_t)n, sizeof(int32_t));
    for (const cJSON *e = vocab->child; e; e = e->next) {
        o->pieces[(int)e->valuedouble] = strdup(e->string);
        o->types[(int)e->valuedouble] = QB_TOK_TYPE_NORMAL;
    }
    for (const cJSON *a = added->child; a; a = a->next) {
        int id = (int)cJSON_GetObjectItem(a, "id")->valuedouble;
        o->pieces[id] = strdup(cJSON_GetObjectItem(a, "content")->valuestring);
        o->types[id] = QB_TOK_TYPE_CONTROL;
    }
    int nm = cJSON_GetArraySize(merges);
    o->merges = calloc((size_t)nm, sizeof(char *));
    int i = 0;
    for (const cJSON *m = merges->child; m; m = m->next, i++) {
        const char *a = m->child->valuestring, *b = m->child->next->valuestring;
        o->merges[i] = malloc(strlen(a) + strlen(b) + 2);
        sprintf(o->merges[i], "%s %s", a, b);
    }
    const cJSON *pre = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "pre_tokenizer"), "pretokenizers"), 0);
    o->regex =
        strdup(cJSON_GetObjectItem(cJSON_GetObjectItem(pre, "pattern"), "Regex")->valuestring);
    o->spec = (struct qb_tok_spec){
        .kind = QB_TOK_BPE,
        .n_vocab = n,
        .pieces = (const char *const *)o->pieces,
        .types = o->types,
        .merges = (const char *const *)o->merges,
        .n_merges = (size_t)nm,
        .split_regex = (const char *const *)&o->regex,
        .n_split_regex = 1,
        .ignore_merges = 1,
        .add_bos = 1,
        .bos_id = 8190,
        .eos_id = 8191,
        .unk_id = -1,
    };
    cJSON_Delete(root);
    free(json);
}

static void owned_spec_free(struct owned_spec *o)
{
    for (int i = 0; i < o->spec.n_vocab; i++)
        free(o->pieces[i]);
    for (size_t i = 0; i < o->spec.n_merges; i++)
        free(o->merges[i]);
    free(o->pieces);
    free(o->merges);
    free(o->types);
    free(o->regex);
}

static const char *const sample_texts[] = {
    "",
    " ",
    "Hello world",
    "  leading and trailing  ",
    "DON'T it'S we'Ve",
    "3.14159 12345678",
    "tabs\tand\r\nCRLF\n\n",
    "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80",
    "<|begin_of_text|>x<|end_of_text|>",
    "bad \xFF utf8 \xC3",
    "def f(x):\n    return x\n",
};

Test(tokenizer, builder_equals_json_loader_on_demo_data)
{
    struct owned_spec o;
    demo_spec(&o);
    struct qb_tokenizer *built = NULL, *loaded = load_demo();
    struct qb_err err;
    cr_assert_eq(qb_tok_create(&o.spec, &built, &err), QB_OK, "%s", err.msg);
    size_t len;
    char *eval = slurp(EVAL_TXT, &len);
    for (size_t k = 0; k <= QB_ARRAY_LEN(sample_texts); k++) {
        const char *s = k < QB_ARRAY_LEN(sample_texts) ? sample_texts[k] : eval;
        size_t n = k < QB_ARRAY_LEN(sample_texts) ? strlen(s) : len;
        for (int bos = 0; bos <= 1; bos++) {
            int32_t *a, *b;
            size_t na, nb;
            encode(built, s, n, bos, &a, &na);
            encode(loaded, s, n, bos, &b, &nb);
            cr_assert_eq(na, nb, "text %zu: %zu vs %zu ids", k, na, nb);
            cr_assert(memcmp(a, b, na * sizeof(int32_t)) == 0, "text %zu differs", k);
            char *da, *db;
            size_t la, lb;
            cr_assert_eq(qb_tok_decode(built, a, na, &da, &la, &err), QB_OK);
            cr_assert_eq(qb_tok_decode(loaded, b, nb, &db, &lb, &err), QB_OK);
            cr_assert(la == lb && memcmp(da, db, la) == 0, "decode of text %zu differs", k);
            free(da);
            free(db);
            free(a);
            free(b);
        }
    }
    cr_assert_eq(qb_tok_bos(built), 8190);
    free(eval);
    qb_tok_free(built);
    qb_tok_free(loaded);
    owned_spec_free(&o);
}

Test(tokenizer, builder_spm_by_score_by_hand)
{
    /* llama.cpp SPM: the pair whose merge has the higher score wins. */
    const char *pieces[] = {"<unk>",
                            "<s>",
                            "</s>",
                            "\xE2\x96\x81",
                            "a",
                            "b",
                            "c",
                            "ab",
                            "bc",
                            "\xE2\x96\x81"
                            "a",
                            "<0x7A>"};
    const float scores[] = {0, 0, 0, -1, -2, -2, -2, -5, -3, -4, 0};
    const int32_t types[] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 6};
    struct qb_tok_spec spec = {.kind = QB_TOK_SPM,
                               .n_vocab = 11,
                               .pieces = pieces,
                               .scores = scores,
                               .types = types,
                               .add_space_prefix = 1,
                               .add_bos = 1,
                               .bos_id = 1,
                               .eos_id = 2,
                               .unk_id = 0};
    struct qb_tokenizer *tok;
    struct qb_err err;
    cr_assert_eq(qb_tok_create(&spec, &tok, &err), QB_OK, "%s", err.msg);
    /* "▁abc": bc (-3) beats ▁a (-4) beats ab (-5) -> ▁a, bc */
    expect_ids(tok, "abc", (int32_t[]){9, 8}, 2);
    /* z only as a byte token, q not at all -> unk */
    expect_ids(tok, "zq", (int32_t[]){3, 10, 0}, 3);
    int32_t *ids;
    size_t n;
    encode(tok, "abc", 3, 1, &ids, &n);
    cr_assert(n == 3 && ids[0] == 1);
    char *dec;
    size_t dl;
    cr_assert_eq(qb_tok_decode(tok, ids + 1, 2, &dec, &dl, &err), QB_OK);
    cr_assert_str_eq(dec, "abc");
    free(dec);
    free(ids);
    qb_tok_free(tok);
}

Test(tokenizer, builder_rejects_bad_spec)
{
    const char *pieces[] = {"a", "b"};
    const char *merges[] = {"a c"};
    struct qb_tok_spec spec = {.kind = QB_TOK_BPE,
                               .n_vocab = 2,
                               .pieces = pieces,
                               .merges = merges,
                               .n_merges = 1,
                               .bos_id = -1,
                               .eos_id = -1,
                               .unk_id = -1};
    struct qb_tokenizer *tok = NULL;
    struct qb_err err;
    cr_assert_eq(qb_tok_create(&spec, &tok, &err), QB_ERR_FORMAT);
    cr_assert_null(tok);
    cr_assert(strstr(err.msg, "merges[0]"), "%s", err.msg);
    const char *bad_re[] = {"(unclosed"};
    spec.n_merges = 0;
    spec.split_regex = bad_re;
    spec.n_split_regex = 1;
    cr_assert_eq(qb_tok_create(&spec, &tok, &err), QB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "bad regex"), "%s", err.msg);
    spec.n_split_regex = 0;
    spec.bos_id = 7;
    cr_assert_eq(qb_tok_create(&spec, &tok, &err), QB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "bos"), "%s", err.msg);
}

/* ---- corrupt input ------------------------------------------------------------- */

static void expect_load_error(const char *json, size_t len, enum qb_status want, const char *needle)
{
    struct qb_tokenizer *tok = (struct qb_tokenizer *)1;
    struct qb_err err;
    qb_err_clear(&err);
    enum qb_status st = qb_tok_load_hf_buffer(json, len, "bad.json", &tok, &err);
    cr_assert_eq(st, want, "status %d (%s) for %.80s", st, err.msg, json);
    cr_assert_null(tok);
    cr_assert(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
    cr_assert_null(strchr(err.msg, '\n'));
    cr_assert(strstr(err.msg, "bad.json"), "message '%s' does not name the file", err.msg);
}

#define BAD(json, st, needle) expect_load_error(json, strlen(json), st, needle)

Test(tokenizer_corrupt, missing_file)
{
    struct qb_tokenizer *tok = NULL;
    struct qb_err err;
    cr_assert_eq(qb_tok_load_hf("/nonexistent/tokenizer.json", &tok, &err), QB_ERR_IO);
    cr_assert(strstr(err.msg, "cannot open '/nonexistent/tokenizer.json'"), "%s", err.msg);
    cr_assert_eq(qb_tok_load_hf(QB_TEST_DATA, &tok, &err), QB_ERR_IO); /* a directory */
}

Test(tokenizer_corrupt, not_json_and_truncated)
{
    BAD("", QB_ERR_FORMAT, "not valid JSON");
    BAD("garbage", QB_ERR_FORMAT, "not valid JSON");
    BAD("[1,2,3]", QB_ERR_FORMAT, "expected a JSON object");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}} trailing", QB_ERR_FORMAT,
        "not valid JSON");
    size_t len;
    char *json = slurp(DEMO_JSON, &len);
    size_t cuts[] = {1, 100, 1000, len / 2, len - 2};
    for (size_t i = 0; i < QB_ARRAY_LEN(cuts); i++)
        expect_load_error(json, cuts[i], QB_ERR_FORMAT, "truncated");
    /* a NUL inside the buffer must not let the parser read past it */
    json[200] = '\0';
    expect_load_error(json, len, QB_ERR_FORMAT, "not valid JSON");
    free(json);
}

Test(tokenizer_corrupt, wrong_types)
{
    BAD("{}", QB_ERR_FORMAT, "model");
    BAD("{\"model\": \"BPE\"}", QB_ERR_FORMAT, "model: missing or not an object");
    BAD("{\"model\": {\"type\": 7, \"vocab\": {}}}", QB_ERR_FORMAT, "model.type");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": [\"a\"]}}", QB_ERR_FORMAT, "model.vocab");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}", QB_ERR_FORMAT, "empty");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"0\"}}}", QB_ERR_FORMAT,
        "model.vocab");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}}}", QB_ERR_FORMAT, "model.vocab");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1.5}}}", QB_ERR_FORMAT, "model.vocab");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}}}", QB_ERR_FORMAT,
        "used by two tokens");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 2000000000}}}", QB_ERR_FORMAT,
        "far beyond");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": {}}}", QB_ERR_FORMAT,
        "model.merges");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [3]}}", QB_ERR_FORMAT,
        "model.merges[0]");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"aa\"]}}",
        QB_ERR_FORMAT, "model.merges[0]");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\"]]}}",
        QB_ERR_FORMAT, "model.merges[0]");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"byte_fallback\": 1}}",
        QB_ERR_FORMAT, "model.byte_fallback");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"unk_token\": 0}}", QB_ERR_FORMAT,
        "model.unk_token");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"unk_token\": \"<unk>\"}}",
        QB_ERR_FORMAT, "model.unk_token");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"added_tokens\": {}}",
        QB_ERR_FORMAT, "added_tokens");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"id\": 1}]}",
        QB_ERR_FORMAT, "added_tokens[].content");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"added_tokens\": "
        "[{\"id\": \"x\", \"content\": \"<s>\"}]}",
        QB_ERR_FORMAT, "added_tokens[].id");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"normalizer\": 5}", QB_ERR_FORMAT,
        "normalizer");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": "
        "{\"type\": \"Split\", \"pattern\": \"x\", \"behavior\": \"Isolated\"}}",
        QB_ERR_FORMAT, "pre_tokenizer.pattern");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"post_processor\": "
        "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}],"
        " \"special_tokens\": {}}}",
        QB_ERR_FORMAT, "post_processor.special_tokens");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"decoder\": "
        "{\"type\": \"Strip\", \"content\": \" \", \"start\": -1, \"stop\": 0}}",
        QB_ERR_FORMAT, "decoder.start");
}

Test(tokenizer_corrupt, merges_naming_unknown_tokens)
{
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": "
        "[\"a c\"]}}",
        QB_ERR_FORMAT, "model.merges[0]: token 'c' is not in the vocabulary");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": "
        "[\"a b\"]}}",
        QB_ERR_FORMAT, "merged token 'ab' is not in the vocabulary");
}

Test(tokenizer_corrupt, bad_regex_and_unsupported_parts)
{
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": "
        "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\\\\p{L\"}, \"behavior\": "
        "\"Isolated\"}}",
        QB_ERR_FORMAT, "pre_tokenizer.pattern: bad regex");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": "
        "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"}, \"behavior\": \"Sideways\"}}",
        QB_ERR_UNSUPPORTED, "pre_tokenizer.behavior 'Sideways'");
    BAD("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}", QB_ERR_UNSUPPORTED,
        "model.type 'Unigram' is not supported (supported: BPE)");
    BAD("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", QB_ERR_UNSUPPORTED,
        "model.type 'WordPiece'");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": "
        "{\"type\": \"BertPreTokenizer\"}}",
        QB_ERR_UNSUPPORTED, "pre_tokenizer.type 'BertPreTokenizer'");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"normalizer\": "
        "{\"type\": \"Lowercase\"}}",
        QB_ERR_UNSUPPORTED, "normalizer.type 'Lowercase'");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"decoder\": "
        "{\"type\": \"WordPiece\"}}",
        QB_ERR_UNSUPPORTED, "decoder.type 'WordPiece'");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"post_processor\": "
        "{\"type\": \"BertProcessing\"}}",
        QB_ERR_UNSUPPORTED, "post_processor.type 'BertProcessing'");
    BAD("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"dropout\": 0.1}}",
        QB_ERR_UNSUPPORTED, "model.dropout");
}

Test(tokenizer_corrupt, decode_ids_out_of_range)
{
    struct qb_tokenizer *tok = load_demo();
    char *text = (char *)1;
    size_t len;
    struct qb_err err;
    cr_assert_eq(qb_tok_decode(tok, (int32_t[]){1, 8192}, 2, &text, &len, &err), QB_ERR_RANGE);
    cr_assert_null(text);
    cr_assert(strstr(err.msg, "token id 8192 at position 1"), "%s", err.msg);
    cr_assert_eq(qb_tok_decode(tok, (int32_t[]){-5}, 1, &text, &len, &err), QB_ERR_RANGE);
    cr_assert_null(qb_tok_piece(tok, 8192));
    cr_assert_str_eq(qb_tok_piece(tok, 8190), "<|begin_of_text|>");
    qb_tok_free(tok);
}
