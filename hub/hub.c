/*
 * hub.c - the Hub client object (options from the environment, open/free),
 * model search with Link pagination, model info with the config.json summary,
 * and the "can our engine run it" verdict.
 *
 * Environment (huggingface_hub's names and defaults, see
 * shared/docs/HUB-TUI-TELEMETRY.md section 2.1): HF_ENDPOINT, HF_TOKEN,
 * HUGGING_FACE_HUB_TOKEN, HF_TOKEN_PATH, HF_HOME, HF_HUB_CACHE,
 * HUGGINGFACE_HUB_CACHE, XDG_CACHE_HOME, HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE,
 * HF_HUB_ETAG_TIMEOUT, HF_HUB_DOWNLOAD_TIMEOUT; ours: HF_DATASETS_SERVER (the
 * datasets-server endpoint), QUANTBENCH_HUB_RETRIES and QUANTBENCH_HUB_BACKOFF_S
 * (retry policy, mostly for tests).
 */
#include <ctype.h>
#include <pthread.h>
#include <pwd.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hub_internal.h"

#define QB_HUB_JSON_MAX (64u << 20)
#define QB_HUB_CONFIG_MAX (4u << 20)

/* ---- options --------------------------------------------------------------------- */

static int env_true(const char *name)
{
    const char *v = getenv(name);
    return v && (strcasecmp(v, "1") == 0 || strcasecmp(v, "on") == 0 || strcasecmp(v, "yes") == 0 ||
                 strcasecmp(v, "true") == 0);
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

static double env_number(const char *name, double def, double min, double max)
{
    const char *v = env_nonempty(name);
    if (!v)
        return def;
    char *end = NULL;
    double d = strtod(v, &end);
    return (end && *end == '\0' && d >= min && d <= max) ? d : def;
}

static char *strip_trailing_slashes(char *s)
{
    size_t n = s ? strlen(s) : 0;
    while (n > 0 && s[n - 1] == '/')
        s[--n] = '\0';
    return s;
}

/* Token file content with whitespace stripped; NULL when absent or empty. */
static char *read_token_file(const char *path)
{
    size_t len = 0;
    char *t = qb_hub_read_file(path, 4096, &len);
    if (!t)
        return NULL;
    char *b = t, *e = t + len;
    while (b < e && isspace((unsigned char)*b))
        b++;
    while (e > b && isspace((unsigned char)e[-1]))
        e--;
    char *tok = NULL;
    if (e > b) {
        tok = malloc((size_t)(e - b) + 1);
        if (tok) {
            memcpy(tok, b, (size_t)(e - b));
            tok[e - b] = '\0';
        }
    }
    explicit_bzero(t, len);
    free(t);
    return tok;
}

enum qb_status qb_hub_opts_from_env(struct qb_hub_opts *o, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char *hf_home = NULL;
    memset(o, 0, sizeof *o);
    const char *home = env_nonempty("HOME");
    if (!home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    const char *xdg = env_nonempty("XDG_CACHE_HOME");
    char *cache_root = xdg ? qb_strdup(xdg) : home ? qb_asprintf("%s/.cache", home) : NULL;
    if (!cache_root) {
        st = qb_err_set(err, QB_ERR_IO, "no cache folder: set HOME, XDG_CACHE_HOME or HF_HOME");
        goto out;
    }
    hf_home = env_nonempty("HF_HOME") ? qb_strdup(getenv("HF_HOME"))
                                      : qb_asprintf("%s/huggingface", cache_root);
    const char *hub_cache = env_nonempty("HF_HUB_CACHE");
    if (!hub_cache)
        hub_cache = env_nonempty("HUGGINGFACE_HUB_CACHE");
    o->hub_cache = hub_cache ? qb_strdup(hub_cache)
                   : hf_home ? qb_asprintf("%s/hub", hf_home)
                             : NULL;
    o->data_cache = qb_asprintf("%s/quantbench/datasets", cache_root);
    const char *ep = env_nonempty("HF_ENDPOINT");
    o->endpoint = strip_trailing_slashes(qb_strdup(ep ? ep : "https://huggingface.co"));
    const char *ds = env_nonempty("HF_DATASETS_SERVER");
    o->datasets_endpoint =
        strip_trailing_slashes(qb_strdup(ds ? ds : "https://datasets-server.huggingface.co"));
    if (!hf_home || !o->hub_cache || !o->data_cache || !o->endpoint || !o->datasets_endpoint) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory reading the Hub settings");
        goto out;
    }
    const char *tok = env_nonempty("HF_TOKEN");
    if (!tok)
        tok = env_nonempty("HUGGING_FACE_HUB_TOKEN");
    if (tok) {
        o->token = qb_strdup(tok);
    } else {
        const char *tp = env_nonempty("HF_TOKEN_PATH");
        char *path = tp ? qb_strdup(tp) : qb_asprintf("%s/token", hf_home);
        o->token = path ? read_token_file(path) : NULL;
        free(path);
    }
    o->offline = env_true("HF_HUB_OFFLINE") || env_true("TRANSFORMERS_OFFLINE");
    o->connect_timeout_s = 10;
    o->api_timeout_s = (long)env_number("HF_HUB_ETAG_TIMEOUT", 30, 1, 3600);
    o->stall_timeout_s = (long)env_number("HF_HUB_DOWNLOAD_TIMEOUT", 30, 1, 3600);
    o->max_retries = (int)env_number("QUANTBENCH_HUB_RETRIES", 5, 0, 20);
    o->backoff_s = env_number("QUANTBENCH_HUB_BACKOFF_S", 0.5, 0, 60);
    o->retry_after_cap_s = 60;
    o->parallel = 4;
    o->max_pages = 100;
out:
    free(cache_root);
    free(hf_home);
    if (st)
        qb_hub_opts_clear(o);
    return st;
}

void qb_hub_opts_clear(struct qb_hub_opts *o)
{
    if (!o)
        return;
    if (o->token)
        explicit_bzero(o->token, strlen(o->token));
    free(o->token);
    free(o->endpoint);
    free(o->datasets_endpoint);
    free(o->hub_cache);
    free(o->data_cache);
    memset(o, 0, sizeof *o);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

enum qb_status qb_hub_open(const struct qb_hub_opts *opts, struct qb_hub **out, struct qb_err *err)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    struct qb_hub *h = calloc(1, sizeof *h);
    if (!h)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory creating the Hub client");
    h->o = *opts;
    h->o.endpoint = strip_trailing_slashes(
        qb_strdup(opts->endpoint ? opts->endpoint : "https://huggingface.co"));
    h->o.datasets_endpoint = strip_trailing_slashes(
        qb_strdup(opts->datasets_endpoint ? opts->datasets_endpoint
                                          : "https://datasets-server.huggingface.co"));
    h->o.token = opts->token && opts->token[0] ? qb_strdup(opts->token) : NULL;
    h->o.hub_cache = opts->hub_cache ? qb_strdup(opts->hub_cache) : NULL;
    h->o.data_cache = opts->data_cache ? qb_strdup(opts->data_cache) : NULL;
    if (!h->o.endpoint || !h->o.datasets_endpoint || !h->o.hub_cache || !h->o.data_cache ||
        (opts->token && opts->token[0] && !h->o.token)) {
        qb_hub_free(h);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory creating the Hub client");
    }
    if (h->o.parallel < 1)
        h->o.parallel = 1;
    if (h->o.max_pages < 1)
        h->o.max_pages = 1;
    if (h->o.max_retries < 0)
        h->o.max_retries = 0;
    *out = h;
    return QB_OK;
}

enum qb_status qb_hub_open_env(struct qb_hub **out, struct qb_err *err)
{
    struct qb_hub_opts o;
    enum qb_status st = qb_hub_opts_from_env(&o, err);
    if (st)
        return st;
    st = qb_hub_open(&o, out, err);
    qb_hub_opts_clear(&o);
    return st;
}

void qb_hub_free(struct qb_hub *hub)
{
    if (!hub)
        return;
    qb_hub_opts_clear(&hub->o);
    free(hub);
}

const char *qb_hub_cache_dir(const struct qb_hub *hub)
{
    return hub->o.hub_cache;
}
const char *qb_hub_endpoint(const struct qb_hub *hub)
{
    return hub->o.endpoint;
}
int qb_hub_is_offline(const struct qb_hub *hub)
{
    return hub->o.offline;
}
int qb_hub_has_token(const struct qb_hub *hub)
{
    return hub->o.token && hub->o.token[0];
}

/* ---- search --------------------------------------------------------------------------- */

int qb_hub_sort_parse(const char *s, enum qb_hub_sort *out)
{
    static const char *const names[] = {"downloads", "likes", "trending", "updated"};
    for (int i = 0; i < 4; i++) {
        if (s && strcmp(s, names[i]) == 0) {
            *out = (enum qb_hub_sort)i;
            return 0;
        }
    }
    return -1;
}

static const char *sort_api_name(enum qb_hub_sort s)
{
    switch (s) {
    case QB_HUB_SORT_DOWNLOADS:
        return "downloads";
    case QB_HUB_SORT_LIKES:
        return "likes";
    case QB_HUB_SORT_TRENDING:
        return "trendingScore";
    case QB_HUB_SORT_UPDATED:
        return "lastModified";
    }
    return "downloads";
}

static char *search_url(const struct qb_hub *hub, const struct qb_hub_search_query *q)
{
    char *text = qb_hub_escape(q->text ? q->text : "");
    char *author = qb_hub_escape(q->author ? q->author : "");
    char *url = NULL;
    if (text && author)
        url = qb_asprintf("%s/api/models?search=%s%s%s&pipeline_tag=text-generation&sort=%s"
                          "&limit=%d&expand%%5B%%5D=downloads&expand%%5B%%5D=likes"
                          "&expand%%5B%%5D=gated&expand%%5B%%5D=lastModified"
                          "&expand%%5B%%5D=library_name&expand%%5B%%5D=pipeline_tag"
                          "&expand%%5B%%5D=safetensors",
                          hub->o.endpoint, text, q->author ? "&author=" : "", author,
                          sort_api_name(q->sort), QB_MIN(q->limit, 100));
    free(text);
    free(author);
    return url;
}

enum qb_status qb_hub_search(struct qb_hub *hub, const struct qb_hub_search_query *q,
                             struct qb_hub_search_result *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct qb_hub_resp resp = {0};
    struct qb_hub_ctx ctx = {.repo = "the model search"};
    char *url = NULL;
    memset(out, 0, sizeof *out);
    if (q->limit < 1 || q->limit > 1000)
        return qb_err_set(err, QB_ERR_USAGE, "search limit %d is outside 1..1000", q->limit);
    url = search_url(hub, q);
    if (!url)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory building the search URL");
    for (int page = 0; url && page < hub->o.max_pages && out->n < (size_t)q->limit; page++) {
        st = qb_hub_http_get(hub, url, QB_HUB_JSON_MAX, &ctx, &resp, err);
        if (st)
            goto out;
        size_t before = out->n;
        st = qb_hub_parse_search_page(resp.body.data, resp.body.len, out, err);
        if (st)
            goto out;
        free(url);
        url = qb_hub_link_next(resp.link);
        /* follow only links on the endpoint's origin; stop on an empty page */
        if (url && (!qb_hub_same_origin(url, hub->o.endpoint) || out->n == before)) {
            free(url);
            url = NULL;
        }
    }
    while (out->n > (size_t)q->limit) {
        struct qb_hub_model_summary *s = &out->items[--out->n];
        free(s->id);
        free(s->gated);
        free(s->last_modified);
        free(s->library);
        free(s->pipeline_tag);
    }
out:
    free(url);
    qb_hub_resp_clear(&resp);
    if (st)
        qb_hub_search_result_clear(out);
    return st;
}

/* ---- model info ------------------------------------------------------------------------------ */

void qb_hub_model_info_clear(struct qb_hub_model_info *i)
{
    if (!i)
        return;
    free(i->id);
    free(i->sha);
    free(i->revision);
    free(i->gated);
    free(i->license);
    free(i->library);
    free(i->pipeline_tag);
    free(i->last_modified);
    free(i->param_dtype);
    free(i->verdict);
    qb_hub_file_list_clear(&i->files);
    qb_hub_config_summary_clear(&i->config);
    memset(i, 0, sizeof *i);
    qb_hub_config_summary_clear(&i->config);
    i->downloads = i->likes = i->parameters = -1;
}

static int in_list(const char *s, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(s, *list) == 0)
            return 1;
    }
    return 0;
}

