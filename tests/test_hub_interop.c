/*
 * test_hub_interop.c - the cache is shared with the PyPI huggingface_hub
 * package (QB_PYTHON's venv), both ways, against tests/hub_server.py:
 * after `quantbench pull`, try_to_load_from_cache and scan_cache_dir see our
 * files (and hashlib confirms every blob is named by its sha256 or git blob
 * sha1); after hf_hub_download / snapshot_download into the same cache,
 * quantbench finds the models offline. Skipped when huggingface_hub is missing.
 */
#include <cjson/cJSON.h>

#include "test_hub_fixture.h"

static void interop_init(void)
{
    if (system(QB_PYTHON " -c 'import huggingface_hub' 2>/dev/null") != 0)
        cr_skip_test("huggingface_hub is not importable by %s", QB_PYTHON);
    hub_srv_start();
    setenv("HF_ENDPOINT", srv.endpoint, 1);
    setenv("HF_HUB_CACHE", srv.cache, 1);
    setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1", 1);
    setenv("HF_HUB_DISABLE_TELEMETRY", "1", 1);
    unsetenv("HF_TOKEN");
    unsetenv("HF_HUB_OFFLINE");
}

TestSuite(hub_interop, .init = interop_init, .fini = hub_srv_stop, .timeout = 120);

/* Run a Python snippet (argv[1..] = args); its stdout must be one JSON document. */
static cJSON *run_python(const char *code, const char *arg)
{
    char script[256], cmd[1024];
    snprintf(script, sizeof script, "%s/snippet.py", srv.dir);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    fputs(code, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s '%s' '%s' 2>'%s/py.err'", QB_PYTHON, script, arg ? arg : "",
             srv.dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    int rc = pclose(p);
    char errpath[256];
    snprintf(errpath, sizeof errpath, "%s/py.err", srv.dir);
    char *err = hub_slurp(errpath);
    cr_assert_eq(rc, 0, "python failed: %s", err ? err : "");
    free(err);
    cJSON *j = cJSON_Parse(buf);
    cr_assert_not_null(j, "python printed '%s'", buf);
    return j;
}

static const char k_check_ours[] =
    "import hashlib, json, os, sys\n"
    "from huggingface_hub import try_to_load_from_cache, scan_cache_dir, hf_hub_download\n"
    "repo = 'qb-test/tiny-llama'\n"
    "files = ['config.json', 'generation_config.json', 'tokenizer.json',\n"
    "         'tokenizer_config.json', 'model.safetensors', 'sub/dir/nested.json', 'README.md']\n"
    "out = {'paths': {}, 'blob_ok': True}\n"
    "for f in files:\n"
    "    out['paths'][f] = try_to_load_from_cache(repo, f)\n"
    "    assert hf_hub_download(repo, f, local_files_only=True) == out['paths'][f]\n"
    "    data = open(out['paths'][f], 'rb').read()\n"
    "    blob = os.path.basename(os.path.realpath(out['paths'][f]))\n"
    "    want = hashlib.sha256(data).hexdigest() if len(blob) == 64 else \\\n"
    "        hashlib.sha1(b'blob %d\\0' % len(data) + data).hexdigest()\n"
    "    out['blob_ok'] &= blob == want\n"
    "out['missing'] = try_to_load_from_cache(repo, 'pytorch_model.bin')\n"
    "scan = scan_cache_dir()\n"
    "out['warnings'] = [str(w) for w in scan.warnings]\n"
    "for r in scan.repos:\n"
    "    if r.repo_id == repo:\n"
    "        out['repo'] = {'type': r.repo_type, 'nb_files': r.nb_files,\n"
    "                       'size': r.size_on_disk,\n"
    "                       'refs': sorted(sum([sorted(v.refs) for v in r.revisions], [])),\n"
    "                       'revisions': len(r.revisions)}\n"
    "print(json.dumps(out))\n";

Test(hub_interop, huggingface_hub_sees_what_quantbench_pulled)
{
    struct cli_result r =
        hub_run_cli(NULL, (const char *const[]){"pull", "qb-test/tiny-llama", NULL});
    cr_assert_eq(r.rc, 0, "%s", r.err);
    char snap[1024];
    snprintf(snap, sizeof snap, "%s", r.out);
    snap[strcspn(snap, "\n")] = '\0';
    cli_result_free(&r);
    cJSON *j = run_python(k_check_ours, NULL);
    const cJSON *paths = cJSON_GetObjectItem(j, "paths"), *p;
    cr_assert_eq(cJSON_GetArraySize(paths), 7);
    cJSON_ArrayForEach(p, paths)
    {
        char want[1200];
        snprintf(want, sizeof want, "%s/%s", snap, p->string);
        cr_assert(cJSON_IsString(p), "%s not found by try_to_load_from_cache", p->string);
        cr_assert_str_eq(p->valuestring, want);
    }
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "blob_ok")), "blob names are content hashes");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "missing")));
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "warnings")), 0);
    const cJSON *repo = cJSON_GetObjectItem(j, "repo");
    cr_assert_not_null(repo, "scan_cache_dir did not list the repo");
    cr_assert_str_eq(cJSON_GetObjectItem(repo, "type")->valuestring, "model");
    cr_assert_eq(cJSON_GetObjectItem(repo, "nb_files")->valuedouble, 7);
    cr_assert_eq(cJSON_GetObjectItem(repo, "size")->valuedouble,
                 300000 + 266 + 39 + 44 + 27 + 17 + 35);
    cr_assert_eq(cJSON_GetObjectItem(repo, "revisions")->valuedouble, 1);
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(repo, "refs"), 0)->valuestring, "main");
    cJSON_Delete(j);
}

