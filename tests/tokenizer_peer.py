#!/usr/bin/env python3
"""tokenizer_peer.py - the Hugging Face `tokenizers` side of the tokenizer tests.

  tokenizer_peer.py check
      exit 0 when `tokenizers` is importable (tests skip otherwise).
  tokenizer_peer.py build OUTDIR CORPUS
      trains small BPE tokenizers on CORPUS and writes OUTDIR/NAME/tokenizer.json for
      NAME in: llama2 (SentencePiece-style: Prepend+Replace normalizer, no pre-tokenizer,
      byte_fallback), metaspace (Metaspace pre-tokenizer, prepend_scheme first, split
      false), metaspace_split (prepend_scheme always, split true, Metaspace decoder),
      gpt2 (ByteLevel use_regex, merges as "a b" strings, added tokens with
      lstrip/rstrip/single_word/normalized flags), qwen2 (NFC normalizer, Qwen2 Split
      regex + ByteLevel without regex, merges as pairs).
  tokenizer_peer.py nfc-cases
      prints {"cases": [[input_hex, nfc_hex], ...]}: every code point with a
      decomposition or a combining class, alone and in sequences, with
      unicodedata.normalize("NFC") of each (checks core/tokenizer_nfc.c directly).
  tokenizer_peer.py gguf-vocab FILE.gguf
      prints the tokenizer.ggml.* metadata of a vocab-only GGUF (llama.cpp's test
      vocabularies) as JSON, read with the PyPI `gguf` package, for qb_tok_create.
  tokenizer_peer.py cases TOKENIZER_JSON [EXTRA_FILE...]
      prints one JSON document {"cases": [{"hex", "ids", "ids_special", "decoded_hex"}]}:
      the test strings (UTF-8 bytes, some invalid, decoded with errors="replace" as any
      Python caller would), their ids with add_special_tokens False and True, and
      decode(ids, skip_special_tokens=False). Each EXTRA_FILE adds its whole content.

The C suite (tests/test_tokenizer_peer.c) runs this with QB_PYTHON and compares exactly.
"""
import json
import os
import random
import sys