int qb_hub_engine_verdict(const struct qb_hub_config_summary *c, char **reason)
{
    static const char *const dense[] = {"llama", "mistral", "qwen2", "qwen3", NULL};
    static const char *const moe[] = {
        "mixtral", "qwen2_moe", "qwen3_moe", "deepseek",   "deepseek_v2", "deepseek_v3",
        "gpt_oss", "dbrx",      "olmoe",     "granitemoe", "phimoe",      "jamba",
        "llama4",  "minimax",   "glm4_moe",  "qwen3_next", NULL};
    int ok = 0;
    *reason = NULL;
    if (!c->model_type) {
        *reason = qb_strdup("no model_type in config.json: cannot tell the architecture");
        return 0;
    }
    char *shown = qb_strdup(c->model_type);
    for (char *p = shown; p && *p; p++) {
        if (*p == '_')
            *p = '-';
    }
    const char *name = shown ? shown : c->model_type;
    if (in_list(c->model_type, moe) || c->experts > 1)
        *reason = qb_asprintf("MoE (%s) not supported yet", name);
    else if (c->quant_method)
        *reason = qb_asprintf("already quantized (%s): quantbench starts from unquantized "
                              "weights",
                              c->quant_method);
    else if (in_list(c->model_type, dense)) {
        ok = 1;
        *reason = qb_asprintf("%s (dense) is supported", name);
    } else {
        *reason = qb_asprintf("model_type '%s' is not supported yet (supported: llama, "
                              "mistral, qwen2, qwen3)",
                              c->model_type);
    }
    free(shown);
    return ok;
}

