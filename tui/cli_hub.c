/*
 * cli_hub.c - the Hub commands: search, info, pull, list.
 *
 * Thin wrappers over hub/hub.h (the dashboard uses the same API): parse the
 * options, open a client from the environment, print a table (or exactly one
 * JSON document with --json, null where the Hub gave nothing), and map the
 * status to the exit code (0 ok, 1 runtime error, 2 usage). Pull draws a
 * progress bar on stderr when stderr is a terminal.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "hub/hub.h"

/* ---- shared helpers ---------------------------------------------------------------- */

static int fail(struct qb_err *err)
{
    qb_err_print(err);
    return qb_status_exit_code(err->status);
}

static int print_json(cJSON *doc)
{
    char *s = doc ? cJSON_Print(doc) : NULL;
    cJSON_Delete(doc);
    if (!s) {
        fprintf(stderr, "quantbench: out of memory printing JSON\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

static void add_count(cJSON *o, const char *key, int64_t v)
{
    if (v < 0)
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, (double)v);
}

static void add_str(cJSON *o, const char *key, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

/* gated: false / "auto" / "manual" as the Hub says; null when unknown */
static void add_gated(cJSON *o, const char *gated)
{
    if (!gated)
        cJSON_AddNullToObject(o, "gated");
    else if (strcmp(gated, "false") == 0 || strcmp(gated, "true") == 0)
        cJSON_AddBoolToObject(o, "gated", gated[0] == 't');
    else
        cJSON_AddStringToObject(o, "gated", gated);
}

/* 8030261248 -> "8.03B"; -1 -> "-" */
static const char *human_count(int64_t v, char *buf, size_t n)
{
    if (v < 0)
        snprintf(buf, n, "-");
    else if (v >= 1000000000)
        snprintf(buf, n, "%.2fB", (double)v / 1e9);
    else if (v >= 1000000)
        snprintf(buf, n, "%.1fM", (double)v / 1e6);
    else if (v >= 10000)
        snprintf(buf, n, "%.1fk", (double)v / 1e3);
    else
        snprintf(buf, n, "%lld", (long long)v);
    return buf;
}

static const char *human_bytes(int64_t v, char *buf, size_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double d = (double)v;
    int u = 0;
    if (v < 0) {
        snprintf(buf, n, "-");
        return buf;
    }
    while (d >= 1024 && u < 4) {
        d /= 1024;
        u++;
    }
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", d, units[u]);
    return buf;
}

static int open_hub(struct qb_hub **hub, struct qb_err *err)
{
    return qb_hub_open_env(hub, err) == QB_OK ? 0 : fail(err);
}

/* ---- search ------------------------------------------------------------------------------ */

static void search_help(void)
{
    printf("usage: quantbench search QUERY [--author A] [--sort downloads|likes|trending|updated]\n"
           "                         [--limit N] [--json]\n\n"
           "Text-generation models on the Hugging Face Hub whose id contains QUERY: id,\n"
           "parameters, downloads (30 days), likes, gated, last modified, library.\n\n"
           "  --author A   only models of this user or organisation\n"
           "  --sort KEY   downloads (default), likes, trending or updated\n"
           "  --limit N    at most N models, 1..1000 (default 20)\n"
           "  --json       a JSON array of {id, parameters, downloads, likes, gated,\n"
           "               last_modified, library, pipeline_tag} on stdout\n\n"
           "Environment: HF_ENDPOINT, HF_TOKEN (see quantbench(1)).\n");
}

static int search_json(const struct qb_hub_search_result *r)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < r->n; i++) {
        const struct qb_hub_model_summary *m = &r->items[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        add_str(o, "id", m->id);
        add_count(o, "parameters", m->parameters);
        add_count(o, "downloads", m->downloads);
        add_count(o, "likes", m->likes);
        add_gated(o, m->gated);
        add_str(o, "last_modified", m->last_modified);
        add_str(o, "library", m->library);
        add_str(o, "pipeline_tag", m->pipeline_tag);
        cJSON_AddItemToArray(arr, o);
    }
    return print_json(arr);
}

static void search_table(const struct qb_hub_search_result *r)
{
    char a[32], b[32], c[32];
    printf("%-44s %9s %10s %7s %-7s %-10s %s\n", "ID", "PARAMS", "DOWNLOADS", "LIKES", "GATED",
           "MODIFIED", "LIBRARY");
    for (size_t i = 0; i < r->n; i++) {
        const struct qb_hub_model_summary *m = &r->items[i];
        printf("%-44s %9s %10s %7s %-7s %-10.10s %s\n", m->id,
               human_count(m->parameters, a, sizeof a), human_count(m->downloads, b, sizeof b),
               human_count(m->likes, c, sizeof c),
               !m->gated                        ? "-"
               : strcmp(m->gated, "false") == 0 ? "no"
                                                : m->gated,
               m->last_modified ? m->last_modified : "-", m->library ? m->library : "-");
    }
    if (r->n == 0)
        printf("(no model found)\n");
}

int qb_cmd_search(int argc, char **argv)
{
    static const struct option opts[] = {
        {"author", required_argument, 0, 'a'}, {"sort", required_argument, 0, 's'},
        {"limit", required_argument, 0, 'n'},  {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    struct qb_hub_search_query q = {.sort = QB_HUB_SORT_DOWNLOADS, .limit = 20};
    int json = 0, c, rc = 0;
    long limit;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            q.author = optarg;
            break;
        case 's':
            if (qb_hub_sort_parse(optarg, &q.sort) != 0)
                return qb_cli_usage_error("search",
                                          "--sort must be downloads, likes, trending "
                                          "or updated, not '%s'",
                                          optarg);
            break;
        case 'n':
            if (qb_cli_parse_int(optarg, 1, 1000, &limit) != 0)
                return qb_cli_usage_error("search", "--limit must be 1..1000, not '%s'", optarg);
            q.limit = (int)limit;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            search_help();
            return 0;
        default:
            return qb_cli_usage_error("search", "unknown option");
        }
    }
    if (optind != argc - 1)
        return qb_cli_usage_error("search", "expected one QUERY");
    q.text = argv[optind];
    struct qb_err err;
    struct qb_hub *hub = NULL;
    struct qb_hub_search_result r = {0};
    qb_err_clear(&err);
    if ((rc = open_hub(&hub, &err)) != 0)
        return rc;
    if (qb_hub_search(hub, &q, &r, &err) != QB_OK)
        rc = fail(&err);
    else if (json)
        rc = search_json(&r);
    else
        search_table(&r);
    qb_hub_search_result_clear(&r);
    qb_hub_free(hub);
    return rc;
}

/* ---- info ----------------------------------------------------------------------------------- */

static void info_help(void)
{
    printf("usage: quantbench info REPO[@REV] [--json]\n\n"
           "Files and sizes, safetensors parameter count and dtype, config summary\n"
           "(architecture, layers, hidden, heads, KV heads, vocab, context), licence,\n"
           "gated state, and whether quantbench's engine can run the model (and why not).\n\n"
           "  --json   one JSON object on stdout\n");
}

static cJSON *config_json(const struct qb_hub_model_info *m)
{
    const struct qb_hub_config_summary *c = &m->config;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    add_str(o, "architecture", c->architecture);
    add_str(o, "model_type", c->model_type);
    add_count(o, "layers", c->layers);
    add_count(o, "hidden", c->hidden);
    add_count(o, "heads", c->heads);
    add_count(o, "kv_heads", c->kv_heads);
    add_count(o, "vocab", c->vocab);
    add_count(o, "context", c->context);
    add_count(o, "experts", c->experts);
    add_str(o, "quant_method", c->quant_method);
    return o;
}

static int info_json(const struct qb_hub_model_info *m)
{
    cJSON *o = cJSON_CreateObject(), *files = cJSON_CreateArray();
    if (!o || !files) {
        cJSON_Delete(o);
        cJSON_Delete(files);
        return print_json(NULL);
    }
    add_str(o, "id", m->id);
    add_str(o, "revision", m->revision);
    add_str(o, "sha", m->sha);
    add_gated(o, m->gated);
    add_str(o, "license", m->license);
    add_str(o, "library", m->library);
    add_str(o, "pipeline_tag", m->pipeline_tag);
    add_str(o, "last_modified", m->last_modified);
    add_count(o, "downloads", m->downloads);
    add_count(o, "likes", m->likes);
    add_count(o, "parameters", m->parameters);
    add_str(o, "dtype", m->param_dtype);
    add_count(o, "total_size", m->total_size);
    for (size_t i = 0; i < m->files.n; i++) {
        cJSON *f = cJSON_CreateObject();
        if (!f)
            break;
        add_str(f, "path", m->files.items[i].path);
        add_count(f, "size", m->files.items[i].size);
        cJSON_AddBoolToObject(f, "lfs", m->files.items[i].lfs_sha256 != NULL);
        cJSON_AddItemToArray(files, f);
    }
    cJSON_AddItemToObject(o, "files", files);
    if (m->have_config || m->config.model_type)
        cJSON_AddItemToObject(o, "config", config_json(m));
    else
        cJSON_AddNullToObject(o, "config");
    cJSON_AddBoolToObject(o, "supported", m->supported);
    add_str(o, "reason", m->verdict);
    return print_json(o);
}

static void print_num_row(const char *label, int64_t v)
{
    if (v >= 0)
        printf("  %-13s %lld\n", label, (long long)v);
    else
        printf("  %-13s -\n", label);
}

static void info_text(const struct qb_hub_model_info *m)
{
    char a[32], b[32];
    printf("%s @ %s (%s)\n", m->id, m->revision, m->sha);
    printf("  license       %s\n", m->license ? m->license : "-");
    printf("  gated         %s\n", !m->gated                        ? "-"
                                   : strcmp(m->gated, "false") == 0 ? "no"
                                                                    : m->gated);
    printf("  parameters    %s%s%s%s\n", human_count(m->parameters, a, sizeof a),
           m->param_dtype ? " (" : "", m->param_dtype ? m->param_dtype : "",
           m->param_dtype ? ")" : "");
    printf("  downloads     %s, %s likes\n", human_count(m->downloads, a, sizeof a),
           human_count(m->likes, b, sizeof b));
    const struct qb_hub_config_summary *c = &m->config;
    printf("config%s:\n", m->have_config ? "" : " (config.json not readable; from the API)");
    printf("  architecture  %s (%s)\n", c->architecture ? c->architecture : "-",
           c->model_type ? c->model_type : "-");
    print_num_row("layers", c->layers);
    print_num_row("hidden", c->hidden);
    print_num_row("heads", c->heads);
    print_num_row("kv heads", c->kv_heads);
    print_num_row("vocab", c->vocab);
    print_num_row("context", c->context);
    printf("engine: %s%s\n", m->supported ? "supported: " : "not supported: ", m->verdict);
    printf("files (%zu, %s):\n", m->files.n, human_bytes(m->total_size, a, sizeof a));
    for (size_t i = 0; i < m->files.n; i++) {
        const struct qb_hub_file *f = &m->files.items[i];
        printf("  %10s  %s%s\n", human_bytes(f->size, a, sizeof a), f->path,
               qb_hub_file_selected(NULL, f->path) ? "" : "  (skipped by pull by default)");
    }
}

int qb_cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, c, rc = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j') {
            json = 1;
        } else if (c == 'h') {
            info_help();
            return 0;
        } else {
            return qb_cli_usage_error("info", "unknown option");
        }
    }
    if (optind != argc - 1)
        return qb_cli_usage_error("info", "expected one REPO[@REV]");
    struct qb_err err;
    char *repo = NULL, *rev = NULL;
    struct qb_hub *hub = NULL;
    struct qb_hub_model_info info;
    memset(&info, 0, sizeof info);
    qb_err_clear(&err);
    if (qb_hub_parse_repo_arg(argv[optind], &repo, &rev, &err) != QB_OK)
        return qb_cli_usage_error("info", "%s", err.msg);
    if ((rc = open_hub(&hub, &err)) != 0)
        goto out;
    if (qb_hub_model_info(hub, repo, rev, &info, &err) != QB_OK)
        rc = fail(&err);
    else if (json)
        rc = info_json(&info);
    else
        info_text(&info);