def test_strings():
    s = [
        "", " ", "  ", "   ", "\t", "\n", "\n\n", "\n\n\n", "\t\n", "\r\n", "a\r\nb\r\n\r\nc",
        "Hello world", " Hello world", "Hello World", " Hello World", " Hello World!",
        "Hello, world!", " Hello, world!", " this is 🦙.cpp", "w048 7tuijk dsdfhu",
        "нещо на Български", "កាន់តែពិសេសអាចខលចេញ", "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ (only emoji that has its own token)",
        "Hello", " Hello", "  Hello", "   Hello", "    Hello", "    Hello\n    Hello",
        " (", "\n =", "' era", "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
        "3", "33", "333", "3333", "33333", "333333", "3333333", "33333333", "333333333",
        "12345678901234567890", "1,000,000.00 and 3.14159 and ٣٤٥ and ½ ² ³",
        "DON'T", "don't", "it'S", "I'M", "we'Ve", "THEY'LL", "she'D", "it's", "It'S'S",
        "'s'", "''s", "o'clock", "rock 'n' roll", "'ſ", "'K", "ǅungla",
        "café résumé naïve Ångström façade", "Cafe\u0301 e\u0301", "Straße ǅ Ǆ ǆ",
        "日本語のテキスト、中文文本。한국어 텍스트", "漢字かなカナ123", "Ελληνικά κείμενο", "עברית ערבית العربية",
        "हिन्दी भाषा", "ไทย ภาษา", "emoji 👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏽 thumbs",
        "tabs\tbetween\twords\t\t\tend", "trailing spaces   ", "   leading spaces",
        "mixed \t \n \r\n whitespace \u00a0nbsp \u2009thin \u3000ideographic \u0085nel \u2028ls",
        "def foo(x):\n    return x ** 2  # square\n\nclass A:\n\tpass\n",
        "for (int i = 0; i < n; i++) { a[i] += b[i] * 2; }\n// comment\n/* block */",
        "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>",
        "https://example.com/path?query=1&b=2#frag user@example.com",
        "a" * 1000, "ab" * 700, " " * 300, "\n" * 50, "x" + " " * 17 + "y", "!!!???...,,,;;;",
        "supercalifragilisticexpialidocious" * 20, "ThisIsAVeryLongCamelCaseIdentifierName" * 5,
        "▁already▁has▁metaspace ▁ ▁▁", "<0x41> <0xFF> <unk> <s> </s>",
        "<|begin_of_text|>Hello<|end_of_text|>", "<s>Hello</s> world", "a<s>b", " <s> ",
        "<|endoftext|> text <|endoftext|><|endoftext|>", "[NEW] x [NEW]y z[NEW] ", "foo bar foobar barfoo",
        "hello_world hello_worlds ahello_world hello_world.", "\x00nul\x01ctl\x7f",
        "zero\u200bwidth\u200djoiner\ufeffbom", "surrogates? \U0001F600\U0001F4A9\U00010348",
        "Ⅻ ⅻ ① ⑳ ¼ ١٢٣ ߀ ௰", "ﬁ ﬂ ﬃ Ｆｕｌｌｗｉｄｔｈ １２３", "combining: a\u0300\u0301\u0302 o\u0308",
        "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
        "It was the best of times, it was the worst of times,\nit was the age of wisdom...",
        "\"Quoted,\" she said—em dash–en dash… ellipsis «guillemets» „Anführungszeichen“",
        "NFC: A\u030a \u212b \u2126 a\u0316\u0301 a\u0301\u0316 \u1100\u1161\u11a8 \u1100\u1161 "
        "\u0958 \u1f71 e\u0304\u0301 \u1ea1\u0302 o\u031b\u0323 \u0344 \u0f73 \u0301start",
        "Vi\u1ec7t Nam ti\u00ea\u0301ng Vi\u00ea\u0323t \uac00\u11a8 \u110b\u1175\u11af",
    ]
    rng = random.Random(1234)
    alphabet = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \t\n\r.,;:'\"!?-_()[]{}"
                "éèàüöäßçñÆøå日本語中文한국어αβγδЖжЩщ🙂🚀👍🏽\u00a0\u2009\u3000\u0301▁<>|/\\@#$%^&*~`+=")
    for _ in range(300):
        n = rng.randint(1, 60)
        s.append("".join(rng.choice(alphabet) for _ in range(n)))
    words = ["the", "The", "THE", "and", "'s", "'T", "'re", "'LL", "don", "ing", " ", "  ", "\n",
             "\r\n", "\t", "123", "4567", "😀", "über", "naïve", "日本", "x", ",", ".", "<s>",
             "<|endoftext|>", "[NEW]", "hello_world", "'", "ſ"]
    for _ in range(300):
        s.append("".join(rng.choice(words) for _ in range(rng.randint(1, 25))))
    cases = [x.encode("utf-8") for x in s]
    cases += [b"\xff", b"abc\xffdef", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82(", b"\xf0\x9f\x98",
              b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"ok \x80\x80\x80 ok", b"\xfe\xfe",
              b"caf\xe9 na\xefve", b"\xef\xbb\xbfBOM", b"\xf0\x9f\x98\x80\xf0\x9f"]
    return cases


def build(outdir, corpus):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers import processors, trainers, AddedToken

    with open(corpus, encoding="utf-8") as f:
        text = f.read()
    lines = [ln for ln in text.splitlines() if ln.strip()]

    def save(name, tok, string_merges=False):
        d = os.path.join(outdir, name)
        os.makedirs(d, exist_ok=True)
        data = json.loads(tok.to_str())
        if string_merges:
            data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                                       for m in data["model"]["merges"]]
        s = json.dumps(data, ensure_ascii=False)
        Tokenizer.from_str(s)  # must still load
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(s)

    # --- SentencePiece-style: train on Metaspace words, then reshape like Llama-2 ships it
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = ["<0x%02X>" % b for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=specials + byte_tokens,
                                  limit_alphabet=90, show_progress=False)
    tok.train_from_iterator(lines, trainer)
    base = json.loads(tok.to_str())
    # byte tokens belong to the model vocab, not to added_tokens (as in Llama-2)
    base["added_tokens"] = [a for a in base["added_tokens"] if a["content"] in specials]
    for a in base["added_tokens"]:
        a.update(normalized=False, special=True)
    template = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                         {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<s>", "type_id": 1}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    llama_decoder = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}

    llama2 = json.loads(json.dumps(base))
    llama2["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    llama2["pre_tokenizer"] = None
    llama2["post_processor"] = template
    llama2["decoder"] = llama_decoder
    llama2["model"]["ignore_merges"] = False
    save("llama2", Tokenizer.from_str(json.dumps(llama2)))

    mistral = json.loads(json.dumps(base))
    mistral["normalizer"] = None
    mistral["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁",
                                "prepend_scheme": "first", "split": False}
    mistral["post_processor"] = template
    mistral["decoder"] = llama_decoder
    save("metaspace", Tokenizer.from_str(json.dumps(mistral)))

    ms = json.loads(json.dumps(base))
    ms["normalizer"] = None
    ms["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁",
                           "prepend_scheme": "always", "split": True}
    ms["post_processor"] = template
    ms["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
                     "split": True}
    save("metaspace_split", Tokenizer.from_str(json.dumps(ms)))

    # --- GPT-2 style byte-level BPE
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer)
    tok.add_tokens([AddedToken("[NEW]", lstrip=True, rstrip=True, normalized=False),
                    AddedToken("hello_world", single_word=True, normalized=True),
                    AddedToken("foo bar", normalized=True)])
    save("gpt2", tok, string_merges=True)

    # --- Qwen2 style: Split regex then ByteLevel without its own regex
    qwen_re = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    tok = Tokenizer(models.BPE(ignore_merges=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(qwen_re), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<|endoftext|>", "<|im_start|>",
                                                                    "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer)
    save("qwen2", tok)

    # --- variants of the gpt2 vocabulary exercising every pre-tokenizer option
    g = json.loads(open(os.path.join(outdir, "gpt2", "tokenizer.json"), encoding="utf-8").read())
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}

    def split(pattern, behavior, invert=False, literal=False):
        return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern},
                "behavior": behavior, "invert": invert}

    variants = {
        "removed": [split(r"\s+", "Removed"), bl],
        "merged_prev": [split(r"[,.!?;:]", "MergedWithPrevious"), bl],
        "merged_next": [split(" ", "MergedWithNext", literal=True), bl],
        "contiguous_invert": [split(r"\p{L}", "Contiguous", invert=True), bl],
        "isolated_invert": [split(r"\p{N}+| ", "Isolated", invert=True), bl],
        "empty_matches": [split(r"\b|x*", "Isolated"), bl],
        "shorthands": [split(r"\w+|\W|\h+|\d+|\S\s", "Isolated"), bl],
        "anchors": [split(r"^.|.$|(?m:^\s)", "Isolated"), bl],
        "digits_prefix": [{"type": "Digits", "individual_digits": True},
                          {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                           "use_regex": True}],
        "digits_runs": [{"type": "Digits", "individual_digits": False}, bl],
        "falcon": [{"type": "Punctuation", "behavior": "Contiguous"},
                   {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                    "use_regex": True},
                   {"type": "Digits", "individual_digits": False},
                   {"type": "Split", "pattern": {"Regex": "[0-9][0-9][0-9]"},
                    "behavior": "Isolated", "invert": False}],
    }
    for name, seq in variants.items():
        d = json.loads(json.dumps(g))
        d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": seq}
        if name == "shorthands":
            d["normalizer"] = {"type": "Sequence", "normalizers": [
                {"type": "Replace", "pattern": {"Regex": r"\s{2,}"}, "content": "  "},
                {"type": "NFC"}]}
        save("v_" + name, Tokenizer.from_str(json.dumps(d)))