static const char k_download[] = "import json, sys\n"
                                 "from huggingface_hub import hf_hub_download, snapshot_download\n"
                                 "a = hf_hub_download('qb-test/tiny-llama', 'config.json')\n"
                                 "b = hf_hub_download('qb-test/tiny-llama', 'model.safetensors')\n"
                                 "c = snapshot_download('qb-test/ref-llama-10m')\n"
                                 "print(json.dumps([a, b, c]))\n";

Test(hub_interop, quantbench_finds_huggingface_hub_downloads_offline)
{
    cJSON *j = run_python(k_download, NULL);
    char ref_snap[1024];
    snprintf(ref_snap, sizeof ref_snap, "%s", cJSON_GetArrayItem(j, 2)->valuestring);
    cJSON_Delete(j);
    int requests = hub_log_count("", NULL);

    struct cli_result r = hub_run_cli((const char *const[]){"HF_HUB_OFFLINE=1", NULL},
                                      (const char *const[]){"list", "--json", NULL});
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cJSON *l = cJSON_Parse(r.out);
    cr_assert_eq(cJSON_GetArraySize(l), 2, "%s", r.out);
    const cJSON *ref = cJSON_GetArrayItem(l, 0), *tiny = cJSON_GetArrayItem(l, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(ref, "id")->valuestring, "qb-test/ref-llama-10m");
    cr_assert_str_eq(cJSON_GetObjectItem(ref, "path")->valuestring, ref_snap);
    cr_assert_eq(cJSON_GetObjectItem(ref, "files")->valuedouble, 8);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(ref, "supported")));
    cr_assert_str_eq(cJSON_GetObjectItem(tiny, "revision")->valuestring, "main");
    cr_assert_eq(cJSON_GetObjectItem(tiny, "files")->valuedouble, 2);
    cJSON_Delete(l);
    cli_result_free(&r);

    struct qb_hub *hub = hub_test_open(NULL, 1);
    struct qb_err err;
    char *dir = NULL;
    cr_assert_eq(qb_hub_resolve_model(hub, "qb-test/ref-llama-10m", 0, NULL, &dir, &err), QB_OK,
                 "%s", err.msg);
    cr_assert_str_eq(dir, ref_snap);
    cr_assert(hub_path_exists("%s/model-00002-of-00002.safetensors", dir));
    free(dir);
    qb_hub_free(hub);
    cr_assert_eq(hub_log_count("", NULL), requests, "offline: no request");

    /* online, quantbench completes the Python download and reuses its blobs */
    char blob[1024];
    snprintf(blob, sizeof blob,
             "%s/models--qb-test--tiny-llama/blobs/"
             "27f0a18a7d062d26ac18a0374103c3d91a2414e104c10c68942487213385439c",
             srv.cache);
    struct stat before, after;
    cr_assert_eq(stat(blob, &before), 0);
    r = hub_run_cli(NULL, (const char *const[]){"pull", "qb-test/tiny-llama", NULL});
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cli_result_free(&r);
    cr_assert_eq(stat(blob, &after), 0);
    cr_assert_eq(before.st_ino, after.st_ino, "the Python blob was reused");
    cr_assert_eq(hub_log_count("\"server\": \"cdn\"", NULL), 1 + 2, "no second CDN fetch");
}
