/*
 * layout.c - the pure layout function (see layout.h).
 *
 * Bands get their minimum heights first (top 8, middle 7, bottom 7 at 24
 * rows), then the remaining rows are shared 35% / 25% / 40%. Widths: the top
 * band splits 40/60 (Models narrower: ids are short; the scheme table is
 * wide), the middle band 55/45 (the Job log wants width; GPU sparklines are
 * happy with 36+ columns).
 */
#include "layout.h"

#include <string.h>

const char *qb_pane_title(enum qb_pane pane)
{
    switch (pane) {
    case QB_PANE_MODELS: return "Models";
    case QB_PANE_METHOD: return "Method & precision";
    case QB_PANE_JOB: return "Job";
    case QB_PANE_GPU: return "GPU";
    case QB_PANE_RESULTS: return "Results";
    case QB_PANE_COUNT: break;
    }
    return "?";
}

enum { TOP_MIN = 8, MID_MIN = 7, BOTTOM_MIN = 7 };

static struct qb_rect rect(int x, int y, int w, int h)
{
    struct qb_rect r = {x, y, w, h};
    return r;
}

static int split_width(int cols, int percent, int min_left, int min_right)
{
    int left = cols * percent / 100;
    if (left < min_left)
        left = min_left;
    if (cols - left < min_right)
        left = cols - min_right;
    return left;
}

void qb_layout_compute(int cols, int rows, int zoom, struct qb_layout *out)
{
    memset(out, 0, sizeof *out);
    out->cols = cols;
    out->rows = rows;
    if (cols < QB_LAYOUT_MIN_COLS || rows < QB_LAYOUT_MIN_ROWS) {
        out->too_small = 1;
        return;
    }
    out->header = rect(0, 0, cols, 1);
    out->footer = rect(0, rows - 1, cols, 1);
    int top = 1, avail = rows - 2;
    if (zoom >= 0 && zoom < QB_PANE_COUNT) {
        out->pane[zoom] = rect(0, top, cols, avail);
        out->visible[zoom] = 1;
        return;
    }
    int extra = avail - (TOP_MIN + MID_MIN + BOTTOM_MIN);
    /* cumulative boundaries keep the top and bottom bands monotonic in rows */
    int top_h = TOP_MIN + extra * 35 / 100;
    int mid_end = TOP_MIN + MID_MIN + extra * 60 / 100;
    int mid_h = mid_end - top_h;

    int models_w = split_width(cols, 40, QB_LAYOUT_MIN_PANE_W + 6, 44);
    out->pane[QB_PANE_MODELS] = rect(0, top, models_w, top_h);
    out->pane[QB_PANE_METHOD] = rect(models_w, top, cols - models_w, top_h);

    int job_w = split_width(cols, 55, 40, 36);
    out->pane[QB_PANE_JOB] = rect(0, top + top_h, job_w, mid_h);
    out->pane[QB_PANE_GPU] = rect(job_w, top + top_h, cols - job_w, mid_h);

    out->pane[QB_PANE_RESULTS] = rect(0, top + mid_end, cols, avail - mid_end);
    for (int i = 0; i < QB_PANE_COUNT; i++)
        out->visible[i] = 1;
}

int qb_layout_hit(const struct qb_layout *l, int x, int y)
{
    for (int i = 0; i < QB_PANE_COUNT; i++) {
        const struct qb_rect *r = &l->pane[i];
        if (l->visible[i] && x >= r->x && x < r->x + r->w && y >= r->y && y < r->y + r->h)
            return i;
    }
    return -1;
}
