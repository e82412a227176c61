#!/usr/bin/env python3
"""tokenizer_peer_nfc_tables.py - writes core/tokenizer_nfc_tables.c from Python's unicodedata.

The NFC normalizer (Qwen2/Qwen3 tokenizer.json: {"type": "NFC"}) needs three tables:
canonical combining classes, full canonical decompositions and primary compositions.
They are generated from the Unicode database of the Python that runs this script
(unicodedata.unidata_version is written into the file) and committed, so the build
needs no Python. Hangul syllables are handled algorithmically and are not listed.

usage: python3 tests/tokenizer_peer_nfc_tables.py > core/tokenizer_nfc_tables.c
"""
import sys
import unicodedata as ud

MAX = 0x110000


def is_hangul(cp):
    return 0xAC00 <= cp <= 0xD7A3


def full_decomp(cp):
    d = ud.decomposition(chr(cp))
    if not d or d.startswith("<") or is_hangul(cp):
        return None
    out = []
    for part in d.split():
        sub = int(part, 16)
        rec = full_decomp(sub)
        out.extend(rec if rec else [sub])
    return out


def main():
    w = sys.stdout.write
    w("/*\n * tokenizer_nfc_tables.c - Unicode tables for the NFC normalizer (GENERATED).\n *\n")
    w(" * Written by tests/tokenizer_peer_nfc_tables.py from Unicode %s; do not edit.\n" %
      ud.unidata_version)
    w(" * ccc: ranges of equal non-zero canonical combining class; decomp: full canonical\n")
    w(" * decompositions (index into a code point pool); comp: primary composites by pair.\n */\n")
    w('#include "tokenizer_impl.h"\n\n')
    w('const char tok_nfc_unicode_version[] = "%s";\n\n' % ud.unidata_version)
    # combining classes as ranges
    ranges = []
    for cp in range(MAX):
        c = ud.combining(chr(cp))
        if c == 0:
            continue
        if ranges and ranges[-1][1] == cp - 1 and ranges[-1][2] == c:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp, c])
    w("const struct tok_ccc_range tok_ccc_ranges[] = {\n")
    for a, b, c in ranges:
        w("    {0x%X, 0x%X, %d},\n" % (a, b, c))
    w("};\nconst size_t tok_ccc_count = %d;\n\n" % len(ranges))
    # decompositions
    entries, pool = [], []
    for cp in range(MAX):
        d = full_decomp(cp)
        if d:
            entries.append((cp, len(pool), len(d)))
            pool.extend(d)
    w("const uint32_t tok_decomp_pool[] = {\n")
    for i in range(0, len(pool), 8):
        w("    " + ", ".join("0x%X" % x for x in pool[i:i + 8]) + ",\n")
    w("};\nconst struct tok_decomp tok_decomps[] = {\n")
    for cp, off, n in entries:
        w("    {0x%X, %d, %d},\n" % (cp, off, n))
    w("};\nconst size_t tok_decomp_count = %d;\n\n" % len(entries))
    # primary composites: canonical pairs that NFC recomposes
    comps = []
    for cp in range(MAX):
        if is_hangul(cp):
            continue
        d = ud.decomposition(chr(cp))
        if not d or d.startswith("<"):
            continue
        parts = [int(x, 16) for x in d.split()]
        if len(parts) != 2:
            continue
        if ud.normalize("NFC", chr(cp)) != chr(cp):
            continue  # composition exclusion
        if ud.combining(chr(parts[0])) != 0:
            continue  # non-starter decomposition
        comps.append((parts[0], parts[1], cp))
    comps.sort()
    w("const struct tok_comp tok_comps[] = {\n")
    for a, b, c in comps:
        w("    {0x%X, 0x%X, 0x%X},\n" % (a, b, c))
    w("};\nconst size_t tok_comp_count = %d;\n" % len(comps))


if __name__ == "__main__":
    main()
