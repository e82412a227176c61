/*
 * cli_progress.c - progress bar / JSON lines on stderr (see cli_progress.h).
 * The listener runs on the publishing thread; foreground commands publish
 * from one thread, so no locking is needed here.
 */
#include "cli_progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void format_eta(double s, char *buf, size_t n)
{
    if (s < 0) {
        snprintf(buf, n, "--:--");
        return;
    }
    int t = (int)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%02d:%02d", t / 60, t % 60);
}

static void draw_bar(struct qb_cli_progress *r, const struct qb_progress_snapshot *s)
{
    char eta[16], layer[32] = "", metric[48] = "";
    format_eta(s->eta_s, eta, sizeof eta);
    if (s->n_layers > 0)
        snprintf(layer, sizeof layer, " layer %d/%d", s->layer, s->n_layers);
    if (s->metric_valid)
        snprintf(metric, sizeof metric, " %s %.4g", s->metric_name, s->metric);
    int width = 24, fill = (int)(s->fraction * width + 0.5);
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r\033[K%s [%s] %3.0f%%%s %lld/%lld %s%s eta %s", s->stage, bar,
            s->fraction * 100, layer, (long long)s->done, (long long)s->total, s->unit, metric, eta);
    fflush(stderr);
    r->bar_visible = 1;
}

static void on_publish(void *ctx, const struct qb_progress *p)
{
    struct qb_cli_progress *r = ctx;
    struct qb_progress_snapshot s;
    qb_progress_read(p, &s);
    double now = qb_now_seconds();
    int stage_changed = strcmp(s.stage, r->last_stage) != 0;
    int due = now - r->last_draw >= 0.1 || stage_changed || s.finished;
    if (!due || s.seq == r->last_seq)
        return;
    r->last_draw = now;
    r->last_seq = s.seq;
    snprintf(r->last_stage, sizeof r->last_stage, "%s", s.stage);
    if (r->mode == QB_CLI_PROGRESS_JSON) {
        char line[2048];
        fprintf(stderr, "%s\n", qb_progress_to_json(&s, line, sizeof line));
        fflush(stderr);
    } else if (r->mode == QB_CLI_PROGRESS_AUTO && r->is_tty) {
        draw_bar(r, &s);
    }
}

void qb_cli_progress_attach(struct qb_cli_progress *r, enum qb_cli_progress_mode mode,
                            struct qb_progress *p)
{
    memset(r, 0, sizeof *r);
    r->mode = mode;
    r->is_tty = isatty(STDERR_FILENO);
    qb_progress_set_listener(p, on_publish, r);
}

void qb_cli_progress_clear(struct qb_cli_progress *r)
{
    if (r->bar_visible) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
        r->bar_visible = 0;
    }
}
