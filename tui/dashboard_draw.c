/*
 * dashboard_draw.c - everything the dashboard puts on the screen.
 *
 * One frame: erase, header, the visible panes (each a row of the const pane
 * class table: title + draw function, given its inner rectangle), footer,
 * then at most one overlay (help generated from the key table, quit
 * confirmation, search prompt), then wnoutrefresh(stdscr) + doupdate() once.
 * Everything is drawn into stdscr through put(), which clips by display width
 * (UTF-8 aware), so no pane can write outside its rectangle.
 *
 * Glyphs: UTF-8 box drawing, block sparklines and bars when the locale's
 * codeset is UTF-8 (and --ascii is not given); plain ASCII otherwise.
 * Numbers that are unknown or invalid are written as "N/A" or "-", never 0.
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

#include "tui/dashboard_impl.h"

struct glyphs {
    const char *h, *v, *tl, *tr, *bl, *br;
    const char *bar_full, *bar_empty;
    const char *spark[8];
    const char *up, *down, *delta, *mark, *active;
};

static const struct glyphs utf8_glyphs = {
    "─", "│", "┌", "┐", "└", "┘", "█", "░",
    {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"},
    "↑", "↓", "Δ", "◆", "▶",
};

static const struct glyphs ascii_glyphs = {
    "-", "|", "+", "+", "+", "+", "#", ".",
    {"_", ".", "-", "-", "=", "+", "*", "#"},
    "^", "v", "d", "*", ">",
};

static const struct glyphs *glyphs(const struct qb_dash *d)
{
    return d->utf8 ? &utf8_glyphs : &ascii_glyphs;
}

/* ---- theme -> curses ---------------------------------------------------------- */

static attr_t curses_attrs(unsigned a)
{
    attr_t r = A_NORMAL;
    if (a & QB_ATTR_BOLD)
        r |= A_BOLD;
    if (a & QB_ATTR_DIM)
        r |= A_DIM;
    if (a & QB_ATTR_UNDERLINE)
        r |= A_UNDERLINE;
    if (a & QB_ATTR_REVERSE)
        r |= A_REVERSE;
    if (a & QB_ATTR_ITALIC)
        r |= A_ITALIC;
    if (a & QB_ATTR_STANDOUT)
        r |= A_STANDOUT;
    return r;
}

void dash_apply_theme(struct qb_dash *d)
{
    int color = has_colors() && !qb_no_color_requested();
    if (color) {
        start_color();
        use_default_colors();
        if (COLORS < 256)
            qb_theme_to_8_colors(&d->theme);
        if (COLORS < 8 || COLOR_PAIRS <= QB_TH_COUNT)
            color = 0;
    }
    if (!color)
        qb_theme_strip_colors(&d->theme);
    for (int i = 0; i < QB_TH_COUNT; i++) {
        const struct qb_style *s = &d->theme.style[i];
        d->attr[i] = curses_attrs(s->attrs);
        if (color) {
            init_pair((short)(i + 1), (short)s->fg, (short)s->bg);
            d->attr[i] |= COLOR_PAIR(i + 1);
        }
    }
}

/* ---- primitives ---------------------------------------------------------------- */

/* Write s at (y, x) with attribute elem, at most w display columns. Returns
 * the columns written. */
static int put(struct qb_dash *d, int y, int x, int w, int elem, const char *s)
{
    if (w <= 0)
        return 0;
    mbstate_t ps;
    memset(&ps, 0, sizeof ps);
    size_t bytes = 0, len = strlen(s);
    int cols = 0;
    while (bytes < len) {
        wchar_t wc;
        size_t n = mbrtowc(&wc, s + bytes, len - bytes, &ps);
        if (n == (size_t)-1 || n == (size_t)-2) {
            n = 1;
            wc = '?';
        }
        if (n == 0)
            break;
        int cw = wcwidth(wc);
        if (cw < 0)
            cw = 1;
        if (cols + cw > w)
            break;
        cols += cw;
        bytes += n;
    }
    attrset(d->attr[elem]);
    mvaddnstr(y, x, s, (int)bytes);
    return cols;
}

