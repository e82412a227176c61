/*
 * results.c - the JSON-lines results history (see results.h).
 *
 * Writing: the record becomes one cJSON object printed unformatted plus '\n';
 * that buffer goes out in one write(2) on an O_APPEND fd under flock(LOCK_EX).
 * POSIX makes O_APPEND position+write atomic for a single write, and the lock
 * covers writers on filesystems where that is weaker (NFS home folders).
 * Reading: getline under flock(LOCK_SH); lines longer than QB_RESULTS_LINE_MAX
 * or not a JSON object with the expected types are skipped and counted.
 */
#include "results.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileutil.h"

#define QB_RESULTS_LINE_MAX (64 * 1024)

#ifndef QB_VERSION
#define QB_VERSION "0.0.0"
#endif

void qb_result_init(struct qb_result *r)
{
    memset(r, 0, sizeof *r);
    r->time = (int64_t)time(NULL);
    r->ppl = r->ppl_stderr = r->ppl_baseline = r->delta_ppl = NAN;
    r->kld = r->top1 = r->bits_per_weight = r->pp_tps = r->tg_tps = r->pp_tps_baseline =
        r->tg_tps_baseline = NAN;
    r->size_bytes = r->baseline_bytes = -1;
    r->ctx = r->chunks = -1;
    snprintf(r->version, sizeof r->version, "%s", QB_VERSION);
}

double qb_result_speedup(const struct qb_result *r)
{
    if (isnan(r->pp_tps) || isnan(r->pp_tps_baseline) || r->pp_tps_baseline <= 0)
        return NAN;
    return r->pp_tps / r->pp_tps_baseline;
}

double qb_result_tg_speedup(const struct qb_result *r)
{
    if (isnan(r->tg_tps) || isnan(r->tg_tps_baseline) || r->tg_tps_baseline <= 0)
        return NAN;
    return r->tg_tps / r->tg_tps_baseline;
}

enum qb_status qb_results_default_path(char *buf, size_t size, struct qb_err *err)
{
    const char *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (state && state[0] == '/')
        n = snprintf(buf, size, "%s/quantbench/results.jsonl", state);
    else if (home && home[0])
        n = snprintf(buf, size, "%s/.local/state/quantbench/results.jsonl", home);
    else
        return qb_err_set(err, QB_ERR_IO, "cannot place the results history: neither "
                          "XDG_STATE_HOME nor HOME is set; set one of them");
    if (n < 0 || (size_t)n >= size)
        return qb_err_set(err, QB_ERR_RANGE, "results history path is too long");
    return QB_OK;
}

/* mkdir -p of the folder holding path. */
static enum qb_status make_parent_dirs(const char *path, struct qb_err *err)
{
    char dir[4096];
    size_t n = strlen(path);
    if (n >= sizeof dir)
        return qb_err_set(err, QB_ERR_RANGE, "path '%s' is too long", path);
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return QB_OK;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return qb_err_set(err, QB_ERR_IO, "cannot create folder '%s': %s", dir,
                              strerror(errno));
        *p = '/';
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return qb_err_set(err, QB_ERR_IO, "cannot create folder '%s': %s", dir, strerror(errno));
    return QB_OK;
}

/* ---- JSON ------------------------------------------------------------------ */

static void add_num(cJSON *o, const char *key, double v)
{
    if (isnan(v) || isinf(v))
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, v);
}

static void add_int(cJSON *o, const char *key, int64_t v)
{
    if (v < 0)
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, (double)v);
}

static void add_str(cJSON *o, const char *key, const char *s)
{
    if (s[0])
        cJSON_AddStringToObject(o, key, s);
    else
        cJSON_AddNullToObject(o, key);
}

