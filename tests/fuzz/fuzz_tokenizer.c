/*
 * fuzz_tokenizer.c - libFuzzer entry point for the tokenizer.json loader and the
 * encode/decode pipeline.
 *
 * Each input is loaded as a tokenizer.json buffer. When it loads, a fixed mixed
 * string (spaces, CRLF, digits, contractions, CJK, emoji, invalid UTF-8) and the
 * input's own last 256 bytes are encoded with and without special tokens, and the
 * ids decoded again. Any crash, leak or sanitizer report is a bug; errors are fine.
 *
 * Build: CC=clang cmake -B build-fuzz -DQUANTBENCH_FUZZ=ON -DQUANTBENCH_TESTS=OFF
 * Run:   build-fuzz/fuzz_tokenizer -max_len=16384 tests/fuzz/corpus/tokenizer
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

static const char fixed_text[] =
    "Hello world!  DON'T it'S 12345 \t\r\n\n caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC "
    "\xF0\x9F\x98\x80 <s> </s> <|endoftext|> \xE2\x96\x81x \xFF\xC3 end";

static void exercise(const struct qb_tokenizer *tok, const char *text, size_t len)
{
    struct qb_err err;
    for (int bos = 0; bos <= 1; bos++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (qb_tok_encode(tok, text, len, bos, &ids, &n, &err) == QB_OK) {
            char *dec = NULL;
            size_t dec_len = 0;
            if (qb_tok_decode(tok, ids, n, &dec, &dec_len, &err) == QB_OK && dec[dec_len] != '\0')
                abort();
            free(dec);
        }
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qb_tokenizer *tok = NULL;
    struct qb_err err;
    if (qb_tok_load_hf_buffer((const char *)data, size, "fuzz", &tok, &err) != QB_OK) {
        if (tok)
            abort();
        return 0;
    }
    exercise(tok, fixed_text, sizeof(fixed_text) - 1);
    size_t tail = size < 256 ? size : 256;
    exercise(tok, (const char *)data + size - tail, tail);
    int32_t bad = qb_tok_vocab_size(tok);
    char *dec = NULL;
    size_t dec_len;
    if (qb_tok_decode(tok, &bad, 1, &dec, &dec_len, &err) == QB_OK)
        abort();
    qb_tok_free(tok);
    return 0;
}