static int putf(struct qb_dash *d, int y, int x, int w, int elem, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int putf(struct qb_dash *d, int y, int x, int w, int elem, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return put(d, y, x, w, elem, buf);
}

static void fill(struct qb_dash *d, int y, int x, int w, int elem, const char *glyph)
{
    attrset(d->attr[elem]);
    for (int i = 0; i < w; i++)
        mvaddstr(y, x + i, glyph);
}

static void draw_box(struct qb_dash *d, const struct qb_rect *r, int focus, const char *title,
                     const char *extra)
{
    const struct glyphs *g = glyphs(d);
    int e = focus ? QB_TH_BORDER_FOCUS : QB_TH_BORDER;
    fill(d, r->y, r->x + 1, r->w - 2, e, g->h);
    fill(d, r->y + r->h - 1, r->x + 1, r->w - 2, e, g->h);
    for (int y = r->y + 1; y < r->y + r->h - 1; y++) {
        put(d, y, r->x, 1, e, g->v);
        put(d, y, r->x + r->w - 1, 1, e, g->v);
    }
    put(d, r->y, r->x, 1, e, g->tl);
    put(d, r->y, r->x + r->w - 1, 1, e, g->tr);
    put(d, r->y + r->h - 1, r->x, 1, e, g->bl);
    put(d, r->y + r->h - 1, r->x + r->w - 1, 1, e, g->br);
    int x = r->x + 2;
    x += put(d, r->y, x, r->w - 4, QB_TH_TITLE, " ");
    x += put(d, r->y, x, r->x + r->w - 2 - x, QB_TH_TITLE, title);
    x += put(d, r->y, x, r->x + r->w - 2 - x, QB_TH_TITLE, " ");
    if (!extra || !extra[0])
        return;
    int len = (int)mbstowcs(NULL, extra, 0);
    int ex = r->x + r->w - 3 - len - 1; /* right-aligned: "─ extra ─┐" */
    if (len > 0 && ex > x + 1)
        putf(d, r->y, ex, len + 2, QB_TH_DIM, " %s ", extra);
}

/* Word-wrap text into at most max_lines lines of width w; returns lines used. */
static int put_wrap(struct qb_dash *d, int y, int x, int w, int max_lines, int elem,
                    const char *text)
{
    int used = 0;
    const char *p = text;
    while (*p && used < max_lines) {
        size_t n = strlen(p);
        size_t cut = n;
        if ((int)n > w) {
            cut = (size_t)w;
            while (cut > 0 && p[cut] != ' ')
                cut--;
            if (cut == 0 || used == max_lines - 1)
                cut = (size_t)w;
        }
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)QB_MIN(cut, sizeof line - 1), p);
        put(d, y + used, x, w, elem, line);
        used++;
        p += cut;
        while (*p == ' ')
            p++;
    }
    return used;
}

void dash_fmt_bytes(double bytes, char *buf, size_t size)
{
    if (bytes < 0 || isnan(bytes)) {
        snprintf(buf, size, "-");
        return;
    }
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1000 && u < 4) {
        bytes /= 1000;
        u++;
    }
    int prec = u == 0 ? 0 : bytes < 10 ? 2 : 1;
    snprintf(buf, size, "%.*f %s", prec, bytes, units[u]);
}

void dash_fmt_count(double n, char *buf, size_t size)
{
    if (n < 0 || isnan(n))
        snprintf(buf, size, "-");
    else if (n >= 1e9)
        snprintf(buf, size, "%.2fB", n / 1e9);
    else if (n >= 1e6)
        snprintf(buf, size, "%.1fM", n / 1e6);
    else if (n >= 1e3)
        snprintf(buf, size, "%.1fk", n / 1e3);
    else
        snprintf(buf, size, "%.0f", n);
}

/* v with prec decimals and a suffix ("x", "%"); sign forces '+'; "-" when absent. */
static void fmt_num(double v, int prec, int sign, const char *suffix, char *buf, size_t size)
{
    if (isnan(v) || isinf(v))
        snprintf(buf, size, "-");
    else if (sign)
        snprintf(buf, size, "%+.*f%s", prec, v, suffix);
    else
        snprintf(buf, size, "%.*f%s", prec, v, suffix);
}

/* Sparkline of the newest w samples; invalid samples are blank. */
static void sparkline(struct qb_dash *d, int y, int x, int w, const float *v,
                      const unsigned char *ok, size_t n, double lo, double hi)
{
    const struct glyphs *g = glyphs(d);
    size_t start = n > (size_t)w ? n - (size_t)w : 0;
    int col = x + w - (int)(n - start);
    for (size_t i = start; i < n; i++, col++) {
        if (!ok[i]) {
            put(d, y, col, 1, QB_TH_DIM, " ");
            continue;
        }
        double f = hi > lo ? (v[i] - lo) / (hi - lo) : 0;
        int level = (int)(f * 7.0 + 0.5);
        level = level < 0 ? 0 : level > 7 ? 7 : level;
        put(d, y, col, 1, QB_TH_SPARK, g->spark[level]);
    }
}

