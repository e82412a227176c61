/*
 * test_wordppl_peer.c - core/wordppl.c against tests/wordppl_peer.py, a Python
 * re-implementation of lm-evaluation-harness's wikitext pieces (detokenizer with
 * Python's re/str semantics, word and byte counts, the document-level builder,
 * get_rolling_token_windows + make_disjoint_window + HFLM's input truncation).
 *
 * ~400 detokenizer inputs (hand-picked wikitext shapes plus seeded random
 * strings over the characters every rule looks at, Unicode whitespace included),
 * row sets shaped like Salesforce/wikitext, "\n\n\n" files, and (n, max_length)
 * window pairs. Every string, count and index list must be equal. Skips when
 * QB_PYTHON cannot run.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qb_test_util.h"
#include "wordppl.h"

#define PEER QB_TEST_DATA "/../wordppl_peer.py"

static const char *const fixed_detok[] = {
    " = Robert Boulter = \n \n Robert Boulter is an English film , television and theatre "
    "actor . He had a guest @-@ starring role on the television series The Bill in 2000 . \n",
    " = = Career = = \n \n = = = 2000 – 2005 = = = \n \n In 2000 Boulter had a role , as \" "
    "Craig \" , in the episode \" In Safe Hands \" of the television series ' The Bill ' . \n",
    "It cost $ 1 @,@ 000 @.@ 50 ( about £ 600 ) [ 1 ] { x } ; then : yes ! no ? ok .",
    "the players ' union and Jones ' s side ; 1990s ' 90s /' 5/ and /' x/ and /'  7/",
    "temperature 25 ° C and N rises to N % ; Victoria 's crown",
    "unbalanced ( open and \" quote and [ bracket and { brace",
    "nested ( a ( b ) c ) and [ [ x ] ] and \" \" empty \" \" and (   ) and ''",
    "\xc2\xa0(\xe3\x80\x80 wide \xe2\x80\x89)\xc2\xa0 and \" \xe2\x80\xa8line\xc2\x85 \"",
    "= = = = deep = = = = \n  two spaces \n\n  \n",
    "",
    " ",
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f words\n",
};

static const char *const pieces[] = {
    " ", " ", " ", "(", ")", "[", "]", "{", "}", "\"", "'", "s", "N", " @-@ ", " @,@ ",
    " @.@ ", ",", ".", ":", ";", "!", "?", "=", "\n", "\xc2\xb0", "\xc2\xa0", "\xe3\x80\x80",
    "\xe2\x80\x8a", "a", "bc", "/", "5", "\t", "é", "= =", " 's",
};

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static char *random_string(uint32_t *seed)
{
    int n = 1 + (int)(lcg(seed) % 40);
    size_t cap = 512, len = 0;
    char *s = malloc(cap);
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *p = pieces[lcg(seed) % (sizeof pieces / sizeof pieces[0])];
        size_t pl = strlen(p);
        if (len + pl + 1 > cap)
            break;
        memcpy(s + len, p, pl + 1);
        len += pl;
    }
    return s;
}

static const char *const rows_a[] = {
    "", " = Valkyria = \n", "", " Senjō no Valkyria 3 : ( Japanese ) is a game . \n", "",
    " = = Gameplay = = \n", "", " As with previous games , it 's fine . \n", "",
    " = Tower Building = \n", "", " The Tower Building is a \" skyscraper \" . \n", "",
    " = = = History = = = \n", "", " Built in 1 @,@ 000 days . \n",
};
static const char *const rows_b[] = {" no title at all \n", "", " second line \n"};
static const char *const rows_c[] = {" = A = \n", " = B = \n", "", " = C = \n", " body"};
static const char *const rows_d[] = {"", "", " = = Only a section = = \n", " x \n"};
static const char *const rows_e[] = {"\xe3\x80\x80= Wide =\xe3\x80\x80\n", " t \n",
                                     "=  = \n", " = Two  Spaces = \n", " u \n"};

struct rowset {
    const char *const *rows;
    size_t n;
};
static const struct rowset rowsets[] = {
    {rows_a, sizeof rows_a / sizeof rows_a[0]}, {rows_b, sizeof rows_b / sizeof rows_b[0]},
    {rows_c, sizeof rows_c / sizeof rows_c[0]}, {rows_d, sizeof rows_d / sizeof rows_d[0]},
    {rows_e, sizeof rows_e / sizeof rows_e[0]}, {NULL, 0},
};

static const char *const texts[] = {
    "one\n\n\ntwo\n\n\n\n\nthree\n\n\n \n\t\n\n\nfour",
    "\n\n\n",
    "single document\n\nwith a blank line",
    "",
};

static const int window_cases[][2] = {
    {0, 4}, {1, 1}, {1, 4}, {2, 1}, {3, 4}, {4, 4}, {5, 4}, {6, 1}, {8, 4}, {9, 4},
    {17, 5}, {100, 7}, {1024, 1024}, {1025, 1024}, {2049, 1024}, {3000, 1000},
};

#define N_RANDOM 400

struct cases {
    char *detok[N_RANDOM + 32];
    int n_detok;
};

static cJSON *build_request(struct cases *c)
{
    cJSON *req = cJSON_CreateObject();
    cJSON *d = cJSON_AddArrayToObject(req, "detok");
    uint32_t seed = 12345;
    for (size_t i = 0; i < sizeof fixed_detok / sizeof fixed_detok[0]; i++)
        c->detok[c->n_detok++] = strdup(fixed_detok[i]);
    for (int i = 0; i < N_RANDOM; i++)
        c->detok[c->n_detok++] = random_string(&seed);
    for (int i = 0; i < c->n_detok; i++)
        cJSON_AddItemToArray(d, cJSON_CreateString(c->detok[i]));
    cJSON *r = cJSON_AddArrayToObject(req, "rows");
    for (size_t i = 0; i < sizeof rowsets / sizeof rowsets[0]; i++) {
        cJSON *one = cJSON_CreateArray();
        for (size_t k = 0; k < rowsets[i].n; k++)
            cJSON_AddItemToArray(one, cJSON_CreateString(rowsets[i].rows[k]));
        cJSON_AddItemToArray(r, one);
    }
    cJSON *t = cJSON_AddArrayToObject(req, "texts");
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        cJSON_AddItemToArray(t, cJSON_CreateString(texts[i]));
    cJSON *w = cJSON_AddArrayToObject(req, "windows");
    for (size_t i = 0; i < sizeof window_cases / sizeof window_cases[0]; i++)
        cJSON_AddItemToArray(w, cJSON_CreateIntArray(window_cases[i], 2));
    return req;
}

static cJSON *run_peer(cJSON *req)
{
    char *dir = qbt_tempdir();
    char *json = cJSON_PrintUnformatted(req);
    qbt_write_file(dir, "req.json", json, strlen(json));
    char path[4096];
    snprintf(path, sizeof path, "%s/req.json", dir);
    const char *argv[] = {QB_PYTHON, PEER, NULL};
    struct qbt_run r;
    qbt_run(argv, path, 120, &r);
    cr_assert_eq(r.exit_code, 0, "peer failed: %s", r.err);
    cJSON *out = cJSON_Parse(r.out);
    cr_assert_not_null(out, "peer printed no JSON");
    qbt_run_free(&r);
    free(json);
    qbt_rmtree(dir);
    free(dir);
    return out;
}

static int python_ok(void)
{
    return system("'" QB_PYTHON "' -c 'import json, re' >/dev/null 2>&1") == 0;
}

static void check_docs(const struct qb_wordppl_docs *d, const cJSON *want, const char *what,
                       size_t idx)
{
    cr_assert_eq((int)d->n, cJSON_GetArraySize(want), "%s %zu: %zu documents, peer %d", what,
                 idx, d->n, cJSON_GetArraySize(want));
    for (size_t k = 0; k < d->n; k++) {
        const char *w = cJSON_GetArrayItem(want, (int)k)->valuestring;
        cr_assert_eq(d->len[k], strlen(w), "%s %zu doc %zu length", what, idx, k);
        cr_assert_str_eq(d->text[k], w, "%s %zu doc %zu", what, idx, k);
    }
}

static void check_windows(int n, int len, const cJSON *want)
{
    int64_t count = qb_wordppl_window_count(n, len);
    cr_assert_eq(count, cJSON_GetArraySize(want), "n=%d L=%d: %lld windows, peer %d", n, len,
                 (long long)count, cJSON_GetArraySize(want));
    int64_t next = 0;
    for (int64_t i = 0; i < count; i++) {
        struct qb_wordppl_window w = qb_wordppl_window_get(n, len, i);
        const cJSON *pair = cJSON_GetArrayItem(want, (int)i);
        const cJSON *inp = cJSON_GetArrayItem(pair, 0), *cont = cJSON_GetArrayItem(pair, 1);
        cr_assert_eq(w.in_len, cJSON_GetArraySize(inp), "n=%d L=%d window %lld input", n, len,
                     (long long)i);
        cr_assert(w.in_len <= len);
        for (int k = 0; k < w.in_len; k++)
            cr_assert_eq(w.in_start + k, cJSON_GetArrayItem(inp, k)->valueint);
        cr_assert_eq(w.pred_len, cJSON_GetArraySize(cont));
        for (int k = 0; k < w.pred_len; k++)
            cr_assert_eq(w.pred_start + k, cJSON_GetArrayItem(cont, k)->valueint);
        /* disjoint and in order: every token scored exactly once */
        cr_assert_eq(w.pred_start, next, "n=%d L=%d window %lld", n, len, (long long)i);
        cr_assert_eq(w.pred_start, w.in_start + w.in_len - w.pred_len + 1);
        next += w.pred_len;
    }
    cr_assert_eq(next, n);
}