static cJSON *result_object(const struct qb_result *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    add_int(o, "time", r->time);
    add_str(o, "kind", r->kind);
    add_str(o, "model", r->model);
    add_str(o, "revision", r->revision);
    add_str(o, "scheme", r->scheme);
    add_str(o, "options", r->options);
    cJSON_AddBoolToObject(o, "baseline", r->baseline);
    add_str(o, "base_dtype", r->base_dtype);
    add_num(o, "ppl", r->ppl);
    add_num(o, "ppl_stderr", r->ppl_stderr);
    add_num(o, "ppl_baseline", r->ppl_baseline);
    add_num(o, "delta_ppl", r->delta_ppl);
    add_num(o, "kld", r->kld);
    add_num(o, "top1", r->top1);
    add_num(o, "bits_per_weight", r->bits_per_weight);
    add_int(o, "size_bytes", r->size_bytes);
    add_int(o, "baseline_bytes", r->baseline_bytes);
    add_num(o, "pp_tps", r->pp_tps);
    add_num(o, "tg_tps", r->tg_tps);
    add_num(o, "pp_tps_baseline", r->pp_tps_baseline);
    add_num(o, "tg_tps_baseline", r->tg_tps_baseline);
    add_int(o, "ctx", r->ctx);
    add_int(o, "chunks", r->chunks);
    add_str(o, "backend", r->backend);
    add_str(o, "gpu", r->gpu);
    add_str(o, "driver", r->driver);
    add_str(o, "cuda", r->cuda);
    add_str(o, "version", r->version);
    return o;
}

char *qb_result_to_json(const struct qb_result *r)
{
    cJSON *o = result_object(r);
    if (!o)
        return NULL;
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Field readers: absent or null keeps the "absent" value; a wrong type fails. */
static int get_num(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v))
        return -1;
    *out = v->valuedouble;
    return 0;
}

static int get_int(const cJSON *o, const char *key, int64_t *out)
{
    double d = NAN;
    if (get_num(o, key, &d))
        return -1;
    if (isnan(d))
        return 0;
    if (d < -1 || d > 9.0e15)
        return -1;
    *out = (int64_t)d;
    return 0;
}

static int get_small_int(const cJSON *o, const char *key, int *out)
{
    int64_t v = *out;
    if (get_int(o, key, &v) || v > 1000000000)
        return -1;
    *out = (int)v;
    return 0;
}

static int get_str(const cJSON *o, const char *key, char *dst, size_t size)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v) || !v->valuestring)
        return -1;
    snprintf(dst, size, "%s", v->valuestring);
    return 0;
}

static const char *read_fields(const cJSON *o, struct qb_result *r)
{
    static const struct { const char *key; size_t off; size_t size; } strs[] = {
        {"kind", offsetof(struct qb_result, kind), sizeof r->kind},
        {"model", offsetof(struct qb_result, model), sizeof r->model},
        {"revision", offsetof(struct qb_result, revision), sizeof r->revision},
        {"scheme", offsetof(struct qb_result, scheme), sizeof r->scheme},
        {"options", offsetof(struct qb_result, options), sizeof r->options},
        {"base_dtype", offsetof(struct qb_result, base_dtype), sizeof r->base_dtype},
        {"backend", offsetof(struct qb_result, backend), sizeof r->backend},
        {"gpu", offsetof(struct qb_result, gpu), sizeof r->gpu},
        {"driver", offsetof(struct qb_result, driver), sizeof r->driver},
        {"cuda", offsetof(struct qb_result, cuda), sizeof r->cuda},
        {"version", offsetof(struct qb_result, version), sizeof r->version},
    };
    static const struct { const char *key; size_t off; } nums[] = {
        {"ppl", offsetof(struct qb_result, ppl)},
        {"ppl_stderr", offsetof(struct qb_result, ppl_stderr)},
        {"ppl_baseline", offsetof(struct qb_result, ppl_baseline)},
        {"delta_ppl", offsetof(struct qb_result, delta_ppl)},
        {"kld", offsetof(struct qb_result, kld)},
        {"top1", offsetof(struct qb_result, top1)},
        {"bits_per_weight", offsetof(struct qb_result, bits_per_weight)},
        {"pp_tps", offsetof(struct qb_result, pp_tps)},
        {"tg_tps", offsetof(struct qb_result, tg_tps)},
        {"pp_tps_baseline", offsetof(struct qb_result, pp_tps_baseline)},
        {"tg_tps_baseline", offsetof(struct qb_result, tg_tps_baseline)},
    };
    char *base = (char *)r;
    for (size_t i = 0; i < QB_ARRAY_LEN(strs); i++) {
        if (get_str(o, strs[i].key, base + strs[i].off, strs[i].size))
            return strs[i].key;
    }
    for (size_t i = 0; i < QB_ARRAY_LEN(nums); i++) {
        if (get_num(o, nums[i].key, (double *)(void *)(base + nums[i].off)))
            return nums[i].key;
    }
    if (get_int(o, "time", &r->time))
        return "time";
    if (get_int(o, "size_bytes", &r->size_bytes))
        return "size_bytes";
    if (get_int(o, "baseline_bytes", &r->baseline_bytes))
        return "baseline_bytes";
    if (get_small_int(o, "ctx", &r->ctx))
        return "ctx";
    if (get_small_int(o, "chunks", &r->chunks))
        return "chunks";
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "baseline");
    if (b && !cJSON_IsBool(b) && !cJSON_IsNull(b))
        return "baseline";
    r->baseline = b && cJSON_IsTrue(b);
    return NULL;
}

