/*
 * qb_test_tok.h - the demo tokenizer fixture shared by the tokenizer suites:
 * load it, encode with an assertion on failure, read a whole file (asserting
 * it exists). Header-only so it works with criterion and with tests/shim.
 */
#ifndef QB_TEST_TOK_H
#define QB_TEST_TOK_H

#include "qb_test_util.h"
#include "tokenizer.h"

#define DEMO_JSON QB_TEST_DATA "/ref-llama-10m/tokenizer.json"
#define EVAL_TXT QB_TEST_DATA "/eval-gutenberg.txt"

static inline char *slurp(const char *path, size_t *len)
{
    char *buf = qbt_read_file(path, len);
    cr_assert_not_null(buf, "cannot read %s", path);
    return buf;
}

static inline struct qb_tokenizer *load_demo(void)
{
    struct qb_tokenizer *tok = NULL;
    struct qb_err err;
    cr_assert_eq(qb_tok_load_hf(DEMO_JSON, &tok, &err), QB_OK, "%s", err.msg);
    return tok;
}

static inline void encode(const struct qb_tokenizer *tok, const char *s, size_t len, int bos,
                          int32_t **ids, size_t *n)
{
    struct qb_err err;
    cr_assert_eq(qb_tok_encode(tok, s, len, bos, ids, n, &err), QB_OK, "%s", err.msg);
}

#endif /* QB_TEST_TOK_H */