Test(wordppl_peer, detokenizer_documents_and_windows_equal_lm_eval)
{
    if (!python_ok())
        cr_skip_test("QB_PYTHON (%s) cannot run", QB_PYTHON);
    struct cases c = {0};
    cJSON *req = build_request(&c);
    cJSON *out = run_peer(req);
    const cJSON *detok = cJSON_GetObjectItem(out, "detok");
    const cJSON *words = cJSON_GetObjectItem(out, "words");
    const cJSON *bytes = cJSON_GetObjectItem(out, "bytes");
    struct qb_err err = {0};
    for (int i = 0; i < c.n_detok; i++) {
        char *got = NULL;
        size_t len = 0;
        cr_assert_eq(qb_wordppl_detokenize(c.detok[i], strlen(c.detok[i]), &got, &len, &err), 0);
        cr_assert_str_eq(got, cJSON_GetArrayItem(detok, i)->valuestring, "case %d: [%s]", i,
                         c.detok[i]);
        cr_assert_eq(len, strlen(got));
        cr_assert_eq(qb_wordppl_count_words(c.detok[i], strlen(c.detok[i])),
                     cJSON_GetArrayItem(words, i)->valueint, "words of case %d: [%s]", i,
                     c.detok[i]);
        cr_assert_eq((int)strlen(c.detok[i]), cJSON_GetArrayItem(bytes, i)->valueint);
        free(got);
    }
    const cJSON *docs = cJSON_GetObjectItem(out, "docs");
    for (size_t i = 0; i < sizeof rowsets / sizeof rowsets[0]; i++) {
        struct qb_wordppl_docs d;
        cr_assert_eq(qb_wordppl_docs_from_rows(rowsets[i].rows, rowsets[i].n, &d, &err), 0);
        check_docs(&d, cJSON_GetArrayItem(docs, (int)i), "rowset", i);
        qb_wordppl_docs_clear(&d);
    }
    const cJSON *tdocs = cJSON_GetObjectItem(out, "text_docs");
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct qb_wordppl_docs d;
        cr_assert_eq(qb_wordppl_docs_from_text(texts[i], strlen(texts[i]), &d, &err), 0);
        check_docs(&d, cJSON_GetArrayItem(tdocs, (int)i), "text", i);
        qb_wordppl_docs_clear(&d);
    }
    const cJSON *wins = cJSON_GetObjectItem(out, "windows");
    for (size_t i = 0; i < sizeof window_cases / sizeof window_cases[0]; i++)
        check_windows(window_cases[i][0], window_cases[i][1], cJSON_GetArrayItem(wins, (int)i));
    for (int i = 0; i < c.n_detok; i++)
        free(c.detok[i]);
    cJSON_Delete(req);
    cJSON_Delete(out);
}