enum qb_status qb_result_from_json(const char *line, struct qb_result *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    cJSON *o = cJSON_Parse(line);
    if (!o || !cJSON_IsObject(o)) {
        st = qb_err_set(err, QB_ERR_FORMAT, "not a JSON object");
        goto out;
    }
    qb_result_init(out);
    out->version[0] = '\0';
    out->time = -1;
    const char *bad = read_fields(o, out);
    if (bad) {
        st = qb_err_set(err, QB_ERR_FORMAT, "field '%s' has the wrong type", bad);
        goto out;
    }
    if (!out->scheme[0]) {
        st = qb_err_set(err, QB_ERR_FORMAT, "field 'scheme' is missing");
        goto out;
    }
out:
    cJSON_Delete(o);
    return st;
}

/* ---- append ------------------------------------------------------------------ */

static enum qb_status write_line_locked(int fd, const char *path, const char *line, size_t len,
                                        struct qb_err *err)
{
    if (flock(fd, LOCK_EX) != 0)
        return qb_err_set(err, QB_ERR_IO, "cannot lock '%s': %s", path, strerror(errno));
    ssize_t w = write(fd, line, len);
    int saved = errno;
    flock(fd, LOCK_UN);
    if (w < 0)
        return qb_err_set(err, QB_ERR_IO, "cannot append to '%s': %s", path, strerror(saved));
    if ((size_t)w != len)
        return qb_err_set(err, QB_ERR_IO, "short write appending to '%s' (disk full?)", path);
    return QB_OK;
}

enum qb_status qb_results_append(const char *path, const struct qb_result *r, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char def[4096];
    char *json = NULL, *line = NULL;
    int fd = -1;
    if (!path) {
        st = qb_results_default_path(def, sizeof def, err);
        if (st)
            goto out;
        path = def;
    }
    st = make_parent_dirs(path, err);
    if (st)
        goto out;
    json = qb_result_to_json(r);
    line = json ? qb_asprintf("%s\n", json) : NULL;
    if (!line) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory writing a result line");
        goto out;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = qb_err_set(err, QB_ERR_IO, "cannot open '%s' for appending: %s", path,
                        strerror(errno));
        goto out;
    }
    st = write_line_locked(fd, path, line, strlen(line), err);
out:
    if (fd >= 0)
        close(fd);
    free(json);
    free(line);
    return st;
}

/* ---- load ------------------------------------------------------------------- */

enum qb_status qb_results_push(struct qb_results *rs, const struct qb_result *r)
{
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 16;
        struct qb_result *items = qb_realloc_array(rs->items, cap, sizeof *items);
        if (!items)
            return QB_ERR_NOMEM;
        rs->items = items;
        rs->cap = cap;
    }
    rs->items[rs->n++] = *r;
    return QB_OK;
}

void qb_results_clear(struct qb_results *rs)
{
    if (!rs)
        return;
    free(rs->items);
    memset(rs, 0, sizeof *rs);
}

static void note_skip(struct qb_results *rs, long lineno, const char *why)
{
    if (rs->skipped == 0)
        snprintf(rs->warning, sizeof rs->warning, "line %ld: %s", lineno, why);
    rs->skipped++;
}

static int blank(const char *s)
{
    for (; *s; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return 0;
    }
    return 1;
}

