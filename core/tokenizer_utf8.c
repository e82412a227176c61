/*
 * tokenizer_utf8.c - UTF-8 handling and the GPT-2 byte-level alphabet for the tokenizer.
 *
 * Input text is any bytes. `tokenizers` only ever sees valid UTF-8 (a Rust &str,
 * or a Python str), so encode first makes the bytes valid the way Rust's
 * String::from_utf8_lossy and Python's bytes.decode('utf-8', 'replace') do:
 * each maximal subpart of an ill-formed sequence (Unicode 15, section 3.9)
 * becomes one U+FFFD. The decoders reuse the same routine for byte tokens.
 *
 * The byte-level alphabet maps each byte to a printable code point (GPT-2's
 * bytes_to_unicode): '!'..'~', 0xA1..0xAC and 0xAE..0xFF map to themselves,
 * the other 68 bytes to U+0100.. in byte order.
 */
#include <string.h>

#include "tokenizer_impl.h"

size_t tok_utf8_valid_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    }
    return need;
}

/* Bytes of the maximal subpart at s (an ill-formed sequence): at least 1. */
static size_t maximal_subpart(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 1;
    }
    size_t i = 1;
    if (i < n && i < need && s[i] >= lo && s[i] <= hi) {
        i++;
        while (i < n && i < need && s[i] >= 0x80 && s[i] <= 0xBF)
            i++;
    }
    return i;
}

uint32_t tok_utf8_decode(const unsigned char *s, size_t len)
{
    switch (len) {
    case 1:
        return s[0];
    case 2:
        return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    case 3:
        return ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    default:
        return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
               ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    }
}

size_t tok_utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

enum qb_status tok_buf_put(struct tok_buf *b, const void *data, size_t n)
{
    if (n == 0)
        return QB_OK;
    if (n > SIZE_MAX - b->len - 1)
        return QB_ERR_NOMEM;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return QB_ERR_NOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return QB_OK;
}

enum qb_status tok_utf8_lossy(struct tok_buf *out, const char *text, size_t len)
{
    static const char replacement[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, run = 0;
    enum qb_status st = QB_OK;
    while (i < len) {
        size_t l = tok_utf8_valid_len(s + i, len - i);
        if (l) {
            i += l;
            continue;
        }
        st = tok_buf_put(out, text + run, i - run);
        if (st)
            return st;
        st = tok_buf_put(out, replacement, 3);
        if (st)
            return st;
        i += maximal_subpart(s + i, len - i);
        run = i;
    }
    return tok_buf_put(out, text + run, len - run);
}

static int byte_maps_to_itself(unsigned b)
{
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t tok_byte_to_cp(uint8_t b)
{
    if (byte_maps_to_itself(b))
        return b;
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++)
        n += !byte_maps_to_itself(x);
    return 256 + n;
}

int tok_cp_to_byte(uint32_t cp)
{
    if (cp < 256)
        return byte_maps_to_itself(cp) ? (int)cp : -1;
    if (cp >= 256 + 68)
        return -1;
    uint32_t n = cp - 256;
    for (unsigned x = 0; x < 256; x++) {
        if (!byte_maps_to_itself(x) && n-- == 0)
            return (int)x;
    }
    return -1;
}

int tok_is_whitespace(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

uint32_t tok_utf8_before(const char *s, size_t end, size_t *len)
{
    *len = 0;
    if (end == 0)
        return 0;
    size_t i = end;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80 && end - i < 3)
        i--;
    if (i > 0)
        i--;
    *len = end - i;
    size_t l = tok_utf8_valid_len((const unsigned char *)s + i, end - i);
    return l == end - i ? tok_utf8_decode((const unsigned char *)s + i, l) : 0xFFFD;
}
