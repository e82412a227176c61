#!/usr/bin/env python3
"""hub_server.py - a loopback stand-in for the Hugging Face Hub, its CDN and
the datasets-server, for the hub test suites (tests/test_hub_*.c).

Two HTTP servers on 127.0.0.1, ephemeral ports: the "hub" (API, /resolve,
/rows) and a "cdn" on another port, i.e. another origin, which serves LFS
blobs after the hub's 302 (like cas-bridge.xethub.hf.co). Response shapes and
headers follow the real Hub (shared/docs/HUB-TUI-TELEMETRY.md section 1):
Link rel="next" pagination with an opaque cursor, X-Repo-Commit,
X-Linked-Etag/X-Linked-Size on LFS redirects, ETag = git blob sha1 for plain
files, Range/206, X-Error-Code (GatedRepo, RepoNotFound, RevisionNotFound,
EntryNotFound), 429 with Retry-After.

Usage: hub_server.py [--data DIR] [--log FILE]
Prints one line "READY hub=PORT cdn=PORT" on stdout once both listen.
--data DIR: serve DIR/ref-llama-10m as repo qb-test/ref-llama-10m.
--log FILE: one JSON line per request (server, method, path, range, auth).

Scenario repos (all under qb-test/): tiny-llama (the normal case: config,
tokenizer, LFS safetensors, excluded *.bin/original/, a nested file), gated,
moe, evil (a sibling named ../../evil), bad-sha, truncated (first body cut
short), no-range (the CDN ignores Range), slow (a slow body), stall (a body
that stops), rate-limited (one 429 Retry-After: 1), rate-limited-long (429
Retry-After: 3600), flaky (one 503 on the tree), malformed (cut JSON),
missing-entry (a listed file answering EntryNotFound), paged-tree (the tree
in pages of 2), huge (X-Linked-Size of 1 PB), renamed (every URL answers 307
with a relative Location to tiny-llama's, like a renamed repo).
"""
import argparse
import base64
import hashlib
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ALLOWED_TOKEN = "hf_qbtest_allowed"
LOCK = threading.Lock()
COUNTERS = {}
LOG = None
PORTS = {}


def count(key):
    with LOCK:
        COUNTERS[key] = COUNTERS.get(key, 0) + 1
        return COUNTERS[key]


def log(entry):
    if LOG:
        with LOCK:
            LOG.write(json.dumps(entry) + "\n")
            LOG.flush()


def git_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def commit_of(name):
    return hashlib.sha1(("commit:" + name).encode()).hexdigest()


def det_bytes(seed, n):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(("%s:%d" % (seed, i)).encode()).digest()
        i += 1
    return bytes(out[:n])


def llama_config(model_type="llama", **extra):
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": model_type,
           "num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 8,
           "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 2048,
           "torch_dtype": "bfloat16"}
    cfg.update(extra)
    return json.dumps(cfg, indent=2).encode()


class Repo:
    def __init__(self, name, files, gated=False, lfs_min=1000, **flags):
        self.name = name
        self.files = files          # path -> bytes
        self.gated = gated
        self.lfs_min = lfs_min      # files this big (or *.safetensors) are LFS
        self.flags = flags
        self.commit = commit_of(name)
        self.extra_tree = flags.get("extra_tree", [])

    def is_lfs(self, path):
        return path.endswith(".safetensors") or len(self.files[path]) >= self.lfs_min

    def served_bytes(self, path):
        data = self.files[path]
        if self.flags.get("bad_sha") and self.is_lfs(path):
            return data[:-1] + bytes([data[-1] ^ 0xFF])
        return data