enum qb_status qb_results_load(const char *path, struct qb_results *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char def[4096];
    char *line = NULL;
    size_t cap = 0;
    FILE *f = NULL;
    memset(out, 0, sizeof *out);
    if (!path) {
        st = qb_results_default_path(def, sizeof def, err);
        if (st)
            goto out;
        path = def;
    }
    f = fopen(path, "re");
    if (!f) {
        if (errno != ENOENT)
            st = qb_err_set(err, QB_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
        goto out;
    }
    flock(fileno(f), LOCK_SH);
    long lineno = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (blank(line))
            continue;
        if (len > QB_RESULTS_LINE_MAX || (size_t)len != strlen(line)) {
            note_skip(out, lineno, "line too long or holds a NUL byte");
            continue;
        }
        struct qb_result r;
        struct qb_err lerr = {0};
        if (qb_result_from_json(line, &r, &lerr)) {
            note_skip(out, lineno, lerr.msg);
            continue;
        }
        if (qb_results_push(out, &r)) {
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory loading '%s'", path);
            goto out;
        }
    }
    if (ferror(f))
        st = qb_err_set(err, QB_ERR_IO, "error reading '%s'", path);
out:
    if (f) {
        flock(fileno(f), LOCK_UN);
        fclose(f);
    }
    free(line);
    if (st)
        qb_results_clear(out);
    return st;
}

/* ---- filter and sort ---------------------------------------------------------- */

static int field_matches(const char *want, const char *have)
{
    return !want || !want[0] || strcmp(want, have) == 0;
}

void qb_results_filter(struct qb_results *rs, const struct qb_results_filter *f)
{
    size_t j = 0;
    for (size_t i = 0; i < rs->n; i++) {
        const struct qb_result *r = &rs->items[i];
        if (field_matches(f->model, r->model) && field_matches(f->scheme, r->scheme) &&
            field_matches(f->kind, r->kind))
            rs->items[j++] = *r;
    }
    rs->n = j;
}

const char *qb_results_key_name(enum qb_results_key key)
{
    switch (key) {
    case QB_RESULTS_BY_TIME: return "time";
    case QB_RESULTS_BY_SCHEME: return "scheme";
    case QB_RESULTS_BY_BPW: return "bits/weight";
    case QB_RESULTS_BY_SIZE: return "size";
    case QB_RESULTS_BY_PPL: return "ppl";
    case QB_RESULTS_BY_DELTA_PPL: return "delta ppl";
    case QB_RESULTS_BY_KLD: return "kld";
    case QB_RESULTS_BY_PP: return "pp tok/s";
    case QB_RESULTS_BY_TG: return "tg tok/s";
    case QB_RESULTS_KEY_COUNT: break;
    }
    return "?";
}

static double sort_value(const struct qb_result *r, enum qb_results_key key)
{
    switch (key) {
    case QB_RESULTS_BY_TIME: return r->time < 0 ? NAN : (double)r->time;
    case QB_RESULTS_BY_BPW: return r->bits_per_weight;
    case QB_RESULTS_BY_SIZE: return r->size_bytes < 0 ? NAN : (double)r->size_bytes;
    case QB_RESULTS_BY_PPL: return r->ppl;
    case QB_RESULTS_BY_DELTA_PPL: return r->delta_ppl;
    case QB_RESULTS_BY_KLD: return r->kld;
    case QB_RESULTS_BY_PP: return r->pp_tps;
    case QB_RESULTS_BY_TG: return r->tg_tps;
    case QB_RESULTS_BY_SCHEME:
    case QB_RESULTS_KEY_COUNT: break;
    }
    return NAN;
}

/* <0 when a sorts before b. Absent values last in either direction. */
static int compare_rows(const struct qb_result *a, const struct qb_result *b,
                        enum qb_results_key key, int descending)
{
    int c;
    if (key == QB_RESULTS_BY_SCHEME) {
        c = strcmp(a->scheme, b->scheme);
    } else {
        double x = sort_value(a, key), y = sort_value(b, key);
        if (isnan(x) || isnan(y))
            return isnan(x) - isnan(y);
        c = (x > y) - (x < y);
    }
    return descending ? -c : c;
}

/* Insertion sort: stable, and histories are hundreds of rows, not millions. */
void qb_results_sort(struct qb_results *rs, enum qb_results_key key, int descending)
{
    for (size_t i = 1; i < rs->n; i++) {
        struct qb_result tmp = rs->items[i];
        size_t j = i;
        while (j > 0 && compare_rows(&rs->items[j - 1], &tmp, key, descending) > 0) {
            rs->items[j] = rs->items[j - 1];
            j--;
        }
        rs->items[j] = tmp;
    }
}

/* ---- export ------------------------------------------------------------------- */

int qb_export_format_parse(const char *s, enum qb_export_format *out)
{
    if (strcmp(s, "csv") == 0)
        *out = QB_EXPORT_CSV;
    else if (strcmp(s, "json") == 0)
        *out = QB_EXPORT_JSON;
    else if (strcmp(s, "md") == 0 || strcmp(s, "markdown") == 0)
        *out = QB_EXPORT_MARKDOWN;
    else
        return -1;
    return 0;
}