static void progress_bar(struct qb_dash *d, int y, int x, int w, double fraction)
{
    const struct glyphs *g = glyphs(d);
    if (w < 8)
        return;
    int bar = w - 6;
    int filled = (int)(fraction * bar + 0.5);
    filled = filled < 0 ? 0 : filled > bar ? bar : filled;
    fill(d, y, x, filled, QB_TH_BAR, g->bar_full);
    fill(d, y, x + filled, bar - filled, QB_TH_BAR_BG, g->bar_empty);
    putf(d, y, x + bar + 1, 5, QB_TH_TEXT, "%3.0f%%", fraction * 100);
}

/* ---- panes ------------------------------------------------------------------------ */

/* Keep sel visible in a list of n entries shown `rows` lines at a time from
 * *top, and the view full when the list is long enough (after a resize). */
static void scroll_to(int sel, int n, int rows, int *top)
{
    if (sel < *top)
        *top = sel;
    if (sel >= *top + rows)
        *top = sel - rows + 1;
    if (*top > n - rows)
        *top = n - rows;
    if (*top < 0)
        *top = 0;
}

static int row_elem(const struct qb_dash *d, int pane, int selected)
{
    if (!selected)
        return QB_TH_TEXT;
    return d->focus == pane ? QB_TH_SELECTED : QB_TH_BORDER_FOCUS;
}

static void draw_models(struct qb_dash *d, const struct qb_rect *in)
{
    const struct glyphs *g = glyphs(d);
    int detail_rows = in->h >= 5 ? 2 : 1;
    int rows = in->h - detail_rows;
    if (d->n_models == 0) {
        put(d, in->y, in->x, in->w, QB_TH_DIM, "no local models; / searches the Hub");
        return;
    }
    scroll_to(d->model_sel, (int)d->n_models, rows, &d->model_top);
    for (int i = 0; i < rows && d->model_top + i < (int)d->n_models; i++) {
        int idx = d->model_top + i;
        const struct dash_model *m = &d->models[idx];
        int sel = idx == d->model_sel;
        int e = row_elem(d, QB_PANE_MODELS, sel);
        char size[24];
        dash_fmt_bytes((double)m->disk_bytes, size, sizeof size);
        int size_w = in->w >= 40 ? 10 : 0;
        if (sel)
            fill(d, in->y + i, in->x, in->w, e, " ");
        put(d, in->y + i, in->x, 2, e, idx == d->model_active ? g->active : " ");
        put(d, in->y + i, in->x + 2, in->w - 2 - size_w, e, m->id);
        if (size_w)
            putf(d, in->y + i, in->x + in->w - 9, 9, sel ? e : QB_TH_DIM, "%9s",
                 m->source[0] == 'h' ? "hub" : size);
    }
    const struct dash_model *m = dash_model_selected(d);
    if (!m)
        return;
    int y = in->y + in->h - detail_rows;
    char params[24], size[24];
    dash_fmt_count((double)m->params, params, sizeof params);
    dash_fmt_bytes((double)m->disk_bytes, size, sizeof size);
    if (m->supported == 1) {
        putf(d, y, in->x, in->w, QB_TH_DIM, "%s, %d layers, hidden %d", m->arch, m->layers,
             m->hidden);
        if (detail_rows > 1)
            putf(d, y + 1, in->x, in->w, QB_TH_GOOD, "%s params  %s  %s%s", params,
                 m->dtype, size, in->w >= 40 ? "  supported" : "");
    } else {
        put_wrap(d, y, in->x, in->w, detail_rows, m->supported == 0 ? QB_TH_BAD : QB_TH_DIM,
                 m->note[0] ? m->note : "details after pull");
    }
}

static const char *method_name(enum qb_method m)
{
    switch (m) {
    case QB_METHOD_NONE: return "baseline";
    case QB_METHOD_RTN: return "RTN";
    case QB_METHOD_GPTQ: return "GPTQ";
    case QB_METHOD_AWQ: return "AWQ";
    case QB_METHOD_GGUF: return "GGUF mix";
    }
    return "?";
}