/* config.json at the info's commit; failures leave have_config 0 (the API's
 * config block still gives model_type for the verdict). */
static void fetch_config(struct qb_hub *hub, const char *repo, struct qb_hub_model_info *info)
{
    struct qb_hub_resp resp = {0};
    struct qb_err ignored;
    struct qb_hub_ctx ctx = {repo, info->sha, "config.json"};
    struct qb_hub_config_summary cfg;
    char *erepo = qb_hub_escape_path(repo);
    char *url = erepo
                    ? qb_asprintf("%s/%s/resolve/%s/config.json", hub->o.endpoint, erepo, info->sha)
                    : NULL;
    memset(&cfg, 0, sizeof cfg);
    if (url && qb_hub_http_get(hub, url, QB_HUB_CONFIG_MAX, &ctx, &resp, &ignored) == QB_OK &&
        qb_hub_parse_config(resp.body.data, resp.body.len, &cfg, &ignored) == QB_OK) {
        if (!cfg.quant_method && info->config.quant_method)
            cfg.quant_method = qb_strdup(info->config.quant_method);
        qb_hub_config_summary_clear(&info->config);
        info->config = cfg;
        info->have_config = 1;
    } else {
        qb_hub_config_summary_clear(&cfg);
    }
    free(url);
    free(erepo);
    qb_hub_resp_clear(&resp);
}