def cases(path, extra):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(path)
    inputs = test_strings()
    for e in extra:
        with open(e, "rb") as f:
            inputs.append(f.read())
    out = []
    for raw in inputs:
        text = raw.decode("utf-8", errors="replace")
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_sp = tok.encode(text, add_special_tokens=True).ids
        dec = tok.decode(ids, skip_special_tokens=False)
        out.append({"hex": raw.hex(), "ids": ids, "ids_special": ids_sp,
                    "decoded_hex": dec.encode("utf-8").hex()})
    json.dump({"cases": out}, sys.stdout)


def gguf_vocab(path):
    from gguf import GGUFReader
    r = GGUFReader(path)

    def get(key, default=None):
        f = r.fields.get("tokenizer.ggml." + key)
        return f.contents() if f is not None else default

    json.dump({"model": get("model"), "pre": get("pre"), "tokens": get("tokens"),
               "scores": get("scores"), "types": get("token_type"), "merges": get("merges", []),
               "bos": get("bos_token_id", -1), "eos": get("eos_token_id", -1),
               "unk": get("unknown_token_id", -1), "add_bos": bool(get("add_bos_token", False)),
               "add_eos": bool(get("add_eos_token", False)),
               "add_space_prefix": bool(get("add_space_prefix", True))}, sys.stdout)


def nfc_cases():
    import unicodedata as ud
    marks = [0x301, 0x316, 0x323, 0x302, 0x334, 0x5B0, 0x93C]
    out = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        if not (ud.decomposition(c) or ud.combining(c)) and not (0x1100 <= cp <= 0x11FF):
            continue
        for s in (c, "a" + c, c + chr(marks[cp % 7]), c + chr(marks[cp % 5]) + chr(marks[cp % 3]),
                  chr(marks[cp % 7]) + c + "b"):
            out.append([s.encode().hex(), ud.normalize("NFC", s).encode().hex()])
    json.dump({"unicode": ud.unidata_version, "cases": out}, sys.stdout)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "check":
        import tokenizers  # noqa: F401
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "build":
        build(sys.argv[2], sys.argv[3])
        return 0
    if len(sys.argv) == 2 and sys.argv[1] == "nfc-cases":
        nfc_cases()
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "gguf-vocab":
        gguf_vocab(sys.argv[2])
        return 0
    if len(sys.argv) >= 3 and sys.argv[1] == "cases":
        cases(sys.argv[2], sys.argv[3:])
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
