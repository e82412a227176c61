/*
 * test_hub_cli.c - `quantbench search/info/pull/list` (QB_BINARY) against
 * tests/hub_server.py: JSON shapes (null where the Hub gives nothing), exit
 * codes, the gated/404/429 messages, cache location from HF_HUB_CACHE /
 * HF_HOME / XDG_CACHE_HOME, the token file, offline mode, and that the token
 * never appears in any output or any cached file.
 */
#include <cjson/cJSON.h>

#include "test_hub_fixture.h"

TestSuite(hub_cli, .init = hub_srv_start, .fini = hub_srv_stop, .timeout = 90);

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ENV(...) ((const char *const[]){__VA_ARGS__, NULL})

static cJSON *parse_out(const struct cli_result *r)
{
    cJSON *j = cJSON_Parse(r->out);
    cr_assert_not_null(j, "stdout is not one JSON document: '%s' (stderr '%s')", r->out, r->err);
    return j;
}

static void assert_keys(const cJSON *o, const char *const *keys, size_t n)
{
    size_t count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, o) count++;
    cr_assert_eq(count, n, "object has %zu keys, expected %zu", count, n);
    for (size_t i = 0; i < n; i++)
        cr_assert(cJSON_HasObjectItem(o, keys[i]), "missing key '%s'", keys[i]);
}

Test(hub_cli, search_json_shape)
{
    struct cli_result r = hub_run_cli(NULL, ARGV("search", "", "--limit", "3", "--json"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cJSON *j = parse_out(&r);
    cr_assert(cJSON_IsArray(j));
    cr_assert_eq(cJSON_GetArraySize(j), 3);
    static const char *const keys[] = {"id",    "parameters",    "downloads", "likes",
                                       "gated", "last_modified", "library",   "pipeline_tag"};
    const cJSON *e;
    cJSON_ArrayForEach(e, j) assert_keys(e, keys, QB_ARRAY_LEN(keys));
    const cJSON *first = cJSON_GetArrayItem(j, 0), *third = cJSON_GetArrayItem(j, 2);
    cr_assert_str_eq(cJSON_GetObjectItem(first, "id")->valuestring, "meta-llama/Llama-3.1-8B");
    cr_assert_str_eq(cJSON_GetObjectItem(first, "gated")->valuestring, "manual");
    cr_assert_eq(cJSON_GetObjectItem(first, "parameters")->valuedouble, 8030261248.0);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(third, "gated")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(third, "parameters")));
    cJSON_Delete(j);
    cli_result_free(&r);

    r = hub_run_cli(NULL, ARGV("search", "qwen", "--author", "Qwen", "--sort", "likes"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "Qwen/Qwen3-8B") && strstr(r.out, "8.19B"), "%s", r.out);
    cr_assert_not(strstr(r.out, "gpt-oss"));
    cli_result_free(&r);
}

Test(hub_cli, usage_errors_and_help)
{
    const char *const *bad[] = {
        ARGV("search", "x", "--sort", "stars"),
        ARGV("search", "x", "--limit", "0"),
        ARGV("search"),
        ARGV("info"),
        ARGV("info", "not-a-repo"),
        ARGV("pull", "a/b/c"),
        ARGV("pull", "a/b", "--bogus"),
        ARGV("list", "extra"),
    };
    for (size_t i = 0; i < QB_ARRAY_LEN(bad); i++) {
        struct cli_result r = hub_run_cli(NULL, bad[i]);
        cr_assert_eq(r.rc, 2, "case %zu: rc %d, stderr %s", i, r.rc, r.err);
        cr_assert(strstr(r.err, "try 'quantbench"), "%s", r.err);
        cli_result_free(&r);
    }
    static const char *const cmds[] = {"search", "info", "pull", "list"};
    for (size_t i = 0; i < QB_ARRAY_LEN(cmds); i++) {
        struct cli_result r = hub_run_cli(NULL, ARGV(cmds[i], "--help"));
        cr_assert_eq(r.rc, 0);
        cr_assert(strstr(r.out, "usage: quantbench"), "%s", r.out);
        cli_result_free(&r);
    }
}

Test(hub_cli, info_json_and_text)
{
    struct cli_result r = hub_run_cli(NULL, ARGV("info", "qb-test/tiny-llama", "--json"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cJSON *j = parse_out(&r);
    static const char *const keys[] = {
        "id",           "revision",      "sha",       "gated",     "license",    "library",
        "pipeline_tag", "last_modified", "downloads", "likes",     "parameters", "dtype",
        "total_size",   "files",         "config",    "supported", "reason"};
    assert_keys(j, keys, QB_ARRAY_LEN(keys));
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "supported")));
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "gated")));
    cr_assert_str_eq(cJSON_GetObjectItem(j, "dtype")->valuestring, "BF16");
    const cJSON *cfg = cJSON_GetObjectItem(j, "config");
    cr_assert_eq(cJSON_GetObjectItem(cfg, "kv_heads")->valuedouble, 2);
    cr_assert_eq(cJSON_GetObjectItem(cfg, "context")->valuedouble, 2048);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(cfg, "experts")));
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "files")), 9);
    cJSON_Delete(j);
    cli_result_free(&r);

    r = hub_run_cli(NULL, ARGV("info", "qb-test/moe", "--json"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    j = parse_out(&r);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "supported")));
    cr_assert_str_eq(cJSON_GetObjectItem(j, "reason")->valuestring,
                     "MoE (gpt-oss) not supported yet");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "parameters")), "no safetensors");
    cJSON_Delete(j);
    cli_result_free(&r);

    r = hub_run_cli(NULL, ARGV("info", "qb-test/tiny-llama"));
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "kv heads      2") && strstr(r.out, "(skipped by pull by default)"),
              "%s", r.out);
    cli_result_free(&r);

    r = hub_run_cli(NULL, ARGV("info", "qb-test/absent"));
    cr_assert_eq(r.rc, 1);
    cr_assert(strncmp(r.err, "quantbench: repo qb-test/absent not found", 41) == 0, "%s", r.err);
    cr_assert_str_eq(r.out, "");
    cli_result_free(&r);
}