const char *qb_export_format_ext(enum qb_export_format fmt)
{
    switch (fmt) {
    case QB_EXPORT_CSV: return "csv";
    case QB_EXPORT_JSON: return "json";
    case QB_EXPORT_MARKDOWN: return "md";
    }
    return "txt";
}

static const char *const export_columns[] = {
    "time", "kind", "model", "revision", "scheme", "options", "baseline", "base_dtype", "ppl",
    "ppl_stderr", "ppl_baseline", "delta_ppl", "kld", "top1", "bits_per_weight", "size_bytes",
    "baseline_bytes", "pp_tps", "tg_tps", "pp_tps_baseline", "tg_tps_baseline", "ctx", "chunks",
    "backend", "gpu", "driver", "cuda", "version",
};

/* Text of one cell: "" when absent. Numbers with %.10g (round-trips what we print). */
static void cell_text(const cJSON *o, const char *key, char *buf, size_t size)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    buf[0] = '\0';
    if (!v || cJSON_IsNull(v))
        return;
    if (cJSON_IsString(v))
        snprintf(buf, size, "%s", v->valuestring);
    else if (cJSON_IsBool(v))
        snprintf(buf, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNumber(v))
        snprintf(buf, size, "%.10g", v->valuedouble);
}

static void csv_cell(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void md_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '\n' || *s == '\r')
            fputc(' ', f);
        else
            fputc(*s, f);
    }
}

static void export_table(const struct qb_results *rs, int markdown, FILE *f)
{
    size_t nc = QB_ARRAY_LEN(export_columns);
    const char *sep = markdown ? " | " : ",";
    if (markdown)
        fputs("| ", f);
    for (size_t c = 0; c < nc; c++)
        fprintf(f, "%s%s", c ? sep : "", export_columns[c]);
    fputs(markdown ? " |\n|" : "\r\n", f);
    if (markdown) {
        for (size_t c = 0; c < nc; c++)
            fputs("---|", f);
        fputc('\n', f);
    }
    char cell[1024];
    for (size_t i = 0; i < rs->n; i++) {
        cJSON *o = result_object(&rs->items[i]);
        if (markdown)
            fputs("| ", f);
        for (size_t c = 0; c < nc; c++) {
            cell_text(o, export_columns[c], cell, sizeof cell);
            if (c)
                fputs(sep, f);
            if (markdown)
                md_cell(f, cell);
            else
                csv_cell(f, cell);
        }
        fputs(markdown ? " |\n" : "\r\n", f);
        cJSON_Delete(o);
    }
}

static enum qb_status export_json(const struct qb_results *rs, FILE *f, struct qb_err *err)
{
    cJSON *arr = cJSON_CreateArray();
    char *text = NULL;
    enum qb_status st = QB_OK;
    for (size_t i = 0; arr && i < rs->n; i++) {
        cJSON *o = result_object(&rs->items[i]);
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory exporting results");
            goto out;
        }
    }
    text = arr ? cJSON_Print(arr) : NULL;
    if (!text) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory exporting results");
        goto out;
    }
    fprintf(f, "%s\n", text);
out:
    free(text);
    cJSON_Delete(arr);
    return st;
}

enum qb_status qb_results_export(const struct qb_results *rs, enum qb_export_format fmt, FILE *f,
                                 struct qb_err *err)
{
    enum qb_status st = QB_OK;
    if (fmt == QB_EXPORT_JSON)
        st = export_json(rs, f, err);
    else
        export_table(rs, fmt == QB_EXPORT_MARKDOWN, f);
    if (!st && ferror(f))
        st = qb_err_set(err, QB_ERR_IO, "error writing the results export");
    return st;
}

enum qb_status qb_results_export_file(const struct qb_results *rs, enum qb_export_format fmt,
                                      const char *path, struct qb_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    enum qb_status st = QB_OK;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory exporting results");
    st = qb_results_export(rs, fmt, mem, err);
    if (fclose(mem) != 0 && !st)
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory exporting results");
    if (!st)
        st = make_parent_dirs(path, err);
    if (!st)
        st = qb_file_write_atomic(path, buf, len, err);
    free(buf);
    return st;
}
