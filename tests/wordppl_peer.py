"""wordppl_peer.py - an independent Python peer for tests/test_wordppl_peer.c.

Re-implements, from lm-evaluation-harness's published source (read, not
copied), what core/wordppl.c mirrors in C:
  * lm_eval/tasks/wikitext/preprocess_wikitext.py: wikitext_detokenizer and the
    word / byte counts of process_results (Python's re and str semantics);
  * the wikitext_document_level builder (pages split at level-1 titles of
    wiki.test.raw), fed with the raw file rebuilt from Salesforce/wikitext rows;
  * lm_eval/utils.py get_rolling_token_windows + make_disjoint_window, and
    HFLM._loglikelihood_tokens' input construction ((ctx + cont)[-(L+1):][:-1]).

stdin: {"detok": [str], "rows": [[str]], "texts": [str], "windows": [[n, L]]}
stdout: {"detok": [str], "words": [int], "bytes": [int], "docs": [[str]],
         "text_docs": [[str]], "windows": [[[input ids], [scored ids]]]}
Windows use token_list = [0, 1, ..., n-1] and prefix -1, so ids are indices.
"""
import json
import re
import sys


def detokenize(string):
    string = string.replace("s '", "s'")
    string = re.sub(r"/' [0-9]/", r"/'[0-9]/", string)
    for a, b in ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" : ", ": "),
                 (" ; ", "; "), (" . ", ". "), (" ! ", "! "), (" ? ", "? "), (" , ", ", ")):
        string = string.replace(a, b)
    string = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", string)
    string = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", string)
    string = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", string)
    string = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', string)
    string = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", string)
    for a, b in (("= = = =", "===="), ("= = =", "==="), ("= =", "=="),
                 (" " + chr(176) + " ", chr(176)), (" \n", "\n"), ("\n ", "\n"),
                 (" N ", " 1 "), (" 's", "'s")):
        string = string.replace(a, b)
    return string


def raw_file_from_rows(rows):
    # HF's wikitext loader yields each line with its "\n", and "" for blank lines
    # (which hold a single space in wiki.test.raw); the file ends with "\n".
    lines = [r[:-1] if r.endswith("\n") else r for r in rows]
    lines = [line if line else " " for line in lines]
    return "".join(line + "\n" for line in lines)


def document_level(raw):
    pages = []
    ret = []
    for line in raw.split("\n"):
        rline = line.replace("= = =", "===").replace("= =", "==").strip()
        if rline.startswith("= ") and rline.strip().endswith(" ="):
            page = "\n".join(ret)
            if page.strip():
                pages.append(page)
            ret = []
        ret.append(line)
    pages.append("\n".join(ret))
    return pages


def rolling_windows(token_list, prefix, max_seq_len, context_len=1):
    if not token_list:
        return
    pred_len = max_seq_len - context_len + 1
    predicted = 0
    first = min(max_seq_len, len(token_list))
    yield [prefix] + token_list[: first - 1], token_list[:first]
    predicted += first
    while predicted < len(token_list):
        wpl = min(len(token_list) - predicted, pred_len)
        end = predicted + wpl
        yield token_list[end - max_seq_len - 1: end - 1], token_list[end - wpl: end]
        predicted += wpl


def disjoint(pair):
    a, b = pair
    return a[: len(a) - len(b) + 1], b


def model_input(ctx, cont, max_length):
    return (ctx + cont)[-(max_length + 1):][:-1]


def main():
    req = json.load(sys.stdin)
    out = {
        "detok": [detokenize(s) for s in req.get("detok", [])],
        "words": [len(re.split(r"\s+", s)) for s in req.get("detok", [])],
        "bytes": [len(s.encode("utf-8")) for s in req.get("detok", [])],
        "docs": [document_level(raw_file_from_rows(r)) for r in req.get("rows", [])],
        "text_docs": [[d for d in t.split("\n\n\n") if d.strip()]
                      for t in req.get("texts", [])],
        "windows": [],
    }
    for n, length in req.get("windows", []):
        ws = []
        for ctx, cont in map(disjoint, rolling_windows(list(range(n)), -1, length)):
            ws.append([model_input(ctx, cont, length), cont])
        out["windows"].append(ws)
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
