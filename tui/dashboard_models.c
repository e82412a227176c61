/*
 * dashboard_models.c - the Models pane's list and each model's details.
 *
 * Sources, in list order: the MODEL given on the command line, the bundled
 * demo model (tests/data/ref-llama-10m under $QB_SOURCE_DIR, else the source
 * tree this binary was built from), every checkpoint folder under
 * --models-dir, the local Hugging Face cache (through the Hub client's cache
 * listing when hub/ is in the build), and the hits of the last Hub search.
 *
 * Details come from config.json (architecture, layers, hidden size, dtype;
 * parameters computed from the shapes) and the size of the *.safetensors
 * files. A config our loader rejects marks the model unsupported with the
 * loader's reason.
 */
#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/fileutil.h"
#include "tui/dashboard_impl.h"

#if defined(__has_include)
#if __has_include("hub/hub.h")
#include "hub/hub.h"
#define DASH_HAVE_HUB 1
#endif
#endif

static struct dash_model *add_model(struct qb_dash *d)
{
    if (d->n_models == d->cap_models) {
        size_t cap = d->cap_models ? d->cap_models * 2 : 16;
        struct dash_model *m = qb_realloc_array(d->models, cap, sizeof *m);
        if (!m)
            dash_fatal_oom(d);
        d->models = m;
        d->cap_models = cap;
    }
    struct dash_model *m = &d->models[d->n_models++];
    memset(m, 0, sizeof *m);
    m->params = m->decoder_params = m->disk_bytes = -1;
    m->supported = -1;
    return m;
}

static int64_t safetensors_bytes(const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return -1;
    int64_t total = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0)
            continue;
        char *p = qb_path_join(dir, e->d_name);
        struct stat st;
        if (p && stat(p, &st) == 0)
            total += (int64_t)st.st_size;
        free(p);
    }
    closedir(dp);
    return total;
}

static void dtype_short(const char *torch, char *out, size_t size)
{
    if (strcmp(torch, "bfloat16") == 0)
        snprintf(out, size, "bf16");
    else if (strcmp(torch, "float16") == 0)
        snprintf(out, size, "fp16");
    else if (strcmp(torch, "float32") == 0)
        snprintf(out, size, "f32");
    else
        snprintf(out, size, "bf16");
}

/* Fill details from dir/config.json and the weight files. */
static void read_details(struct dash_model *m)
{
    struct qb_config cfg;
    struct qb_err err = {0};
    char *path = qb_path_join(m->path, "config.json");
    if (!path)
        return;
    enum qb_status st = qb_config_load(path, &cfg, &err);
    free(path);
    m->disk_bytes = safetensors_bytes(m->path);
    if (st) {
        m->supported = 0;
        snprintf(m->note, sizeof m->note, "%.127s", err.msg);
        return;
    }
    m->supported = 1;
    snprintf(m->arch, sizeof m->arch, "%s", cfg.model_type);
    dtype_short(cfg.torch_dtype, m->dtype, sizeof m->dtype);
    m->layers = cfg.n_layers;
    m->hidden = cfg.hidden;
    int64_t h = cfg.hidden, q = (int64_t)cfg.n_heads * cfg.head_dim;
    int64_t kv = (int64_t)cfg.n_kv_heads * cfg.head_dim, inter = cfg.intermediate;
    int64_t per_layer = h * q * 2 + h * kv * 2 + 3 * h * inter;
    m->decoder_params = per_layer * cfg.n_layers;
    m->params = m->decoder_params + (int64_t)cfg.vocab * h * (cfg.tie_embeddings ? 1 : 2) +
                (int64_t)(2 * cfg.n_layers + 1) * h;
}

static void add_local(struct qb_dash *d, const char *path, const char *source, const char *id)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        snprintf(real, sizeof real, "%s", path);
    for (size_t i = 0; i < d->n_models; i++) {
        if (strcmp(d->models[i].path, real) == 0)
            return;
    }
    struct dash_model *m = add_model(d);
    snprintf(m->path, sizeof m->path, "%.1023s", real);
    snprintf(m->source, sizeof m->source, "%s", source);
    snprintf(m->id, sizeof m->id, "%s", id);
    read_details(m);
}

static const char *base_name(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    const char *p = path + n;
    while (p > path && p[-1] != '/')
        p--;
    return p;
}