def build_repos(data_dir):
    tiny = {
        "config.json": llama_config(),
        "generation_config.json": b'{"bos_token_id": 1, "eos_token_id": 2}\n',
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "BPE"}}).encode(),
        "tokenizer_config.json": b'{"model_max_length": 2048}\n',
        "model.safetensors": det_bytes("tiny-weights", 300_000),
        "pytorch_model.bin": det_bytes("tiny-bin", 5000),
        "original/consolidated.pth": det_bytes("tiny-pth", 4000),
        "sub/dir/nested.json": b'{"nested": true}\n',
        "README.md": b"---\nlicense: apache-2.0\n---\n# tiny\n",
    }
    repos = [
        Repo("qb-test/tiny-llama", tiny),
        Repo("qb-test/gated", {"config.json": llama_config(),
                               "model.safetensors": det_bytes("gated", 50_000)}, gated="manual"),
        Repo("qb-test/moe", {"config.json": llama_config(
            "gpt_oss", architectures=["GptOssForCausalLM"], num_local_experts=32)}),
        Repo("qb-test/evil", {"config.json": llama_config(), "../../evil": b"pwned\n"}),
        Repo("qb-test/bad-sha", {"config.json": llama_config(),
                                 "model.safetensors": det_bytes("bad", 40_000)}, bad_sha=True),
        Repo("qb-test/truncated", {"config.json": llama_config(),
                                   "model.safetensors": det_bytes("trunc", 200_000)},
             truncate=True),
        Repo("qb-test/no-range", {"config.json": llama_config(),
                                  "model.safetensors": det_bytes("norange", 100_000)},
             no_range=True),
        Repo("qb-test/slow", {"config.json": llama_config(),
                              "model.safetensors": det_bytes("slow", 64_000)}, slow=True),
        Repo("qb-test/stall", {"config.json": llama_config(),
                               "model.safetensors": det_bytes("stall", 64_000)}, stall=True),
        Repo("qb-test/rate-limited", {"config.json": llama_config()}, rate_limit=1),
        Repo("qb-test/rate-limited-long", {"config.json": llama_config()}, rate_limit=3600),
        Repo("qb-test/flaky", {"config.json": llama_config()}, flaky=True),
        Repo("qb-test/malformed", {"config.json": llama_config()}, malformed=True),
        Repo("qb-test/missing-entry", {"config.json": llama_config()},
             extra_tree=[{"type": "file", "oid": "0" * 40, "size": 10,
                          "path": "tokenizer.model"}]),
        Repo("qb-test/huge", {"config.json": llama_config(),
                              "model.safetensors": det_bytes("huge", 1000)}, huge=True),
        Repo("qb-test/paged-tree", {"config.json": llama_config(),
                                    "a.json": b"{}\n", "b.json": b"[]\n",
                                    "c/d.json": b'{"d": 1}\n', "e.txt": b"e\n"}),
    ]
    ref_dir = os.path.join(data_dir, "ref-llama-10m") if data_dir else None
    if ref_dir and os.path.isdir(ref_dir):
        files = {}
        for fn in sorted(os.listdir(ref_dir)):
            with open(os.path.join(ref_dir, fn), "rb") as f:
                files[fn] = f.read()
        repos.append(Repo("qb-test/ref-llama-10m", files, lfs_min=1 << 20))
    return {r.name: r for r in repos}


CATALOGUE = [
    {"id": "meta-llama/Llama-3.1-8B", "author": "meta-llama", "downloads": 900, "likes": 50,
     "trendingScore": 10, "gated": "manual", "lastModified": "2024-09-25T14:34:39.000Z",
     "library_name": "transformers", "pipeline_tag": "text-generation",
     "safetensors": {"parameters": {"BF16": 8030261248}, "total": 8030261248}},
    {"id": "Qwen/Qwen3-8B", "author": "Qwen", "downloads": 800, "likes": 70,
     "trendingScore": 40, "gated": False, "lastModified": "2025-05-21T06:12:38.000Z",
     "library_name": "transformers", "pipeline_tag": "text-generation",
     "safetensors": {"parameters": {"BF16": 8190735360}, "total": 8190735360}},
    {"id": "Qwen/Qwen3-0.6B", "author": "Qwen", "downloads": 700, "likes": 30,
     "trendingScore": 20, "gated": False, "lastModified": "2025-07-26T03:46:27.000Z",
     "library_name": "transformers", "pipeline_tag": "text-generation"},
    {"id": "mistralai/Mistral-7B-v0.3", "author": "mistralai", "downloads": 600, "likes": 20,
     "trendingScore": 5, "gated": "auto", "lastModified": "2024-12-03T15:52:09.000Z",
     "library_name": "transformers", "pipeline_tag": "text-generation",
     "safetensors": {"parameters": {"BF16": 7248023552}, "total": 7248023552}},
    {"id": "openai/gpt-oss-20b", "author": "openai", "downloads": 500, "likes": 90,
     "trendingScore": 80, "gated": False, "lastModified": "2025-08-26T17:25:47.000Z",
     "library_name": "transformers", "pipeline_tag": "text-generation",
     "safetensors": {"parameters": {"BF16": 1804459584, "U8": 19707494400},
                     "total": 21511953984}},
]
SORT_KEYS = {"downloads": "downloads", "likes": "likes", "trendingScore": "trendingScore",
             "lastModified": "lastModified"}


