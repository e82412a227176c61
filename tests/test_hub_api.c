/*
 * test_hub_api.c - the hub/ API against tests/hub_server.py on loopback:
 * search pagination, model info, pull (cache layout, selection, gated, 404s,
 * 429, 503, truncated/slow/stalled bodies, Range resume, a server ignoring
 * Range, a wrong sha256, a sibling named ../../evil, token kept off the CDN),
 * list, resolve (offline and with pull) and the datasets-server fetcher.
 */
#include <errno.h>
#include <sys/file.h>

#include "test_hub_fixture.h"

TestSuite(hub_api, .init = hub_srv_start, .fini = hub_srv_stop, .timeout = 90);

#define TINY "qb-test/tiny-llama"

static struct qb_hub *hub;

/* ---- search ------------------------------------------------------------------------- */

Test(hub_api, search_follows_link_until_limit)
{
    struct qb_hub_search_result r;
    struct qb_err err;
    hub = hub_test_open(NULL, 0);
    struct qb_hub_search_query q = {.text = "", .sort = QB_HUB_SORT_DOWNLOADS, .limit = 3};
    cr_assert_eq(qb_hub_search(hub, &q, &r, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(r.n, 3);
    cr_assert_str_eq(r.items[0].id, "meta-llama/Llama-3.1-8B");
    cr_assert_eq(r.items[0].parameters, 8030261248LL);
    cr_assert_str_eq(r.items[0].gated, "manual");
    cr_assert_eq(r.items[0].downloads, 900);
    cr_assert_str_eq(r.items[1].id, "Qwen/Qwen3-8B");
    cr_assert_str_eq(r.items[1].gated, "false");
    cr_assert_str_eq(r.items[2].id, "Qwen/Qwen3-0.6B");
    cr_assert_eq(r.items[2].parameters, -1, "no safetensors block -> unknown");
    cr_assert_str_eq(r.items[2].library, "transformers");
    cr_assert_str_eq(r.items[2].last_modified, "2025-07-26T03:46:27.000Z");
    /* pages of 2: the second page came through the Link cursor */
    cr_assert_eq(hub_log_count("/api/models?", NULL), 2);
    cr_assert_eq(hub_log_count("/api/models?", "cursor=", NULL), 1);
    cr_assert_eq(hub_log_count("pipeline_tag=text-generation", NULL), 2);
    qb_hub_search_result_clear(&r);

    q.limit = 100; /* every page until the Link header stops */
    cr_assert_eq(qb_hub_search(hub, &q, &r, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(r.n, 5);
    qb_hub_search_result_clear(&r);
    qb_hub_free(hub);
}

Test(hub_api, search_author_and_sort_reach_the_server)
{
    struct qb_hub_search_result r;
    struct qb_err err;
    hub = hub_test_open(NULL, 0);
    struct qb_hub_search_query q = {
        .text = "qwen", .author = "Qwen", .sort = QB_HUB_SORT_LIKES, .limit = 10};
    cr_assert_eq(qb_hub_search(hub, &q, &r, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(r.n, 2);
    cr_assert_str_eq(r.items[0].id, "Qwen/Qwen3-8B");
    cr_assert_eq(hub_log_count("author=Qwen", "sort=likes", "search=qwen", NULL), 1);
    qb_hub_search_result_clear(&r);
    q.author = NULL;
    q.sort = QB_HUB_SORT_TRENDING;
    cr_assert_eq(qb_hub_search(hub, &q, &r, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(hub_log_count("sort=trendingScore", NULL), 1);
    qb_hub_search_result_clear(&r);
    q.sort = QB_HUB_SORT_UPDATED;
    q.text = "";
    cr_assert_eq(qb_hub_search(hub, &q, &r, &err), QB_OK, "%s", err.msg);
    cr_assert_str_eq(r.items[0].id, "openai/gpt-oss-20b"); /* newest lastModified */
    cr_assert_geq(hub_log_count("sort=lastModified", NULL), 1);
    qb_hub_search_result_clear(&r);
    qb_hub_free(hub);
}

/* ---- info ----------------------------------------------------------------------------- */

Test(hub_api, info_reads_files_params_and_config)
{
    struct qb_hub_model_info m;
    struct qb_err err;
    hub = hub_test_open(NULL, 0);
    cr_assert_eq(qb_hub_model_info(hub, TINY, NULL, &m, &err), QB_OK, "%s", err.msg);
    cr_assert_str_eq(m.id, TINY);
    cr_assert_eq(strlen(m.sha), 40);
    cr_assert_str_eq(m.revision, "main");
    cr_assert_str_eq(m.license, "apache-2.0");
    cr_assert_str_eq(m.gated, "false");
    cr_assert_eq(m.parameters, 150010);
    cr_assert_str_eq(m.param_dtype, "BF16");
    cr_assert_eq(m.files.n, 9);
    int64_t total = 0;
    int lfs = 0;
    for (size_t i = 0; i < m.files.n; i++) {
        total += m.files.items[i].size;
        lfs += m.files.items[i].lfs_sha256 != NULL;
    }
    cr_assert_eq(m.total_size, total);
    cr_assert_eq(lfs, 3, "model.safetensors, pytorch_model.bin, original/consolidated.pth");
    cr_assert(m.have_config);
    cr_assert_str_eq(m.config.architecture, "LlamaForCausalLM");
    cr_assert_eq(m.config.layers, 4);
    cr_assert_eq(m.config.hidden, 256);
    cr_assert_eq(m.config.heads, 8);
    cr_assert_eq(m.config.kv_heads, 2);
    cr_assert_eq(m.config.vocab, 1000);
    cr_assert_eq(m.config.context, 2048);
    cr_assert(m.supported);
    cr_assert_str_eq(m.verdict, "llama (dense) is supported");
    qb_hub_model_info_clear(&m);

    cr_assert_eq(qb_hub_model_info(hub, "qb-test/moe", NULL, &m, &err), QB_OK, "%s", err.msg);
    cr_assert_not(m.supported);
    cr_assert_str_eq(m.verdict, "MoE (gpt-oss) not supported yet");
    cr_assert_eq(m.config.experts, 32);
    qb_hub_model_info_clear(&m);

    /* gated: the API answers, config.json does not (401) */
    cr_assert_eq(qb_hub_model_info(hub, "qb-test/gated", NULL, &m, &err), QB_OK, "%s", err.msg);
    cr_assert_str_eq(m.gated, "manual");
    cr_assert_not(m.have_config);
    cr_assert_str_eq(m.config.model_type, "llama");
    qb_hub_model_info_clear(&m);
    qb_hub_free(hub);
}

Test(hub_api, info_errors_have_their_own_messages)
{
    struct qb_hub_model_info m;
    struct qb_err err;
    hub = hub_test_open(NULL, 0);
    cr_assert_eq(qb_hub_model_info(hub, "qb-test/absent", NULL, &m, &err), QB_ERR_HTTP);
    cr_assert(strstr(err.msg, "repo qb-test/absent not found"), "%s", err.msg);
    cr_assert_eq(qb_hub_model_info(hub, TINY, "v9", &m, &err), QB_ERR_HTTP);
    cr_assert_str_eq(err.msg, "revision 'v9' not found in repo qb-test/tiny-llama");
    cr_assert_eq(qb_hub_model_info(hub, "qb-test/malformed", NULL, &m, &err), QB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "malformed JSON") && strstr(err.msg, "qb-test/malformed"), "%s",
              err.msg);
    cr_assert_eq(qb_hub_model_info(hub, "../x", NULL, &m, &err), QB_ERR_USAGE);
    qb_hub_free(hub);
}

/* ---- pull ----------------------------------------------------------------------------- */

static char *pull_ok(const char *repo, const char *rev, const struct qb_hub_pull_opts *o)
{
    char *snap = NULL;
    struct qb_err err;
    struct qb_hub_pull_opts def = {0};
    cr_assert_eq(qb_hub_pull(hub, repo, rev, o ? o : &def, &snap, &err), QB_OK, "%s", err.msg);
    cr_assert_not_null(snap);
    return snap;
}

static int count_incomplete(const char *repo_dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.incomplete' | wc -l", repo_dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

Test(hub_api, pull_writes_the_huggingface_cache_layout)
{
    struct qb_hub_model_info m;
    struct qb_err err;
    hub = hub_test_open("hf_qbtest_allowed", 0);
    cr_assert_eq(qb_hub_model_info(hub, TINY, NULL, &m, &err), QB_OK);
    char *snap = pull_ok(TINY, NULL, NULL);
    char repo_dir[512], path[1024], target[1024];
    snprintf(repo_dir, sizeof repo_dir, "%s/models--qb-test--tiny-llama", srv.cache);
    snprintf(path, sizeof path, "%s/snapshots/%s", repo_dir, m.sha);
    cr_assert_str_eq(snap, path);
    /* refs/main: the commit, no newline */
    snprintf(path, sizeof path, "%s/refs/main", repo_dir);
    char *ref = hub_slurp(path);
    cr_assert_str_eq(ref, m.sha);
    free(ref);
    /* default selection */
    static const char *const wanted[] = {
        "config.json",       "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "model.safetensors", "sub/dir/nested.json",    "README.md"};
    for (size_t i = 0; i < QB_ARRAY_LEN(wanted); i++) {
        snprintf(path, sizeof path, "%s/%s", snap, wanted[i]);
        ssize_t n = readlink(path, target, sizeof target - 1);
        cr_assert_gt(n, 0, "%s is not a symlink", wanted[i]);
        target[n] = '\0';
        const char *want_prefix = strchr(wanted[i], '/') ? "../../../../blobs/" : "../../blobs/";
        cr_assert(strncmp(target, want_prefix, strlen(want_prefix)) == 0, "%s -> %s", wanted[i],
                  target);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0, "%s does not resolve", wanted[i]);
        for (size_t j = 0; j < m.files.n; j++) {
            if (strcmp(m.files.items[j].path, wanted[i]) == 0)
                cr_assert_eq(st.st_size, m.files.items[j].size, "%s", wanted[i]);
            if (strcmp(m.files.items[j].path, wanted[i]) == 0 && m.files.items[j].lfs_sha256)
                cr_assert_str_eq(strrchr(target, '/') + 1, m.files.items[j].lfs_sha256);
        }
    }
    cr_assert_not(hub_path_exists("%s/pytorch_model.bin", snap));
    cr_assert_not(hub_path_exists("%s/original", snap));
    cr_assert_eq(count_incomplete(repo_dir), 0);
    /* the token went to the hub only, never to the CDN */
    cr_assert_gt(hub_log_count("\"server\": \"hub\"", "\"auth\": true", NULL), 0);
    cr_assert_eq(hub_log_count("\"server\": \"cdn\"", "\"auth\": true", NULL), 0);
    cr_assert_eq(hub_log_count("\"server\": \"cdn\"", NULL), 1);
    /* a second pull downloads nothing */
    free(snap);
    int gets = hub_log_count("\"method\": \"GET\"", "/resolve/", NULL);
    snap = pull_ok(TINY, NULL, NULL);
    cr_assert_eq(hub_log_count("\"server\": \"cdn\"", NULL), 1);
    cr_assert_eq(hub_log_count("\"method\": \"GET\"", "/resolve/", NULL), gets + 1,
                 "only the info's config.json");
    free(snap);
    qb_hub_model_info_clear(&m);
    qb_hub_free(hub);
}

Test(hub_api, pull_include_exclude_globs)
{
    hub = hub_test_open(NULL, 0);
    const char *inc[] = {"*.json"};
    const char *exc[] = {"tokenizer*"};
    struct qb_hub_pull_opts o = {.include = inc, .n_include = 1, .exclude = exc, .n_exclude = 1};
    char *snap = pull_ok(TINY, NULL, &o);
    cr_assert(hub_path_exists("%s/config.json", snap));
    cr_assert(hub_path_exists("%s/sub/dir/nested.json", snap), "'*' crosses '/'");
    cr_assert_not(hub_path_exists("%s/tokenizer.json", snap));
    cr_assert_not(hub_path_exists("%s/model.safetensors", snap));
    free(snap);
    const char *inc_bin[] = {"*.bin", "config.json"};
    struct qb_hub_pull_opts o2 = {.include = inc_bin, .n_include = 2};
    snap = pull_ok(TINY, NULL, &o2);
    cr_assert(hub_path_exists("%s/pytorch_model.bin", snap), "an include beats the defaults");
    free(snap);
    const char *none[] = {"*.nothing"};
    struct qb_hub_pull_opts o3 = {.include = none, .n_include = 1};
    struct qb_err err;
    cr_assert_eq(qb_hub_pull(hub, TINY, NULL, &o3, &snap, &err), QB_ERR_USAGE);
    qb_hub_free(hub);
}

Test(hub_api, pull_gated_leaves_nothing_behind)
{
    struct qb_err err;
    char *snap = NULL;
    struct qb_hub_pull_opts o = {0};
    char want[512];
    hub = hub_test_open(NULL, 0);
    cr_assert_eq(qb_hub_pull(hub, "qb-test/gated", NULL, &o, &snap, &err), QB_ERR_HTTP);
    snprintf(want, sizeof want,
             "repo qb-test/gated is gated: accept its licence at "
             "%s/qb-test/gated and provide a token (HF_TOKEN or huggingface-cli login)",
             srv.endpoint);
    cr_assert_str_eq(err.msg, want);
    cr_assert_null(snap);
    cr_assert_not(hub_path_exists("%s", srv.cache), "the cache must stay untouched");
    qb_hub_free(hub);

    hub = hub_test_open("hf_not_allowed", 0);
    cr_assert_eq(qb_hub_pull(hub, "qb-test/gated", NULL, &o, &snap, &err), QB_ERR_HTTP);
    cr_assert(strstr(err.msg, "gated and your token has no access"), "%s", err.msg);
    cr_assert_not(strstr(err.msg, "hf_not_allowed"), "the token is never printed");
    cr_assert_not(hub_path_exists("%s", srv.cache));
    qb_hub_free(hub);

    hub = hub_test_open("hf_qbtest_allowed", 0);
    snap = pull_ok("qb-test/gated", NULL, NULL);
    cr_assert(hub_path_exists("%s/model.safetensors", snap));
    free(snap);
    qb_hub_free(hub);
}

Test(hub_api, pull_refuses_a_sibling_named_dotdot)
{
    struct qb_err err;
    char *snap = NULL;
    struct qb_hub_pull_opts o = {0};
    hub = hub_test_open(NULL, 0);
    cr_assert_eq(qb_hub_pull(hub, "qb-test/evil", NULL, &o, &snap, &err), QB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "'../../evil'"), "%s", err.msg);
    cr_assert_not(hub_path_exists("%s", srv.cache));
    cr_assert_not(hub_path_exists("%s/evil", srv.dir));
    cr_assert_eq(hub_log_count("\"HEAD\"", "evil/resolve/", NULL), 0, "no file was even probed");
    qb_hub_free(hub);
}

Test(hub_api, pull_wrong_sha256_is_deleted_and_not_linked)
{
    struct qb_err err;
    char *snap = NULL;
    struct qb_hub_pull_opts o = {0};
    char repo_dir[512];
    hub = hub_test_open(NULL, 0);
    cr_assert_eq(qb_hub_pull(hub, "qb-test/bad-sha", NULL, &o, &snap, &err), QB_ERR_FORMAT);
    cr_assert(strstr(err.msg, "sha256 mismatch for 'model.safetensors'"), "%s", err.msg);
    snprintf(repo_dir, sizeof repo_dir, "%s/models--qb-test--bad-sha", srv.cache);
    /* the bad blob is gone (config.json's part may stay: it is resumable and good) */
    const char *sha = strstr(err.msg, "expected ") + 9;
    cr_assert_not(hub_path_exists("%s/blobs/%.64s.incomplete", repo_dir, sha));
    cr_assert_not(hub_path_exists("%s/blobs/%.64s", repo_dir, sha));
    cr_assert_not(hub_path_exists("%s/refs/main", repo_dir));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s/snapshots')\"", repo_dir);
    cr_assert_eq(system(cmd), 0, "no snapshot may be linked");
    qb_hub_free(hub);
}

Test(hub_api, pull_truncated_body_resumes_with_range)
{
    hub = hub_test_open(NULL, 0);
    char *snap = pull_ok("qb-test/truncated", NULL, NULL);
    cr_assert_eq(hub_log_count("\"server\": \"cdn\"", "\"range\": null", NULL), 1);
    cr_assert_eq(hub_log_count("\"server\": \"cdn\"", "\"range\": \"bytes=100000-\"", NULL), 1);
    struct stat st;
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", snap);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, 200000);
    free(snap);
    qb_hub_free(hub);
}

/* Copy `n` bytes of `from` into `to`. */
static void copy_prefix(const char *from, const char *to, size_t n)
{
    char *data = hub_slurp(from);
    FILE *f = fopen(to, "wb");
    cr_assert(data && f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    free(data);
}

Test(hub_api, pull_resumes_our_partial_file)
{
    struct qb_hub_model_info m;
    struct qb_err err;
    hub = hub_test_open(NULL, 0);
    cr_assert_eq(qb_hub_model_info(hub, TINY, NULL, &m, &err), QB_OK);
    const char *sha = NULL;
    for (size_t i = 0; i < m.files.n; i++) {
        if (strcmp(m.files.items[i].path, "model.safetensors") == 0)
            sha = m.files.items[i].lfs_sha256;
    }
    cr_assert_not_null(sha);
    char *snap = pull_ok(TINY, NULL, NULL);
    char blob[1024], part[1100];
    snprintf(blob, sizeof blob, "%s/models--qb-test--tiny-llama/blobs/%s", srv.cache, sha);
    snprintf(part, sizeof part, "%s.incomplete", blob);
    copy_prefix(blob, part, 120000);
    cr_assert_eq(unlink(blob), 0);
    free(snap);
    snap = pull_ok(TINY, NULL, NULL);
    cr_assert_eq(hub_log_count("\"server\": \"cdn\"", "\"range\": \"bytes=120000-\"", NULL), 1);
    cr_assert_not(hub_path_exists("%s", part));
    struct stat st;
    cr_assert_eq(stat(blob, &st), 0);
    cr_assert_eq(st.st_size, 300000);
    free(snap);
    qb_hub_model_info_clear(&m);
    qb_hub_free(hub);
}

Test(hub_api, pull_restarts_when_the_server_ignores_range)
{
    struct qb_hub_model_info m;
    struct qb_err err;
    hub = hub_test_open(NULL, 0);
    cr_assert_eq(qb_hub_model_info(hub, "qb-test/no-range", NULL, &m, &err), QB_OK);
    const char *sha = NULL;
    for (size_t i = 0; i < m.files.n; i++)
        sha = m.files.items[i].lfs_sha256 ? m.files.items[i].lfs_sha256 : sha;
    char dir[600], part[1100];
    snprintf(dir, sizeof dir, "%s/models--qb-test--no-range/blobs", srv.cache);
    hub_mkdir_p(dir);
    snprintf(part, sizeof part, "%s/%s.incomplete", dir, sha);
    FILE *f = fopen(part, "wb");
    fputs("garbage that is not the start of the file", f);
    fclose(f);
    char *snap = pull_ok("qb-test/no-range", NULL, NULL);
    cr_assert_eq(hub_log_count("\"server\": \"cdn\"", "\"range\": \"bytes=41-\"", NULL), 1);
    free(snap);
    qb_hub_model_info_clear(&m);
    qb_hub_free(hub);
}

Test(hub_api, pull_slow_body_reports_progress)
{
    struct qb_progress *p = qb_progress_create();
    struct qb_progress_snapshot s;
    hub = hub_test_open(NULL, 0);
    struct qb_hub_pull_opts o = {.progress = p};
    char *snap = pull_ok("qb-test/slow", NULL, &o);
    qb_progress_read(p, &s);
    cr_assert_eq(s.kind, QB_JOB_PULL);
    cr_assert(s.finished);
    cr_assert_eq(s.status, QB_OK);
    cr_assert_str_eq(s.unit, "bytes");
    cr_assert_eq(s.total, 64000 + 266);
    cr_assert_eq(s.done, s.total);
    cr_assert_gt(s.elapsed_s, 0.5, "the body took about a second");
    cr_assert_gt(s.seq, 3, "several publishes while bytes trickled in");
    free(snap);
    qb_progress_free(p);
    qb_hub_free(hub);
}

Test(hub_api, pull_stalled_body_fails_in_bounded_time)
{
    struct qb_hub_opts o;
    struct qb_err err;
    char *snap = NULL;
    hub_test_opts(&o);
    o.stall_timeout_s = 1;
    o.max_retries = 1;
    cr_assert_eq(qb_hub_open(&o, &hub, &err), QB_OK);
    struct qb_hub_pull_opts po = {0};
    double t0 = qb_now_seconds();
    cr_assert_eq(qb_hub_pull(hub, "qb-test/stall", NULL, &po, &snap, &err), QB_ERR_NETWORK);
    double dt = qb_now_seconds() - t0;
    cr_assert_lt(dt, 20, "took %.1f s", dt);
    cr_assert(strstr(err.msg, "model.safetensors"), "%s", err.msg);
    cr_assert_not(hub_path_exists("%s/models--qb-test--stall/refs/main", srv.cache));
    qb_hub_free(hub);
}

Test(hub_api, pull_honours_retry_after_within_its_cap)
{
    struct qb_err err;
    char *snap = NULL;
    struct qb_hub_pull_opts o = {0};
    hub = hub_test_open(NULL, 0);
    double t0 = qb_now_seconds();
    free(pull_ok("qb-test/rate-limited", NULL, NULL));
    cr_assert_geq(qb_now_seconds() - t0, 1.0, "Retry-After: 1 was honoured");
    t0 = qb_now_seconds();
    cr_assert_eq(qb_hub_pull(hub, "qb-test/rate-limited-long", NULL, &o, &snap, &err), QB_ERR_HTTP);
    cr_assert_lt(qb_now_seconds() - t0, 5, "a Retry-After over the cap is not waited for");
    cr_assert(strstr(err.msg, "rate limited by the Hub (HTTP 429)") && strstr(err.msg, "3600"),
              "%s", err.msg);
    cr_assert_not(hub_path_exists("%s/models--qb-test--rate-limited-long", srv.cache));
    qb_hub_free(hub);
}

Test(hub_api, pull_retries_a_503_and_reports_entry_not_found)
{
    struct qb_err err;
    char *snap = NULL;
    struct qb_hub_pull_opts o = {0};
    hub = hub_test_open(NULL, 0);
    free(pull_ok("qb-test/flaky", NULL, NULL));
    cr_assert_eq(hub_log_count("flaky/tree/", NULL), 2);
    cr_assert_eq(qb_hub_pull(hub, "qb-test/missing-entry", NULL, &o, &snap, &err), QB_ERR_HTTP);
    cr_assert_str_eq(err.msg, "file 'tokenizer.model' not found in repo qb-test/missing-entry at "
                              "revision main");
    cr_assert_not(hub_path_exists("%s/models--qb-test--missing-entry", srv.cache));
    cr_assert_eq(qb_hub_pull(hub, "qb-test/absent", NULL, &o, &snap, &err), QB_ERR_HTTP);
    cr_assert(strstr(err.msg, "not found"), "%s", err.msg);
    qb_hub_free(hub);
}

Test(hub_api, pull_paged_tree_and_commit_revision)
{
    struct qb_hub_model_info m;
    struct qb_err err;
    hub = hub_test_open(NULL, 0);
    char *snap = pull_ok("qb-test/paged-tree", NULL, NULL);
    cr_assert_gt(hub_log_count("paged-tree/tree/", "cursor=", NULL), 1);
    cr_assert(hub_path_exists("%s/c/d.json", snap));
    cr_assert(hub_path_exists("%s/e.txt", snap));
    free(snap);
    cr_assert_eq(qb_hub_model_info(hub, TINY, NULL, &m, &err), QB_OK);
    snap = pull_ok(TINY, m.sha, NULL);
    cr_assert_not(hub_path_exists("%s/models--qb-test--tiny-llama/refs/main", srv.cache),
                  "a commit revision writes no ref");
    free(snap);
    qb_hub_free(hub);
    /* offline, the commit resolves from snapshots/ */
    char arg[128], *dir = NULL;
    snprintf(arg, sizeof arg, "%s@%s", TINY, m.sha);
    hub = hub_test_open(NULL, 1);
    cr_assert_eq(qb_hub_resolve_model(hub, arg, 0, NULL, &dir, &err), QB_OK, "%s", err.msg);
    cr_assert(strstr(dir, m.sha));
    free(dir);
    cr_assert_eq(qb_hub_resolve_model(hub, TINY, 0, NULL, &dir, &err), QB_ERR_IO, "no refs/main");
    qb_hub_model_info_clear(&m);
    qb_hub_free(hub);
}

Test(hub_api, pull_refuses_a_blob_another_process_is_writing)
{
    struct qb_hub_model_info m;
    struct qb_err err;
    char *snap = NULL;
    hub = hub_test_open(NULL, 0);
    cr_assert_eq(qb_hub_model_info(hub, "qb-test/slow", NULL, &m, &err), QB_OK);
    const char *sha = NULL;
    for (size_t i = 0; i < m.files.n; i++)
        sha = m.files.items[i].lfs_sha256 ? m.files.items[i].lfs_sha256 : sha;
    char dir[600], lock[1100];
    snprintf(dir, sizeof dir, "%s/.locks/models--qb-test--slow", srv.cache);
    hub_mkdir_p(dir);
    snprintf(lock, sizeof lock, "%s/%s.lock", dir, sha);
    int fd = open(lock, O_RDWR | O_CREAT, 0644);
    cr_assert_eq(flock(fd, LOCK_EX), 0);
    /* flock locks belong to the open file description: a fork keeps it held */
    struct qb_hub_pull_opts o = {0};
    cr_assert_eq(qb_hub_pull(hub, "qb-test/slow", NULL, &o, &snap, &err), QB_ERR_IO);
    cr_assert(strstr(err.msg, "another process is downloading"), "%s", err.msg);
    close(fd);
    free(pull_ok("qb-test/slow", NULL, NULL));
    qb_hub_model_info_clear(&m);
    qb_hub_free(hub);
}

/* ---- list / resolve / offline --------------------------------------------------------- */

Test(hub_api, list_and_resolve)
{
    struct qb_hub_cached_list l;
    struct qb_err err;
    char *dir = NULL;
    hub = hub_test_open(NULL, 0);
    cr_assert_eq(qb_hub_list_cached(hub, &l, &err), QB_OK);
    cr_assert_eq(l.n, 0, "no cache folder yet");
    cr_assert_eq(qb_hub_resolve_model(hub, TINY, 0, NULL, &dir, &err), QB_ERR_IO);
    cr_assert(strstr(err.msg, "is not in the cache") && strstr(err.msg, "--pull"), "%s", err.msg);
    cr_assert_eq(qb_hub_resolve_model(hub, TINY, 1, NULL, &dir, &err), QB_OK, "%s", err.msg);
    cr_assert(hub_path_exists("%s/config.json", dir));
    free(dir);
    free(pull_ok("qb-test/moe", NULL, NULL));
    cr_assert_eq(qb_hub_resolve_model(hub, QB_TEST_DATA, 0, NULL, &dir, &err), QB_OK);
    cr_assert_str_eq(dir, QB_TEST_DATA, "a directory is taken as is");
    free(dir);
    cr_assert_eq(qb_hub_resolve_model(hub, "not a model", 0, NULL, &dir, &err), QB_ERR_USAGE);
    qb_hub_free(hub);

    hub = hub_test_open(NULL, 1);
    cr_assert_eq(qb_hub_list_cached(hub, &l, &err), QB_OK);
    cr_assert_eq(l.n, 2);
    cr_assert_str_eq(l.items[0].id, "qb-test/moe");
    cr_assert_not(l.items[0].supported);
    cr_assert_str_eq(l.items[0].verdict, "MoE (gpt-oss) not supported yet");
    cr_assert_str_eq(l.items[1].id, TINY);
    cr_assert_str_eq(l.items[1].revision, "main");
    cr_assert(l.items[1].supported);
    cr_assert_eq(l.items[1].n_files, 7);
    cr_assert_eq(l.items[1].size, 300000 + 266 + 39 + 44 + 27 + 17 + 35);
    qb_hub_cached_list_clear(&l);
    int before = hub_log_count("", NULL);
    cr_assert_eq(qb_hub_resolve_model(hub, TINY, 1, NULL, &dir, &err), QB_OK, "%s", err.msg);
    free(dir);
    cr_assert_eq(qb_hub_pull(hub, TINY, NULL, &(struct qb_hub_pull_opts){0}, &dir, &err), QB_OK,
                 "offline pull of a cached model answers its snapshot");
    cr_assert(hub_path_exists("%s/config.json", dir));
    free(dir);
    cr_assert_eq(qb_hub_resolve_model(hub, "qb-test/paged-tree", 1, NULL, &dir, &err), QB_ERR_IO);
    cr_assert(strstr(err.msg, "HF_HUB_OFFLINE"), "%s", err.msg);
    struct qb_hub_search_result r;
    struct qb_hub_search_query q = {.text = "x", .limit = 5};
    cr_assert_eq(qb_hub_search(hub, &q, &r, &err), QB_ERR_NETWORK);
    cr_assert(strstr(err.msg, "offline"), "%s", err.msg);
    cr_assert_eq(hub_log_count("", NULL), before, "offline means no request at all");
    qb_hub_free(hub);
}

/* ---- data sets ------------------------------------------------------------------------- */

static char *expected_wikitext(const char *split, int n)
{
    size_t cap = 1 << 20, len = 0;
    char *s = calloc(1, cap);
    for (int i = 0; i < n; i++) {
        if (i)
            len += (size_t)snprintf(s + len, cap - len, "\n\n");
        if (i % 3 == 0)
            len += (size_t)snprintf(s + len, cap - len, " = Heading %d = \n", i);
        else if (i % 3 == 1)
            len += (size_t)snprintf(s + len, cap - len, " %s text row %d , with @-@ marks . \n",
                                    split, i);
    }
    return s;
}

Test(hub_api, dataset_wikitext2_is_joined_cached_and_reused_offline)
{
    struct qb_err err;
    char *text = NULL;
    size_t len = 0;
    struct qb_hub_text_rows rows = {0};
    hub = hub_test_open(NULL, 0);
    cr_assert_eq(qb_hub_dataset_text(hub, "wikitext2", NULL, &text, &len, &rows, &err), QB_OK, "%s",
                 err.msg);
    char *want = expected_wikitext("test", 250);
    cr_assert_eq(len, strlen(want));
    cr_assert_str_eq(text, want);
    cr_assert_eq(rows.n, 250);
    cr_assert_str_eq(rows.rows[2], "");
    cr_assert_eq(hub_log_count("/rows?dataset=Salesforce%2Fwikitext", "config=wikitext-2-raw-v1",
                               "split=test", NULL),
                 3);
    cr_assert_eq(hub_log_count("/rows?", "offset=200&length=50", NULL), 1);
    free(text);
    free(want);
    qb_hub_text_rows_clear(&rows);
    qb_hub_free(hub);

    hub = hub_test_open(NULL, 1);
    int before = hub_log_count("", NULL);
    cr_assert_eq(qb_hub_dataset_text(hub, "wikitext2", "test", &text, &len, NULL, &err), QB_OK,
                 "%s", err.msg);
    want = expected_wikitext("test", 250);
    cr_assert_str_eq(text, want);
    cr_assert_eq(hub_log_count("", NULL), before);
    free(text);
    free(want);
    cr_assert_eq(qb_hub_dataset_text(hub, "wikitext2", "train", &text, &len, NULL, &err),
                 QB_ERR_NETWORK, "not cached, offline");
    qb_hub_free(hub);
}

Test(hub_api, dataset_c4_and_pileval_slices)
{
    struct qb_err err;
    char *text = NULL;
    size_t len = 0;
    struct qb_hub_text_rows rows = {0};
    hub = hub_test_open(NULL, 0);
    cr_assert_eq(qb_hub_dataset_text(hub, "c4", NULL, &text, &len, &rows, &err), QB_OK, "%s",
                 err.msg);
    cr_assert_eq(rows.n, 1100, "GPTQ's slice of 1100 documents");
    cr_assert_eq(strncmp(text, "c4 validation document 0. c4 validation document 1.", 51), 0);
    cr_assert(strstr(text, "document 1099.") && !strstr(text, "document 1100."));
    cr_assert_eq(hub_log_count("dataset=allenai%2Fc4", "config=en", "split=validation", NULL), 11);
    free(text);
    qb_hub_text_rows_clear(&rows);
    cr_assert_eq(qb_hub_dataset_text(hub, "pileval", NULL, &text, &len, &rows, &err), QB_OK, "%s",
                 err.msg);
    cr_assert_eq(rows.n, 150, "the split has only 150 rows here");
    cr_assert_eq(hub_log_count("dataset=mit-han-lab%2Fpile-val-backup", NULL), 2);
    cr_assert_eq(strncmp(text, "pile document 0\nsecond line\n\npile document 1", 44), 0);
    free(text);
    qb_hub_text_rows_clear(&rows);
    cr_assert_eq(qb_hub_dataset_text(hub, "imagenet", NULL, &text, &len, NULL, &err), QB_ERR_USAGE);
    cr_assert_eq(qb_hub_dataset_text(hub, "pileval", "test", &text, &len, NULL, &err),
                 QB_ERR_USAGE);
    qb_hub_free(hub);
}

Test(hub_api, pull_checks_free_space_and_follows_a_renamed_repo)
{
    struct qb_err err;
    char *snap = NULL;
    struct qb_hub_pull_opts o = {0};
    hub = hub_test_open(NULL, 0);
    cr_assert_eq(qb_hub_pull(hub, "qb-test/huge", NULL, &o, &snap, &err), QB_ERR_IO);
    cr_assert(strstr(err.msg, "not enough free disk space"), "%s", err.msg);
    cr_assert_not(hub_path_exists("%s", srv.cache), "checked before anything is written");
    cr_assert_eq(hub_log_count("\"server\": \"cdn\"", NULL), 0);
    /* 307 with a relative Location: followed for the API, the GETs and the HEADs */
    snap = pull_ok("qb-test/renamed", NULL, NULL);
    cr_assert(strstr(snap, "models--qb-test--renamed/snapshots/"), "%s", snap);
    cr_assert(hub_path_exists("%s/model.safetensors", snap));
    cr_assert_gt(hub_log_count("\"HEAD\"", "tiny-llama/resolve/", NULL), 0);
    free(snap);
    qb_hub_free(hub);
}

Test(hub_api, info_offline_answers_from_the_cache)
{
    struct qb_hub_model_info m;
    struct qb_err err;
    hub = hub_test_open(NULL, 1);
    cr_assert_eq(qb_hub_model_info(hub, TINY, NULL, &m, &err), QB_ERR_IO);
    cr_assert(strstr(err.msg, "not in the cache"), "%s", err.msg);
    qb_hub_free(hub);
    hub = hub_test_open(NULL, 0);
    free(pull_ok(TINY, NULL, NULL));
    qb_hub_free(hub);
    hub = hub_test_open(NULL, 1);
    int before = hub_log_count("", NULL);
    cr_assert_eq(qb_hub_model_info(hub, TINY, NULL, &m, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(hub_log_count("", NULL), before);
    cr_assert_eq(m.files.n, 7);
    cr_assert_str_eq(m.files.items[0].path, "README.md");
    cr_assert_str_eq(m.files.items[6].path, "tokenizer_config.json");
    cr_assert_eq(m.total_size, 300000 + 266 + 39 + 44 + 27 + 17 + 35);
    cr_assert(m.have_config);
    cr_assert_eq(m.config.kv_heads, 2);
    cr_assert(m.supported);
    cr_assert_eq(strlen(m.sha), 40);
    cr_assert_null(m.license);
    cr_assert_eq(m.downloads, -1);
    qb_hub_model_info_clear(&m);
    qb_hub_free(hub);
}

/* Listener: cancel as soon as some bytes of the slow body arrived. */
static void cancel_when_started(void *ctx, const struct qb_progress *p)
{
    struct qb_progress_snapshot s;
    (void)ctx;
    qb_progress_read(p, &s);
    if (s.running && s.done > 300)
        qb_progress_cancel((struct qb_progress *)p);
}

Test(hub_api, pull_cancel_keeps_the_partial_and_links_nothing)
{
    struct qb_err err;
    char *snap = NULL;
    struct qb_progress *p = qb_progress_create();
    qb_progress_set_listener(p, cancel_when_started, NULL);
    hub = hub_test_open(NULL, 0);
    struct qb_hub_pull_opts o = {.progress = p};
    cr_assert_eq(qb_hub_pull(hub, "qb-test/slow", NULL, &o, &snap, &err), QB_ERR_CANCELLED);
    cr_assert_null(snap);
    cr_assert_not(hub_path_exists("%s/models--qb-test--slow/refs/main", srv.cache));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s/models--qb-test--slow/snapshots')\"",
             srv.cache);
    cr_assert_eq(system(cmd), 0, "nothing linked");
    struct qb_progress_snapshot s;
    qb_progress_read(p, &s);
    cr_assert(s.finished);
    cr_assert_eq(s.status, QB_ERR_CANCELLED);
    /* the next pull resumes the partial file */
    qb_progress_set_listener(p, NULL, NULL);
    free(pull_ok("qb-test/slow", NULL, &o));
    cr_assert_eq(hub_log_count("\"server\": \"cdn\"", "\"range\": \"bytes=", NULL), 1);
    qb_progress_free(p);
    qb_hub_free(hub);
}