static void draw_method(struct qb_dash *d, const struct qb_rect *in)
{
    const struct dash_model *m = dash_model_selected(d);
    int rows = in->h - 3;
    putf(d, in->y, in->x, in->w, QB_TH_HEADER, "  %-14s %6s %9s  %-s", "scheme", "bits/w",
         "exp. size", "method");
    if (rows < 1)
        rows = 1;
    scroll_to(d->scheme_sel, d->n_schemes, rows, &d->scheme_top);
    for (int i = 0; i < rows && d->scheme_top + i < d->n_schemes; i++) {
        int idx = d->scheme_top + i;
        const struct dash_scheme *s = &d->schemes[idx];
        int sel = idx == d->scheme_sel;
        int e = row_elem(d, QB_PANE_METHOD, sel);
        char bpw[16], size[24];
        fmt_num(s->bpw, 2, 0, "", bpw, sizeof bpw);
        dash_fmt_bytes(dash_expected_bytes(m, s), size, sizeof size);
        const char *method = method_name(s->s.method);
        if (sel)
            fill(d, in->y + 1 + i, in->x, in->w, e, " ");
        int x = putf(d, in->y + 1 + i, in->x, in->w, e, "%s %-14s %6s %9s  %-9s",
                     s->marked ? glyphs(d)->mark : " ", s->s.name, bpw, size, method);
        if (in->w - x >= 30) { /* wide: each row's hardware support */
            char hw[160];
            dash_hw_support(d, s, hw, sizeof hw);
            const char *colon = strstr(hw, ": ");
            char *paren = strstr(hw, " (no GPU");
            if (paren)
                *paren = '\0';
            put(d, in->y + 1 + i, in->x + x + 1, in->w - x - 1, sel ? e : QB_TH_DIM,
                colon ? colon + 2 : hw);
        }
    }
    if (d->n_schemes == 0)
        return;
    char hw[160];
    dash_hw_support(d, &d->schemes[d->scheme_sel], hw, sizeof hw);
    put(d, in->y + in->h - 2, in->x, in->w, QB_TH_WARN, hw);
    /* the options that matter for the selected scheme */
    const struct dash_scheme *sel = &d->schemes[d->scheme_sel];
    char group[16], calib[32];
    int gs = dash_group_size(d);
    snprintf(group, sizeof group, gs ? "%d" : "default", gs);
    dash_calib_name(d, calib, sizeof calib);
    if (sel->s.needs_calibration)
        putf(d, in->y + in->h - 1, in->x, in->w, QB_TH_DIM, "group=%s act-order=%s calib=%s:%d",
             group, d->act_order ? "on" : "off", calib, dash_calib_samples(d));
    else if (sel->s.method == QB_METHOD_NONE)
        put(d, in->y + in->h - 1, in->x, in->w, QB_TH_DIM, "no options: the reference dtype");
    else
        putf(d, in->y + in->h - 1, in->x, in->w, QB_TH_DIM, "group=%s  (no calibration: %s)",
             group, method_name(sel->s.method));
}

static void fmt_eta(double s, char *buf, size_t size)
{
    if (s < 0)
        snprintf(buf, size, "ETA -");
    else if (s < 60)
        snprintf(buf, size, "ETA %.0fs", s);
    else
        snprintf(buf, size, "ETA %dm%02ds", (int)s / 60, (int)s % 60);
}

static void draw_job(struct qb_dash *d, const struct qb_rect *in)
{
    const struct qb_progress_snapshot *s = &d->snap;
    int y = in->y;
    if (!s->running && !s->finished) {
        int ch = dash_eval_chunks(d);
        char chunks[16];
        snprintf(chunks, sizeof chunks, ch ? "%d" : "all", ch);
        put(d, y, in->x, in->w, QB_TH_DIM, "idle: r evaluates the selected scheme");
        putf(d, y + 1, in->x, in->w, QB_TH_DIM, "eval: %s chunks of %d tokens, %s backend",
             chunks, d->opt.ctx ? d->opt.ctx : 512, d->opt.backend);
        y++;
        if (d->doctor_verdict[0])
            put_wrap(d, y + 1, in->x, in->w, 2, QB_TH_WARN, d->doctor_verdict);
        return;
    }
    const char *state = s->running ? (d->cancel_requested ? "cancelling" : "running")
                        : s->status == QB_OK            ? "done"
                        : s->status == QB_ERR_CANCELLED ? "cancelled"
                                                        : "failed";
    int se = s->running ? QB_TH_TEXT : s->status == QB_OK ? QB_TH_GOOD
                                   : s->status == QB_ERR_CANCELLED ? QB_TH_WARN : QB_TH_BAD;
    int x = in->x;
    x += putf(d, y, x, in->w, QB_TH_TITLE, "%s ", d->job_title[0] ? d->job_title
                                                                  : qb_job_kind_name(s->kind));
    x += putf(d, y, x, in->x + in->w - x, se, "[%s]", state);
    if (s->running && qb_jobq_queued(d->jobq) > 0)
        putf(d, y, x, in->x + in->w - x, QB_TH_DIM, " +%d queued", qb_jobq_queued(d->jobq));
    y++;
    progress_bar(d, y++, in->x, in->w, s->fraction);
    char eta[24], where[96] = "";
    fmt_eta(s->eta_s, eta, sizeof eta);
    if (s->n_layers > 0 && s->total <= 0) /* layers while quantizing, then units */
        snprintf(where, sizeof where, "  layer %d/%d", s->layer, s->n_layers);
    if (s->total > 0) {
        size_t n = strlen(where);
        snprintf(where + n, sizeof where - n, "  %lld/%lld %s", (long long)s->done,
                 (long long)s->total, s->unit);
    }
    putf(d, y++, in->x, in->w, QB_TH_TEXT, "%s%s  %s  %.1fs", s->stage, where, eta,
         s->elapsed_s);
    if (s->finished && s->status != QB_OK && s->error[0] && y < in->y + in->h)
        put(d, y++, in->x, in->w, s->status == QB_ERR_CANCELLED ? QB_TH_WARN : QB_TH_BAD,
            s->error);
    int room = in->y + in->h - y;
    int first = s->n_log > room ? s->n_log - room : 0;
    for (int i = first; i < s->n_log && y < in->y + in->h; i++)
        put(d, y++, in->x, in->w, QB_TH_DIM, s->log[i]);
}