static void add_models_dir(struct qb_dash *d, const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp) {
        dash_status(d, QB_TH_WARN, "--models-dir '%s' cannot be read", dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *sub = qb_path_join(dir, e->d_name);
        char *cfg = sub ? qb_path_join(sub, "config.json") : NULL;
        if (cfg && qb_path_exists(cfg))
            add_local(d, sub, "dir", e->d_name);
        free(cfg);
        free(sub);
    }
    closedir(dp);
}

#ifdef DASH_HAVE_HUB
static void add_hub_cache(struct qb_dash *d)
{
    struct qb_hub *hub = NULL;
    struct qb_hub_cached_list list = {0};
    struct qb_err err = {0};
    if (qb_hub_open_env(&hub, &err) || qb_hub_list_cached(hub, &list, &err)) {
        qb_hub_free(hub);
        return;
    }
    for (size_t i = 0; i < list.n; i++) {
        const struct qb_hub_cached_model *c = &list.items[i];
        if (!c->path)
            continue;
        add_local(d, c->path, "cache", c->id ? c->id : base_name(c->path));
        struct dash_model *m = &d->models[d->n_models - 1];
        if (c->revision)
            snprintf(m->revision, sizeof m->revision, "%s", c->revision);
    }
    qb_hub_cached_list_clear(&list);
    qb_hub_free(hub);
}
#endif

static void add_demo(struct qb_dash *d)
{
    const char *env = getenv("QB_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/ref-llama-10m",
             env && env[0] ? env : QB_SOURCE_DIR);
    if (qb_path_is_dir(path))
        add_local(d, path, "demo", "ref-llama-10m (demo)");
}

static void add_model_arg(struct qb_dash *d, const char *arg)
{
    if (qb_path_is_dir(arg)) {
        add_local(d, arg, "dir", base_name(arg));
        return;
    }
#ifdef DASH_HAVE_HUB
    struct qb_hub *hub = NULL;
    struct qb_err err = {0};
    char *dir = NULL;
    if (qb_hub_open_env(&hub, &err) == QB_OK &&
        qb_hub_resolve_model(hub, arg, 0, NULL, &dir, &err) == QB_OK && dir) {
        add_local(d, dir, "cache", arg);
        free(dir);
        qb_hub_free(hub);
        return;
    }
    free(dir);
    qb_hub_free(hub);
#endif
    struct dash_model *m = add_model(d);
    snprintf(m->id, sizeof m->id, "%.255s", arg);
    snprintf(m->source, sizeof m->source, "hub");
    snprintf(m->note, sizeof m->note, "not in the local cache: Enter pulls it");
}

void dash_models_scan(struct qb_dash *d)
{
    d->n_models = 0;
    if (d->opt.model_arg[0])
        add_model_arg(d, d->opt.model_arg);
    add_demo(d);
    if (d->opt.models_dir[0])
        add_models_dir(d, d->opt.models_dir);
#ifdef DASH_HAVE_HUB
    add_hub_cache(d);
#endif
    if (d->model_sel >= (int)d->n_models)
        d->model_sel = 0;
    d->model_active = -1;
}

/* ---- Hub search and pull, as jobs on the worker ------------------------------- */

struct dash_search {
    char query[96];
#ifdef DASH_HAVE_HUB
    struct qb_hub_search_result res;
#endif
};

void dash_models_free(struct qb_dash *d)
{
#ifdef DASH_HAVE_HUB
    if (d->search_req)
        qb_hub_search_result_clear(&d->search_req->res);
#endif
    free(d->search_req);
    d->search_req = NULL;
    free(d->models);
    d->models = NULL;
}

#ifdef DASH_HAVE_HUB
/* Runs on the worker: the request is the dashboard's, untouched by the UI
 * until the job's done record arrives. */
static enum qb_status search_body(const struct qb_job_spec *spec, struct qb_progress *progress,
                                  struct qb_job_output *out, struct qb_err *err)
{
    struct dash_search *req = spec->user;
    struct qb_hub *hub = NULL;
    struct qb_hub_search_query q = {.text = req->query, .sort = QB_HUB_SORT_DOWNLOADS,
                                    .limit = 30};
    (void)out;
    qb_progress_stage(progress, "searching the Hub");
    enum qb_status st = qb_hub_open_env(&hub, err);
    if (!st)
        st = qb_hub_search(hub, &q, &req->res, err);
    qb_hub_free(hub);
    return st;
}