enum qb_status qb_hub_model_info(struct qb_hub *hub, const char *repo, const char *rev,
                                 struct qb_hub_model_info *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct qb_hub_resp resp = {0};
    struct qb_hub_ctx ctx = {repo, rev ? rev : "main", NULL};
    char *erepo = NULL, *erev = NULL, *url = NULL;
    memset(out, 0, sizeof *out);
    qb_hub_model_info_clear(out);
    if (!qb_hub_repo_id_valid(repo))
        return qb_err_set(err, QB_ERR_USAGE, "'%s' is not a Hub repo id (expected ORG/NAME)", repo);
    if (rev && !qb_hub_rev_valid(rev))
        return qb_err_set(err, QB_ERR_USAGE, "'%s' is not a valid revision", rev);
    if (hub->o.offline) {
        st = qb_hub_model_info_cached(hub, repo, rev, out, err);
        goto out;
    }
    erepo = qb_hub_escape_path(repo);
    erev = qb_hub_escape(rev ? rev : "main");
    url = erepo && erev
              ? qb_asprintf("%s/api/models/%s/revision/%s?blobs=true", hub->o.endpoint, erepo, erev)
              : NULL;
    if (!url) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    st = qb_hub_http_get(hub, url, QB_HUB_JSON_MAX, &ctx, &resp, err);
    if (st)
        goto out;
    st = qb_hub_parse_model_info(resp.body.data, resp.body.len, out, err);
    if (st) {
        char what[QB_ERR_MSG_MAX];
        snprintf(what, sizeof what, "%s", err ? err->msg : "");
        st = qb_err_set(err, st, "%s for %s", what, repo);
        goto out;
    }
    if (!out->sha) {
        st =
            qb_err_set(err, QB_ERR_FORMAT, "the Hub's model info for %s has no 'sha' commit", repo);
        goto out;
    }
    if (!out->id)
        out->id = qb_strdup(repo);
    out->revision = qb_strdup(rev ? rev : "main");
    fetch_config(hub, repo, out);
    out->supported = qb_hub_engine_verdict(&out->config, &out->verdict);
    if (!out->id || !out->revision || !out->verdict)
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
out:
    free(erepo);
    free(erev);
    free(url);
    qb_hub_resp_clear(&resp);
    if (st)
        qb_hub_model_info_clear(out);
    return st;
}