static double hist_max(const float *v, const unsigned char *ok, size_t n, double floor)
{
    double mx = floor;
    for (size_t i = 0; i < n; i++) {
        if (ok[i] && v[i] > mx)
            mx = v[i];
    }
    return mx;
}

static void gpu_row(struct qb_dash *d, int y, const struct qb_rect *in, const char *label,
                    int valid, const char *value, const float *hist, const unsigned char *ok,
                    double hi)
{
    put(d, y, in->x, 6, QB_TH_DIM, label);
    put(d, y, in->x + 6, 16, valid ? QB_TH_TEXT : QB_TH_DIM, value);
    int sw = in->w - 23;
    if (hist && sw > 3 && d->gpu.n_hist)
        sparkline(d, y, in->x + 23, sw, hist, ok, d->gpu.n_hist, 0, hi);
}

static void gpu_value(char *buf, size_t size, int valid, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void gpu_value(char *buf, size_t size, int valid, const char *fmt, ...)
{
    if (!valid) {
        snprintf(buf, size, "N/A");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* Rows, top to bottom: name (and driver/CUDA when there is room), memory,
 * utilization, clocks, temperature, power; with only four rows left after
 * the name, temperature and power share the last one. */
static void draw_gpu(struct qb_dash *d, const struct qb_rect *in)
{
    struct dash_gpu *g = &d->gpu;
    int y = in->y, end = in->y + in->h;
    int have = g->n_gpus > 0;
    if (!have) {
        y += put_wrap(d, y, in->x, in->w, 2, QB_TH_WARN, g->notice[0] ? g->notice : "no GPU");
    } else {
        if (g->cc_major > 0)
            putf(d, y++, in->x, in->w, QB_TH_TITLE, "%s  sm_%d%d", g->name, g->cc_major,
                 g->cc_minor);
        else
            put(d, y++, in->x, in->w, QB_TH_TITLE, g->name[0] ? g->name : "GPU 0");
        if (in->h >= 8)
            putf(d, y++, in->x, in->w, QB_TH_DIM, "driver %s  CUDA %s",
                 g->driver[0] ? g->driver : "N/A", g->cuda[0] ? g->cuda : "N/A");
    }
    char v[64], w2[64];
    gpu_value(v, sizeof v, have && g->v_mem, "%.1f/%.1f GiB", g->mem_used_gib,
              g->mem_total_gib);
    if (y < end)
        gpu_row(d, y++, in, "mem", have && g->v_mem, v, g->hist_mem, g->ok_mem,
                g->mem_total_gib * (double)(1u << 30));
    gpu_value(v, sizeof v, have && g->v_util, "%u%%", g->util_pct);
    if (y < end)
        gpu_row(d, y++, in, "util", have && g->v_util, v, g->hist_util, g->ok_util, 100);
    if (y < end) {
        gpu_value(v, sizeof v, have && g->v_sm, "%u", g->sm_mhz);
        gpu_value(w2, sizeof w2, have && g->v_memclk, "%u", g->mem_mhz);
        put(d, y, in->x, 6, QB_TH_DIM, "clock");
        putf(d, y++, in->x + 6, in->w - 6, have ? QB_TH_TEXT : QB_TH_DIM, "SM %s  mem %s MHz",
             v, w2);
    }
    gpu_value(v, sizeof v, have && g->v_temp, "%u C", g->temp_c);
    if (g->v_power_limit)
        gpu_value(w2, sizeof w2, have && g->v_power, "%.0f/%.0f W", g->power_w,
                  g->power_limit_w);
    else
        gpu_value(w2, sizeof w2, have && g->v_power, "%.0f W", g->power_w);
    if (end - y >= 2) {
        gpu_row(d, y++, in, "temp", have && g->v_temp, v, g->hist_temp, g->ok_temp, 100);
        gpu_row(d, y++, in, "power", have && g->v_power, w2, g->hist_power, g->ok_power,
                hist_max(g->hist_power, g->ok_power, g->n_hist,
                         g->v_power_limit ? g->power_limit_w * 1000 : 1));
    } else if (y < end) {
        put(d, y, in->x, 6, QB_TH_DIM, "temp");
        putf(d, y, in->x + 6, in->w - 6, have ? QB_TH_TEXT : QB_TH_DIM, "%s  power %s", v, w2);
    }
}

static void result_cells(const struct qb_result *r, char c[9][24])
{
    snprintf(c[0], 24, "%.16s%s", r->scheme, r->baseline ? " (base)" : "");
    fmt_num(r->bits_per_weight, 2, 0, "", c[1], 24);
    dash_fmt_bytes((double)r->size_bytes, c[2], 24);
    fmt_num(r->ppl, 3, 0, "", c[3], 24);
    if (r->baseline)
        snprintf(c[4], 24, "-");
    else
        fmt_num(r->delta_ppl, 3, 1, "", c[4], 24);
    fmt_num(r->kld, 4, 0, "", c[5], 24);
    fmt_num(r->pp_tps, 0, 0, "", c[6], 24);
    fmt_num(r->tg_tps, 1, 0, "", c[7], 24);
    /* decode speed-up (what weight quantization buys), else prefill's */
    double sp = qb_result_tg_speedup(r);
    if (isnan(sp))
        sp = qb_result_speedup(r);
    fmt_num(r->baseline ? NAN : sp, 2, 0, "x", c[8], 24);
}

/* One Results row: 77 columns below 89, 89 from there on. Cells are right
 * aligned by display width (the header's delta sign is one column). */
static void results_line(struct qb_dash *d, int y, const struct qb_rect *in, int e,
                         char c[9][24])
{
    static const int narrow[9] = {12, 5, 7, 8, 7, 7, 8, 8, 8};
    static const int wide[9] = {16, 6, 9, 9, 8, 8, 9, 8, 8};
    const int *w = in->w >= 89 ? wide : narrow;
    int x = in->x;
    x += put(d, y, x, w[0], e, c[0]);
    x = in->x + w[0];
    for (int i = 1; i < 9; i++) {
        int len = (int)mbstowcs(NULL, c[i], 0);
        if (len < 0)
            len = (int)strlen(c[i]);
        int pad = w[i] - len;
        x += 1 + (pad > 0 ? pad : 0);
        x += put(d, y, x, in->x + in->w - x, e, c[i]);
    }
}

static void draw_results(struct qb_dash *d, const struct qb_rect *in)
{
    const struct qb_results *v = &d->view;
    int wide = in->w >= 120;
    int y = in->y;
    char head[9][24] = {"scheme", "b/w", "size", "ppl", "", "KLD", "pp tok/s", "tg tok/s",
                        "speed-up"};
    snprintf(head[4], sizeof head[4], "%sppl", glyphs(d)->delta);
    results_line(d, y, in, QB_TH_HEADER, head);
    if (wide)
        putf(d, y, in->x + 90, in->w - 90, QB_TH_HEADER, " %7s %-8s %-19s", "top-1", "backend",
             "time");
    y++;
    int foot = d->doctor_verdict[0] ? 1 : 0;
    int rows = in->h - 1 - foot;
    if (v->n == 0) {
        put(d, y, in->x, in->w, QB_TH_DIM,
            d->show_history ? "no past runs in the history yet"
                            : "no runs yet: r evaluates the selected scheme, h shows past runs");
    }
    scroll_to(d->results_sel, (int)v->n, rows, &d->results_top);
    for (int i = 0; i < rows && d->results_top + i < (int)v->n; i++) {
        int idx = d->results_top + i;
        const struct qb_result *r = &v->items[idx];
        char c[9][24];
        result_cells(r, c);
        int sel = idx == d->results_sel && d->focus == QB_PANE_RESULTS;
        int e = sel ? QB_TH_SELECTED : r->baseline ? QB_TH_BASELINE : QB_TH_TEXT;
        if (sel)
            fill(d, y + i, in->x, in->w, e, " ");
        results_line(d, y + i, in, e, c);
        if (wide) {
            char top1[16], when[32] = "-";
            fmt_num(r->top1 * 100, 1, 0, "%", top1, sizeof top1);
            time_t t = (time_t)r->time;
            struct tm tm;
            if (r->time > 0 && localtime_r(&t, &tm))
                strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
            putf(d, y + i, in->x + 90, in->w - 90, e, " %7s %-8s %-19s", top1, r->backend,
                 when);
        }
    }
    if (foot)
        put(d, in->y + in->h - 1, in->x, in->w, QB_TH_WARN, d->doctor_verdict);
}

struct pane_class {
    void (*draw)(struct qb_dash *d, const struct qb_rect *inner);
};

static const struct pane_class pane_classes[QB_PANE_COUNT] = {
    [QB_PANE_MODELS] = {.draw = draw_models},   [QB_PANE_METHOD] = {.draw = draw_method},
    [QB_PANE_JOB] = {.draw = draw_job},         [QB_PANE_GPU] = {.draw = draw_gpu},
    [QB_PANE_RESULTS] = {.draw = draw_results},
};

static void pane_extra(const struct qb_dash *d, int p, char *buf, size_t size)
{
    buf[0] = '\0';
    if (p == QB_PANE_RESULTS)
        snprintf(buf, size, "%s, sort %s %s", d->show_history ? "history" : "session",
                 qb_results_key_name(d->sort_key), d->sort_desc ? glyphs(d)->down
                                                                : glyphs(d)->up);
    else if (p == QB_PANE_MODELS)
        snprintf(buf, size, "%zu", d->n_models);
    else if (p == QB_PANE_JOB && d->snap.running)
        snprintf(buf, size, "%.0f%%", d->snap.fraction * 100);
    if (d->zoom == p) {
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, "%szoom", n ? ", " : "");
    }
}

static void draw_pane(struct qb_dash *d, int p)
{
    const struct qb_rect *r = &d->layout.pane[p];
    char extra[64];
    pane_extra(d, p, extra, sizeof extra);
    draw_box(d, r, d->focus == p, qb_pane_title(p), extra);
    struct qb_rect in = {r->x + 1, r->y + 1, r->w - 2, r->h - 2};
    pane_classes[p].draw(d, &in);
}

/* ---- header, footer, overlays --------------------------------------------------------- */

static void draw_header(struct qb_dash *d)
{
    const struct qb_rect *r = &d->layout.header;
    fill(d, r->y, 0, r->w, QB_TH_HEADER, " ");
    const struct dash_model *m = dash_model_active(d);
    if (!m)
        m = dash_model_selected(d);
    int x = put(d, 0, 1, r->w - 2, QB_TH_HEADER, "quantbench " QB_VERSION);
    x += putf(d, 0, 1 + x, r->w - 2 - x, QB_TH_HEADER, "  model %s  backend %s",
              m ? m->id : "-", d->opt.backend);
    const char *right = d->snap.running ? "job running" : "? help  q quit";
    int rw = (int)strlen(right);
    if (r->w - rw - 2 > x + 2)
        put(d, 0, r->w - rw - 1, rw, QB_TH_HEADER, right);
}

static void draw_footer(struct qb_dash *d)
{
    const struct qb_rect *r = &d->layout.footer;
    fill(d, r->y, 0, r->w, QB_TH_STATUS, " ");
    if (d->status[0] && qb_now_seconds() < d->status_until) {
        put(d, r->y, 1, r->w - 2, d->status_elem == QB_TH_TEXT ? QB_TH_STATUS : d->status_elem,
            d->status);
        return;
    }
    static const char *const hints[][2] = {
        {"Tab", "pane"}, {"r", "run"}, {"c", "cancel"}, {"/", "search"}, {"z", "zoom"},
        {"?", "help"}, {"q", "quit"}, {"Enter", "select"}, {"C", "compare"}, {"d", "doctor"},
    };
    int x = 1;
    for (size_t i = 0; i < QB_ARRAY_LEN(hints) && x < r->w - 8; i++) {
        x += put(d, r->y, x, r->w - 1 - x, QB_TH_KEY, hints[i][0]);
        x += putf(d, r->y, x, r->w - 1 - x, QB_TH_STATUS, " %s  ", hints[i][1]);
    }
}

static struct qb_rect centered(const struct qb_dash *d, int w, int h)
{
    if (w > d->layout.cols - 2)
        w = d->layout.cols - 2;
    if (h > d->layout.rows - 2)
        h = d->layout.rows - 2;
    struct qb_rect r = {(d->layout.cols - w) / 2, (d->layout.rows - h) / 2, w, h};
    return r;
}

static void clear_rect(struct qb_dash *d, const struct qb_rect *r)
{
    for (int y = r->y; y < r->y + r->h; y++)
        fill(d, y, r->x, r->w, QB_TH_TEXT, " ");
}

static void draw_help(struct qb_dash *d)
{
    size_t n = qb_keys_help_lines(NULL, 0);
    char(*text)[QB_HELP_LINE_MAX] = qb_calloc_array(n, sizeof *text);
    if (!text)
        dash_fatal_oom(d);
    qb_keys_help_lines(text, n);
    struct qb_rect r = centered(d, 72, (int)n + 4);
    clear_rect(d, &r);
    draw_box(d, &r, 1, "Help: keys", "Esc closes");
    int rows = r.h - 3;
    int max_scroll = (int)n > rows ? (int)n - rows : 0;
    if (d->help_scroll > max_scroll)
        d->help_scroll = max_scroll;
    for (int i = 0; i < rows && d->help_scroll + i < (int)n; i++) {
        const char *l = text[d->help_scroll + i];
        put(d, r.y + 1 + i, r.x + 2, r.w - 4, l[0] == ' ' ? QB_TH_TEXT : QB_TH_TITLE, l);
    }
    putf(d, r.y + r.h - 2, r.x + 2, r.w - 4, QB_TH_DIM, "%s%s scroll  Esc/?/q close  (%d-%d of %zu)",
         glyphs(d)->up, glyphs(d)->down, d->help_scroll + 1,
         QB_MIN(d->help_scroll + rows, (int)n), n);
    free(text);
}

static void draw_confirm(struct qb_dash *d)
{
    struct qb_rect r = centered(d, 56, 5);
    clear_rect(d, &r);
    draw_box(d, &r, 1, "Quit?", NULL);
    put(d, r.y + 1, r.x + 2, r.w - 4, QB_TH_WARN, "A job is running. Cancel it and quit?");
    put(d, r.y + 2, r.x + 2, r.w - 4, QB_TH_TEXT, "y: cancel and quit    n/Esc: keep working");
}

static void draw_search(struct qb_dash *d)
{
    struct qb_rect r = centered(d, 60, 5);
    clear_rect(d, &r);
    draw_box(d, &r, 1, "Search the Hugging Face Hub", NULL);
    int x = put(d, r.y + 1, r.x + 2, r.w - 4, QB_TH_TEXT, "/ ");
    x += put(d, r.y + 1, r.x + 2 + x, r.w - 5 - x, QB_TH_SELECTED, d->search);
    put(d, r.y + 1, r.x + 2 + x, 1, QB_TH_BAR, "_");
    put(d, r.y + 2, r.x + 2, r.w - 4, QB_TH_DIM, "Enter searches  Esc closes");
}

static void draw_too_small(struct qb_dash *d)
{
    char msg[96];
    snprintf(msg, sizeof msg, "terminal too small: %dx%d, need %dx%d", d->layout.cols,
             d->layout.rows, QB_LAYOUT_MIN_COLS, QB_LAYOUT_MIN_ROWS);
    int y = d->layout.rows / 2;
    int w = (int)strlen(msg);
    put(d, y > 0 ? y - 1 : 0, w < d->layout.cols ? (d->layout.cols - w) / 2 : 0,
        d->layout.cols, QB_TH_WARN, msg);
    const char *hint = "enlarge the window, or q quits";
    w = (int)strlen(hint);
    if (y + 1 < d->layout.rows)
        put(d, y + 1, w < d->layout.cols ? (d->layout.cols - w) / 2 : 0, d->layout.cols,
            QB_TH_DIM, hint);
}

void dash_draw(struct qb_dash *d)
{
    int rows, cols;
    getmaxyx(stdscr, rows, cols);
    qb_layout_compute(cols, rows, d->zoom, &d->layout);
    erase();
    if (d->layout.too_small) {
        draw_too_small(d);
    } else {
        draw_header(d);
        for (int p = 0; p < QB_PANE_COUNT; p++) {
            if (d->layout.visible[p])
                draw_pane(d, p);
        }
        draw_footer(d);
        if (d->overlay == DASH_OV_HELP)
            draw_help(d);
        else if (d->overlay == DASH_OV_CONFIRM)
            draw_confirm(d);
        else if (d->overlay == DASH_OV_SEARCH)
            draw_search(d);
    }
    wnoutrefresh(stdscr);
    doupdate();
}