static void apply_search(struct qb_dash *d, const struct dash_search *req)
{
    size_t keep = 0;
    for (size_t i = 0; i < d->n_models; i++) { /* drop the previous hits */
        if (strcmp(d->models[i].source, "hub") != 0 || d->models[i].path[0])
            d->models[keep++] = d->models[i];
    }
    d->n_models = keep;
    int first = (int)d->n_models;
    for (size_t i = 0; i < req->res.n; i++) {
        const struct qb_hub_model_summary *h = &req->res.items[i];
        if (!h->id)
            continue;
        struct dash_model *m = add_model(d);
        snprintf(m->id, sizeof m->id, "%.255s", h->id);
        snprintf(m->source, sizeof m->source, "hub");
        m->params = h->parameters;
        snprintf(m->note, sizeof m->note, "%lld downloads, %lld likes%s; Enter pulls it",
                 (long long)h->downloads, (long long)h->likes,
                 h->gated && strcmp(h->gated, "false") ? ", gated" : "");
    }
    if (req->res.n)
        d->model_sel = first;
    d->model_active = -1;
    dash_status(d, QB_TH_GOOD, "Hub: %zu models for '%s'", req->res.n, req->query);
}
#endif

void dash_models_search(struct qb_dash *d, const char *query)
{
#ifdef DASH_HAVE_HUB
    if (d->search_req) {
        dash_status(d, QB_TH_WARN, "a Hub search is already running");
        return;
    }
    struct dash_search *req = calloc(1, sizeof *req);
    if (!req)
        dash_fatal_oom(d);
    snprintf(req->query, sizeof req->query, "%s", query);
    struct qb_job_spec spec;
    qb_job_spec_init(&spec, QB_JOB_PULL);
    spec.custom = search_body;
    spec.user = req;
    spec.no_record = 1;
    char title[128];
    snprintf(title, sizeof title, "search '%.80s'", query);
    d->search_req = req;
    d->search_job_id = dash_submit(d, &spec, title);
    if (!d->search_job_id) {
        free(req);
        d->search_req = NULL;
    }
#else
    dash_status(d, QB_TH_WARN, "Hub search for '%s': the Hub client is not in this build", query);
#endif
}

void dash_models_pull(struct qb_dash *d)
{
    const struct dash_model *m = dash_model_selected(d);
    if (!m)
        return;
    if (!qb_job_kind_available(QB_JOB_PULL)) {
        dash_status(d, QB_TH_WARN, "%.60s is not downloaded, and the Hub client is not in this "
                    "build", m->id);
        return;
    }
    struct qb_job_spec spec;
    qb_job_spec_init(&spec, QB_JOB_PULL);
    snprintf(spec.model, sizeof spec.model, "%s", m->id);
    char title[128];
    snprintf(title, sizeof title, "pull %.100s", m->id);
    d->pull_job_id = dash_submit(d, &spec, title);
}

static void pull_done(struct qb_dash *d, const struct qb_job_done *done)
{
    if (done->status) {
        dash_status(d, done->status == QB_ERR_CANCELLED ? QB_TH_WARN : QB_TH_BAD,
                    "pull: %s", done->error);
        return;
    }
    dash_models_scan(d);
    for (size_t i = 0; i < d->n_models; i++) {
        char real[PATH_MAX];
        if (realpath(done->out.path, real) && strcmp(d->models[i].path, real) == 0)
            d->model_sel = (int)i;
    }
    dash_schemes_init(d);
    dash_status(d, QB_TH_GOOD, "pulled into %s", done->out.path);
}

int dash_models_job_done(struct qb_dash *d, const struct qb_job_done *done)
{
    if (d->pull_job_id && done->id == d->pull_job_id) {
        d->pull_job_id = 0;
        pull_done(d, done);
        return 1;
    }
    if (!d->search_job_id || done->id != d->search_job_id)
        return 0;
    d->search_job_id = 0;
#ifdef DASH_HAVE_HUB
    if (done->status == QB_OK)
        apply_search(d, d->search_req);
    else
        dash_status(d, QB_TH_BAD, "Hub search: %s", done->error);
    qb_hub_search_result_clear(&d->search_req->res);
#endif
    free(d->search_req);
    d->search_req = NULL;
    return 1;
}

const struct dash_model *dash_model_selected(const struct qb_dash *d)
{
    if (d->n_models == 0 || d->model_sel < 0 || d->model_sel >= (int)d->n_models)
        return NULL;
    return &d->models[d->model_sel];
}

const struct dash_model *dash_model_active(const struct qb_dash *d)
{
    if (d->model_active < 0 || d->model_active >= (int)d->n_models)
        return NULL;
    return &d->models[d->model_active];
}