out:
    qb_hub_model_info_clear(&info);
    qb_hub_free(hub);
    free(repo);
    free(rev);
    return rc;
}

/* ---- pull ------------------------------------------------------------------------------------ */

static void pull_help(void)
{
    printf("usage: quantbench pull REPO[@REV] [--include GLOB]... [--exclude GLOB]...\n\n"
           "Download a model into the Hugging Face cache shared with huggingface-cli and\n"
           "transformers (HF_HUB_CACHE, default $HF_HOME/hub, HF_HOME default\n"
           "~/.cache/huggingface). By default every file except other weight formats\n"
           "(*.bin *.pt *.pth *.h5 *.msgpack *.onnx *.gguf original/). Interrupted\n"
           "downloads resume; LFS files are checked against their sha256. Prints the\n"
           "snapshot folder on stdout.\n\n"
           "  --include GLOB   only files matching GLOB (repeatable; '*' crosses '/';\n"
           "                   an include also overrides the default excludes)\n"
           "  --exclude GLOB   skip files matching GLOB (repeatable)\n\n"
           "Environment: HF_ENDPOINT, HF_TOKEN, HF_TOKEN_PATH, HF_HOME, HF_HUB_CACHE,\n"
           "HF_HUB_OFFLINE.\n");
}

/* Listener: one "\r[####    ] 42% 1.2 GiB/3.0 GiB 85.1 MiB/s ETA 21s" line. */
static void draw_bar(void *ctx, const struct qb_progress *p)
{
    struct qb_progress_snapshot s;
    char done[32], total[32], rate[32];
    char bar[31];
    (void)ctx;
    qb_progress_read(p, &s);
    if (s.total <= 0)
        return;
    int fill = (int)(s.fraction * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : ' ';
    bar[30] = '\0';
    char eta[32];
    if (s.eta_s < 0)
        snprintf(eta, sizeof eta, "?");
    else
        snprintf(eta, sizeof eta, "%.0fs", s.eta_s);
    fprintf(stderr, "\r[%s] %3.0f%% %s/%s %s/s ETA %s   ", bar, s.fraction * 100,
            human_bytes(s.done, done, sizeof done), human_bytes(s.total, total, sizeof total),
            human_bytes((int64_t)s.rate, rate, sizeof rate), eta);
    if (s.finished)
        fputc('\n', stderr);
}

int qb_cmd_pull(int argc, char **argv)
{
    static const struct option opts[] = {{"include", required_argument, 0, 'i'},
                                         {"exclude", required_argument, 0, 'x'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char **inc = qb_calloc_array((size_t)argc, sizeof *inc);
    const char **exc = qb_calloc_array((size_t)argc, sizeof *exc);
    struct qb_hub_pull_opts po = {.include = inc, .exclude = exc};
    char *repo = NULL, *rev = NULL, *snap = NULL;
    struct qb_hub *hub = NULL;
    struct qb_progress *prog = NULL;
    struct qb_err err;
    int c, rc = 0;
    qb_err_clear(&err);
    if (!inc || !exc) {
        rc = 1;
        goto out;
    }
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'i') {
            inc[po.n_include++] = optarg;
        } else if (c == 'x') {
            exc[po.n_exclude++] = optarg;
        } else if (c == 'h') {
            pull_help();
            goto out;
        } else {
            rc = qb_cli_usage_error("pull", "unknown option");
            goto out;
        }
    }
    if (optind != argc - 1) {
        rc = qb_cli_usage_error("pull", "expected one REPO[@REV]");
        goto out;
    }
    if (qb_hub_parse_repo_arg(argv[optind], &repo, &rev, &err) != QB_OK) {
        rc = qb_cli_usage_error("pull", "%s", err.msg);
        goto out;
    }
    if ((rc = open_hub(&hub, &err)) != 0)
        goto out;
    prog = qb_progress_create();
    if (prog && isatty(STDERR_FILENO))
        qb_progress_set_listener(prog, draw_bar, NULL);
    po.progress = prog;
    if (qb_hub_pull(hub, repo, rev, &po, &snap, &err) != QB_OK) {
        rc = fail(&err);
        goto out;
    }
    struct qb_progress_snapshot s;
    char size[32];
    qb_progress_read(prog, &s);
    fprintf(stderr, "pulled %s@%s (%s) into %s\n", repo, rev ? rev : "main",
            human_bytes(s.total, size, sizeof size), qb_hub_cache_dir(hub));
    printf("%s\n", snap);
out:
    free(inc);
    free(exc);
    free(repo);
    free(rev);
    free(snap);
    qb_progress_free(prog);
    qb_hub_free(hub);
    return rc;
}

/* ---- list -------------------------------------------------------------------------------------
 */

static void list_help(void)
{
    printf("usage: quantbench list [--json]\n\n"
           "Models in the Hugging Face cache (HF_HUB_CACHE): id, revision, size on disk,\n"
           "files, and whether quantbench's engine can run them.\n\n"
           "  --json   a JSON array of {id, revision, commit, size, files, supported,\n"
           "           reason, path} on stdout\n");
}

int qb_cmd_list(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, c, rc = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j') {
            json = 1;
        } else if (c == 'h') {
            list_help();
            return 0;
        } else {
            return qb_cli_usage_error("list", "unknown option");
        }
    }
    if (optind != argc)
        return qb_cli_usage_error("list", "unexpected argument '%s'", argv[optind]);
    struct qb_err err;
    struct qb_hub *hub = NULL;
    struct qb_hub_cached_list l = {0};
    qb_err_clear(&err);
    if ((rc = open_hub(&hub, &err)) != 0)
        return rc;
    if (qb_hub_list_cached(hub, &l, &err) != QB_OK) {
        rc = fail(&err);
    } else if (json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; arr && i < l.n; i++) {
            const struct qb_hub_cached_model *m = &l.items[i];
            cJSON *o = cJSON_CreateObject();
            if (!o)
                break;
            add_str(o, "id", m->id);
            add_str(o, "revision", m->revision);
            add_str(o, "commit", m->commit);
            add_count(o, "size", m->size);
            add_count(o, "files", m->n_files);
            cJSON_AddBoolToObject(o, "supported", m->supported);
            add_str(o, "reason", m->verdict);
            add_str(o, "path", m->path);
            cJSON_AddItemToArray(arr, o);
        }
        rc = print_json(arr);
    } else {
        char sz[32];
        printf("%-44s %-12s %10s %5s  %s\n", "ID", "REVISION", "SIZE", "FILES", "ENGINE");
        for (size_t i = 0; i < l.n; i++) {
            const struct qb_hub_cached_model *m = &l.items[i];
            printf("%-44s %-12.12s %10s %5d  %s\n", m->id, m->revision,
                   human_bytes(m->size, sz, sizeof sz), m->n_files,
                   m->supported ? "supported" : m->verdict);
        }
        if (l.n == 0)
            printf("(no model in %s)\n", qb_hub_cache_dir(hub));
    }
    qb_hub_cached_list_clear(&l);
    qb_hub_free(hub);
    return rc;
}
