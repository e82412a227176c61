/*
 * fuzz_wordppl.c - libFuzzer entry for the word-perplexity text parsers
 * (core/wordppl.c): the detokenizer, the word count, the "\n\n\n" document
 * split, and the wikitext page rebuild from rows (the input's lines as rows).
 * Any bytes (invalid UTF-8 included) must neither crash nor read past len.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wordppl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qb_err err;
    char *out = NULL;
    size_t out_len = 0;
    const char *s = (const char *)data;
    if (qb_wordppl_detokenize(s, size, &out, &out_len, &err) == QB_OK)
        CHECK(out_len <= size + size / 2 + 8 && out[out_len] == '\0');
    free(out);
    CHECK(qb_wordppl_count_words(s, size) >= 1);
    struct qb_wordppl_docs docs;
    if (qb_wordppl_docs_from_text(s, size, &docs, &err) == QB_OK)
        qb_wordppl_docs_clear(&docs);
    /* rows: the input's lines, each NUL-terminated, "\n" kept */
    char *copy = malloc(size + 1);
    const char **rows = malloc((size + 1) * sizeof *rows);
    if (!copy || !rows)
        goto out;
    size_t n_rows = 0, start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || data[i] == '\n' || data[i] == '\0') {
            memcpy(copy + start, data + start, i - start);
            copy[i] = '\0';
            rows[n_rows++] = copy + start;
            start = i + 1;
        }
    }
    if (qb_wordppl_docs_from_rows(rows, n_rows, &docs, &err) == QB_OK)
        qb_wordppl_docs_clear(&docs);
out:
    free(rows);
    free(copy);
    return 0;
}