def dataset_rows(dataset, config, split):
    if dataset == "Salesforce/wikitext" and config == "wikitext-2-raw-v1" and split in (
            "test", "train", "validation"):
        n = {"test": 250, "train": 330, "validation": 120}[split]
        return ["" if i % 3 == 2 else (" = Heading %d = \n" % i if i % 3 == 0
                                        else " %s text row %d , with @-@ marks . \n" % (split, i))
                for i in range(n)]
    if dataset == "allenai/c4" and config == "en" and split == "validation":
        return ["c4 validation document %d." % i for i in range(1234)]
    if dataset == "mit-han-lab/pile-val-backup" and config == "default" and split == "validation":
        return ["pile document %d\nsecond line" % i for i in range(150)]
    return None


class Handler(BaseHTTPRequestHandler):
    server_version = "qb-hub-test/1.0"
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):  # keep stderr quiet
        pass

    # -- helpers ---------------------------------------------------------------------
    def record(self):
        log({"server": self.server.role, "method": self.command, "path": self.path,
             "range": self.headers.get("Range"),
             "auth": self.headers.get("Authorization") is not None})

    def send(self, status, body=b"", headers=None, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message, extra=None):
        h = {"X-Error-Message": message, "X-Request-Id": "Root=1-test"}
        if code:
            h["X-Error-Code"] = code
        h.update(extra or {})
        self.send(status, json.dumps({"error": message}).encode(), h)

    def json(self, obj, headers=None):
        self.send(200, json.dumps(obj).encode(), headers)

    def token(self):
        a = self.headers.get("Authorization") or ""
        return a[7:] if a.startswith("Bearer ") else None

    def base(self, role="hub"):
        return "http://127.0.0.1:%d" % PORTS[role]

    # -- dispatch ---------------------------------------------------------------------
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.record()
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        path = urllib.parse.unquote(url.path)
        if self.server.role == "cdn":
            return self.cdn(path)
        if "/qb-test/renamed/" in url.path or url.path.endswith("/qb-test/renamed"):
            loc = self.path.replace("/qb-test/renamed", "/qb-test/tiny-llama", 1)
            return self.send(307, b"", {"Location": loc}, ctype="text/plain")
        if url.path == "/api/models":
            return self.search(q)
        if url.path.startswith("/api/models/"):
            return self.api_model(url.path[len("/api/models/"):], q)
        if url.path == "/rows":
            return self.rows(q)
        parts = url.path.lstrip("/").split("/", 4)
        if len(parts) == 5 and parts[2] == "resolve":
            return self.resolve("/".join(parts[:2]), urllib.parse.unquote(parts[3]),
                                urllib.parse.unquote(parts[4]))
        self.error(404, None, "not found: " + path)

    # -- /api/models ---------------------------------------------------------------------
    def search(self, q):
        sort = q.get("sort", ["downloads"])[0]
        if sort not in SORT_KEYS:
            return self.error(400, None, "invalid sort " + sort)
        if q.get("pipeline_tag", ["text-generation"])[0] != "text-generation":
            return self.json([])
        items = [m for m in CATALOGUE
                 if q.get("search", [""])[0].lower() in m["id"].lower()
                 and ("author" not in q or q["author"][0] == m["author"])]
        items.sort(key=lambda m: m[SORT_KEYS[sort]], reverse=True)
        limit = max(1, min(int(q.get("limit", ["2"])[0]), 2))  # pages of at most 2
        start = int(base64.b64decode(q["cursor"][0]).decode()) if "cursor" in q else 0
        page = items[start:start + limit]
        headers = {}
        if start + limit < len(items):
            nq = {k: v for k, v in q.items() if k != "cursor"}
            nq["cursor"] = [base64.b64encode(str(start + limit).encode()).decode()]
            headers["Link"] = '<%s/api/models?%s>; rel="next"' % (
                self.base(), urllib.parse.urlencode(nq, doseq=True))
        expand = q.get("expand[]", [])
        out = []
        for m in page:
            e = {"_id": hashlib.md5(m["id"].encode()).hexdigest()[:24], "id": m["id"]}
            for k, v in m.items():
                if k in ("id", "author"):
                    continue
                if not expand or k in expand or (k == "library_name" and "library_name" in expand):
                    e[k] = v
            out.append(e)
        self.json(out, headers)

    def api_model(self, rest, q):
        parts = rest.split("/")
        name = "/".join(parts[:2])
        repo = self.server.repos.get(name)
        if repo is None:
            return self.error(401 if not self.token() else 404, "RepoNotFound",
                              "Repository not found")
        tail = parts[2:]
        if repo.flags.get("malformed"):
            return self.send(200, b'{"id": "qb-test/malformed", "sha": "ab')
        if tail and tail[0] == "revision":
            rev = urllib.parse.unquote("/".join(tail[1:]))
            if rev not in ("main", repo.commit):
                return self.error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            return self.info(repo)
        if not tail:
            return self.info(repo)
        if tail[0] == "tree":
            rev = urllib.parse.unquote(tail[1]) if len(tail) > 1 else "main"
            if rev not in ("main", repo.commit):
                return self.error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            if repo.flags.get("flaky") and count("flaky-tree") == 1:
                return self.error(503, None, "Service Unavailable")
            return self.tree(repo, q)
        self.error(404, None, "not found")

    def info(self, repo):
        siblings = []
        for p, data in repo.files.items():
            s = {"rfilename": p, "size": len(data), "blobId": git_sha1(data)}
            if repo.is_lfs(p):
                s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                            "pointerSize": 134}
            siblings.append(s)
        cfg = json.loads(repo.files["config.json"]) if "config.json" in repo.files else {}
        st_total = sum(len(d) for p, d in repo.files.items() if p.endswith(".safetensors")) // 2
        obj = {"_id": hashlib.md5(repo.name.encode()).hexdigest()[:24], "id": repo.name,
               "modelId": repo.name, "author": repo.name.split("/")[0], "sha": repo.commit,
               "lastModified": "2025-01-02T03:04:05.000Z", "private": False,
               "gated": repo.gated, "disabled": False, "downloads": 1234, "likes": 56,
               "library_name": "transformers", "pipeline_tag": "text-generation",
               "tags": ["transformers", "safetensors", "llama", "license:apache-2.0"],
               "cardData": {"license": "apache-2.0"},
               "config": {"architectures": cfg.get("architectures"),
                          "model_type": cfg.get("model_type")},
               "siblings": siblings, "createdAt": "2025-01-01T00:00:00.000Z"}
        if st_total:
            obj["safetensors"] = {"parameters": {"BF16": st_total, "F32": 10},
                                  "total": st_total + 10}
        self.json(obj)

    def tree(self, repo, q):
        entries = []
        dirs = set()
        for p, data in repo.files.items():
            d = os.path.dirname(p)
            while d and d not in dirs and not d.startswith(".."):
                dirs.add(d)
                d = os.path.dirname(d)
        for d in sorted(dirs):
            entries.append({"type": "directory", "oid": git_sha1(d.encode()), "size": 0,
                            "path": d})
        for p, data in repo.files.items():
            e = {"type": "file", "oid": git_sha1(data), "size": len(data), "path": p}
            if repo.is_lfs(p):
                e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                            "pointerSize": 134}
            entries.append(e)
        entries += repo.extra_tree
        page = 2 if repo.name == "qb-test/paged-tree" else 1000
        start = int(q["cursor"][0]) if "cursor" in q else 0
        headers = {}
        if start + page < len(entries):
            nq = {k: v for k, v in q.items() if k != "cursor"}
            nq["cursor"] = [str(start + page)]
            headers["Link"] = '<%s%s?%s>; rel="next"' % (
                self.base(), urllib.parse.urlsplit(self.path).path,
                urllib.parse.urlencode(nq, doseq=True))
        self.json(entries[start:start + page], headers)

    # -- /resolve ---------------------------------------------------------------------------
    def resolve(self, name, rev, path):
        repo = self.server.repos.get(name)
        if repo is None:
            return self.error(401 if not self.token() else 404, "RepoNotFound",
                              "Repository not found")
        if rev not in ("main", repo.commit):
            return self.error(404, "RevisionNotFound", "Invalid rev id: " + rev)
        common = {"X-Repo-Commit": repo.commit}
        if repo.gated and self.token() != ALLOWED_TOKEN:
            if self.token():
                return self.error(403, "GatedRepo", "Access to model %s is restricted and you "
                                  "are not in the authorized list." % name, common)
            return self.error(401, "GatedRepo", "Access to model %s is restricted. You must "
                              "have access to it and be authenticated to access it." % name,
                              common)
        limit = repo.flags.get("rate_limit")
        if limit and (limit > 60 or count("rl:" + name + path) == 1):
            return self.error(429, None, "Too Many Requests", {"Retry-After": str(limit)})
        if path not in repo.files:
            return self.error(404, "EntryNotFound", "Entry not found", common)
        data = repo.files[path]
        if repo.is_lfs(path):
            sha = hashlib.sha256(data).hexdigest()
            loc = "%s/cdn/%s/%s?X-Amz-Signature=abc123" % (
                self.base("cdn"), name, urllib.parse.quote(path))
            size = 10**15 if repo.flags.get("huge") else len(data)
            h = dict(common, **{"X-Linked-Etag": '"%s"' % sha, "X-Linked-Size": str(size),
                                "ETag": '"%s"' % git_sha1(data), "Location": loc})
            return self.send(302, b"", h, ctype="text/plain")
        h = dict(common, ETag='"%s"' % git_sha1(data))
        self.send_range(repo, path, data, h)

    def send_range(self, repo, path, data, headers):
        rng = self.headers.get("Range")
        if rng and not repo.flags.get("no_range") and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                return self.send(416, b"", dict(headers, **{
                    "Content-Range": "bytes */%d" % len(data)}))
            return self.send(206, data[start:], dict(headers, **{
                "Content-Range": "bytes %d-%d/%d" % (start, len(data) - 1, len(data))}),
                ctype="application/octet-stream")
        self.send(200, data, headers, ctype="application/octet-stream")

    # -- the CDN --------------------------------------------------------------------------------
    def cdn(self, path):
        parts = path.split("/", 4)  # ['', 'cdn', org, name, file]
        if len(parts) != 5 or parts[1] != "cdn":
            return self.error(404, None, "no such object")
        repo = self.server.repos.get(parts[2] + "/" + parts[3])
        if repo is None or parts[4] not in repo.files:
            return self.error(404, None, "no such object")
        data = repo.served_bytes(parts[4])
        rng = self.headers.get("Range")
        key = "cdn:" + path
        n = count(key)
        if repo.flags.get("truncate") and n == 1 and not rng:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            return  # the connection closes: a truncated body
        if repo.flags.get("slow") or repo.flags.get("stall"):
            start = int(rng[6:].split("-")[0]) if rng else 0
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1,
                                                                    len(data)))
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            if repo.flags.get("stall"):
                if not rng:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                time.sleep(30)
                return
            step = max(1, len(body) // 20)
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(0.05)
            return
        self.send_range(repo, parts[4], data, {"ETag": '"%s"' % hashlib.sha256(data).hexdigest()})

    # -- datasets-server ----------------------------------------------------------------------------
    def rows(self, q):
        try:
            ds, cfg, split = q["dataset"][0], q["config"][0], q["split"][0]
            offset, length = int(q["offset"][0]), int(q["length"][0])
        except (KeyError, ValueError):
            return self.error(422, None, "Parameters 'dataset', 'config', 'split', 'offset' and "
                              "'length' are required")
        if length > 100 or length < 0 or offset < 0:
            return self.error(422, None, "Parameter 'length' must be between 0 and 100")
        rows = dataset_rows(ds, cfg, split)
        if rows is None:
            return self.error(404, "DatasetNotFound", "The dataset does not exist")
        out = [{"row_idx": i, "row": {"text": rows[i]}, "truncated_cells": []}
               for i in range(offset, min(offset + length, len(rows)))]
        self.json({"features": [{"feature_idx": 0, "name": "text",
                                 "type": {"dtype": "string", "_type": "Value"}}],
                   "rows": out, "num_rows_total": len(rows), "num_rows_per_page": 100,
                   "partial": False})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # a client that hung up (cancel, stall timeout) is part of the scenarios
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def main():
    global LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--data")
    ap.add_argument("--log")
    args = ap.parse_args()
    if args.log:
        LOG = open(args.log, "a")
    repos = build_repos(args.data)
    servers = {}
    for role in ("hub", "cdn"):
        s = Server(("127.0.0.1", 0), Handler)
        s.role = role
        s.repos = repos
        PORTS[role] = s.server_address[1]
        servers[role] = s
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("READY hub=%d cdn=%d" % (PORTS["hub"], PORTS["cdn"]), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
