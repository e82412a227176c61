/*
 * test_wordppl.c - hand-checked cases for core/wordppl.c (no model, no Python).
 *
 * Detokenizer outputs worked out by hand from lm-eval's wikitext_detokenizer
 * rules, word counts of re.split(r"\s+"), the document rebuild from
 * Salesforce/wikitext-shaped rows, rolling windows listed by hand from
 * get_rolling_token_windows' docstring example, and the aggregation formulas.
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "wordppl.h"

static void detok_is(const char *in, const char *want)
{
    struct qb_err err = {0};
    char *got = NULL;
    size_t len = 0;
    cr_assert_eq(qb_wordppl_detokenize(in, strlen(in), &got, &len, &err), QB_OK);
    cr_assert_str_eq(got, want, "detokenize [%s]", in);
    cr_assert_eq(len, strlen(want));
    free(got);
}

Test(wordppl, detokenizer_rules_by_hand)
{
    detok_is(" = Robert Boulter = \n \n He had a guest @-@ starring role , in 2000 . \n",
             " = Robert Boulter =\n\nHe had a guest-starring role, in 2000.\n");
    detok_is("1 @,@ 000 @.@ 5", "1,000.5");
    detok_is("a : b ; c ! d ? e", "a: b; c! d? e");
    detok_is("( a b ) [ c ] { d } \" e \" ' f '", "(a b) [c] {d} \"e\" 'f'");
    detok_is("players ' union", "players' union");
    detok_is("Victoria 's crown", "Victoria's crown");
    detok_is("/' 5/", "/'[0-9]/"); /* the regex replacement is that literal text */
    detok_is("= = Career = =", "== Career ==");
    detok_is("= = = = x = = = =", "==== x ====");
    detok_is("25 ° C", "25°C");
    detok_is("N is N and N", "N is 1 and N");
    detok_is("( unclosed", "( unclosed");
    detok_is("( a ( b ) c )", "(a ( b) c )");
    detok_is("\" a \" b \" c", "\"a\" b \" c");
    detok_is("(\xc2\xa0x\xe3\x80\x80)", "(x)"); /* Unicode whitespace is \s */
    detok_is("", "");
}

Test(wordppl, word_count_is_python_re_split)
{
    cr_assert_eq(qb_wordppl_count_words("", 0), 1);
    cr_assert_eq(qb_wordppl_count_words(" ", 1), 2);
    cr_assert_eq(qb_wordppl_count_words("a b", 3), 2);
    cr_assert_eq(qb_wordppl_count_words(" a  b \n", 7), 4);
    cr_assert_eq(qb_wordppl_count_words("a\xc2\xa0" "b", 4), 2);
    cr_assert_eq(qb_wordppl_count_words("a\xe2\x80\x8b" "b", 5), 1); /* U+200B is not space */
    cr_assert_eq(qb_wordppl_count_words("a\xff b", 4), 2);           /* invalid byte: a char */
}

Test(wordppl, documents_from_rows)
{
    static const char *const rows[] = {"", " = A = \n", "", " x . \n", " = = S = = \n",
                                       " = B = \n", " y \n"};
    struct qb_wordppl_docs d;
    struct qb_err err = {0};
    cr_assert_eq(qb_wordppl_docs_from_rows(rows, 7, &d, &err), QB_OK);
    cr_assert_eq(d.n, 2);
    /* the leading blank line is a blank page and dropped; blank rows were " " */
    cr_assert_str_eq(d.text[0], " = A = \n \n x . \n = = S = = ");
    cr_assert_str_eq(d.text[1], " = B = \n y \n"); /* the file's final "\n" */
    cr_assert_eq(d.len[1], strlen(" = B = \n y \n"));
    qb_wordppl_docs_clear(&d);
    cr_assert_eq(qb_wordppl_docs_from_text("a\n\n\n\n\n\n  \n\n\nb", 13, &d, &err), QB_OK);
    cr_assert_eq(d.n, 2);
    cr_assert_str_eq(d.text[0], "a");
    cr_assert_str_eq(d.text[1], "b");
    qb_wordppl_docs_clear(&d);
}

static void window_is(struct qb_wordppl_window w, int64_t in_start, int in_len,
                      int64_t pred_start, int pred_len)
{
    cr_assert_eq(w.in_start, in_start);
    cr_assert_eq(w.in_len, in_len);
    cr_assert_eq(w.pred_start, pred_start);
    cr_assert_eq(w.pred_len, pred_len);
}

Test(wordppl, rolling_windows_by_hand)
{
    /* tokens 0..8, max_length 3, context_len 1:
     *   P 0 1 -> 0 1 2 | 2 3 4 -> 3 4 5 | 5 6 7 -> 6 7 8 */
    cr_assert_eq(qb_wordppl_window_count(9, 3), 3);
    window_is(qb_wordppl_window_get(9, 3, 0), -1, 3, 0, 3);
    window_is(qb_wordppl_window_get(9, 3, 1), 2, 3, 3, 3);
    window_is(qb_wordppl_window_get(9, 3, 2), 5, 3, 6, 3);
    /* 10 tokens: the last window scores token 9 only, from a full-length input 6 7 8 */
    cr_assert_eq(qb_wordppl_window_count(10, 3), 4);
    window_is(qb_wordppl_window_get(10, 3, 3), 6, 3, 9, 1);
    /* shorter than max_length: one window P 0 1 */
    cr_assert_eq(qb_wordppl_window_count(2, 3), 1);
    window_is(qb_wordppl_window_get(2, 3, 0), -1, 2, 0, 2);
    cr_assert_eq(qb_wordppl_window_count(0, 3), 0);
    /* max_length 1: every token from the one before it */
    cr_assert_eq(qb_wordppl_window_count(3, 1), 3);
    window_is(qb_wordppl_window_get(3, 1, 2), 1, 1, 2, 1);
}

Test(wordppl, aggregation_by_hand)
{
    /* two documents: loglik -10 and -20, 5 + 10 words, 30 + 60 bytes */
    struct qb_wordppl_result r = {.loglik = -30, .words = 15, .bytes = 90};
    qb_wordppl_aggregate(&r);
    cr_assert_float_eq(r.word_perplexity, exp(2.0), 1e-12);
    cr_assert_float_eq(r.byte_perplexity, exp(1.0 / 3.0), 1e-12);
    cr_assert_float_eq(r.bits_per_byte, 0.480898346962988, 1e-12);
}