/* grep -r for the token in every file under dir (symlinks followed once) */
static int token_in_files(const char *dir, const char *token)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "grep -rqF '%s' '%s'", token, dir);
    return system(cmd) == 0;
}

Test(hub_cli, pull_then_list_and_the_token_stays_secret)
{
    const char *tok = "hf_qbtest_allowed";
    struct cli_result r =
        hub_run_cli(ENV("HF_TOKEN=hf_qbtest_allowed"), ARGV("pull", "qb-test/gated"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    char want[512];
    snprintf(want, sizeof want, "%s/models--qb-test--gated/snapshots/", srv.cache);
    cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
    cr_assert_not(strstr(r.out, tok) || strstr(r.err, tok));
    cli_result_free(&r);
    cr_assert_not(token_in_files(srv.cache, tok), "the token must not be stored in the cache");

    r = hub_run_cli(ENV("HF_TOKEN=hf_qbtest_allowed"), ARGV("list", "--json"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cJSON *j = parse_out(&r);
    cr_assert_eq(cJSON_GetArraySize(j), 1);
    const cJSON *m = cJSON_GetArrayItem(j, 0);
    static const char *const keys[] = {"id",    "revision",  "commit", "size",
                                       "files", "supported", "reason", "path"};
    assert_keys(m, keys, QB_ARRAY_LEN(keys));
    cr_assert_str_eq(cJSON_GetObjectItem(m, "id")->valuestring, "qb-test/gated");
    cr_assert_str_eq(cJSON_GetObjectItem(m, "revision")->valuestring, "main");
    cr_assert_eq(cJSON_GetObjectItem(m, "size")->valuedouble, 50000 + 266);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(m, "supported")));
    cJSON_Delete(j);
    cr_assert_not(strstr(r.out, tok) || strstr(r.err, tok));
    cli_result_free(&r);

    r = hub_run_cli(ENV("HF_HUB_OFFLINE=1"), ARGV("list"));
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "qb-test/gated") && strstr(r.out, "supported"), "%s", r.out);
    cli_result_free(&r);
}

Test(hub_cli, gated_404_429_and_offline_messages)
{
    char want[512];
    struct cli_result r = hub_run_cli(NULL, ARGV("pull", "qb-test/gated"));
    cr_assert_eq(r.rc, 1);
    snprintf(want, sizeof want,
             "quantbench: repo qb-test/gated is gated: accept its licence at "
             "%s/qb-test/gated and provide a token (HF_TOKEN or huggingface-cli login)\n",
             srv.endpoint);
    cr_assert_str_eq(r.err, want);
    cr_assert_str_eq(r.out, "");
    cr_assert_not(hub_path_exists("%s", srv.cache), "nothing left behind");
    cli_result_free(&r);

    r = hub_run_cli(NULL, ARGV("pull", "qb-test/tiny-llama@nope"));
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, "quantbench: revision 'nope' not found in repo qb-test/tiny-llama\n");
    cli_result_free(&r);

    r = hub_run_cli(NULL, ARGV("pull", "qb-test/rate-limited-long"));
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "rate limited by the Hub (HTTP 429)"), "%s", r.err);
    cli_result_free(&r);

    r = hub_run_cli(ENV("HF_HUB_OFFLINE=1"), ARGV("pull", "qb-test/tiny-llama"));
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "offline"), "%s", r.err);
    cli_result_free(&r);

    r = hub_run_cli(ENV("HF_ENDPOINT=http://127.0.0.1:1"), ARGV("search", "x"));
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "cannot reach the Hub at http://127.0.0.1:1"), "%s", r.err);
    cli_result_free(&r);
}

Test(hub_cli, cache_location_and_token_file)
{
    char home[256], path[512];
    snprintf(home, sizeof home, "%s/hfhome", srv.dir);
    hub_mkdir_p(home);
    snprintf(path, sizeof path, "%s/token", home);
    FILE *f = fopen(path, "w");
    fputs("hf_qbtest_allowed\n", f);
    fclose(f);
    /* no HF_HUB_CACHE: $HF_HOME/hub, token from $HF_HOME/token */
    struct cli_result r =
        hub_run_cli(ENV("HF_HUB_CACHE"), ARGV("pull", "qb-test/gated", "--include", "*.json"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(hub_path_exists("%s/hub/models--qb-test--gated/refs/main", home));
    cli_result_free(&r);
    /* no HF_HOME either: $XDG_CACHE_HOME/huggingface/hub */
    r = hub_run_cli(ENV("HF_HUB_CACHE", "HF_HOME"), ARGV("pull", "qb-test/moe"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(hub_path_exists("%s/xdg/huggingface/hub/models--qb-test--moe/refs/main", srv.dir));
    cli_result_free(&r);
    /* HF_TOKEN_PATH elsewhere */
    snprintf(path, sizeof path, "%s/elsewhere-token", srv.dir);
    f = fopen(path, "w");
    fputs("hf_qbtest_allowed", f);
    fclose(f);
    char env[600];
    snprintf(env, sizeof env, "HF_TOKEN_PATH=%s", path);
    r = hub_run_cli(ENV(env, "HF_HOME"), ARGV("pull", "qb-test/gated", "--include", "config.json"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cli_result_free(&r);
}
