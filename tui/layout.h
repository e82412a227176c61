/*
 * layout.h - where the dashboard's panes go, as a pure function of the
 * terminal size (no curses here, so it is unit-tested over many sizes).
 *
 *   row 0          header: product, model, job state
 *   rows 1..R-2    the five panes, tiled without gaps or overlap:
 *                    +-----------+-------------------+
 *                    | Models    | Method & precision|   top band
 *                    +-----------+-------+-----------+
 *                    | Job               | GPU       |   middle band
 *                    +-------------------+-----------+
 *                    | Results                       |   bottom band
 *                    +-------------------------------+
 *   row R-1        footer: key hints / status line
 *
 * From QB_LAYOUT_MIN_COLS x QB_LAYOUT_MIN_ROWS up every pane is visible with
 * its title; extra rows go mostly to Results and Models, extra columns are
 * shared between the left and right panes. Below the minimum the layout says
 * too_small and the dashboard draws only a "terminal too small" screen.
 * zoom (a pane index, or -1) gives one pane the whole area between header and
 * footer and hides the others.
 */
#ifndef QB_LAYOUT_H
#define QB_LAYOUT_H

#define QB_LAYOUT_MIN_COLS 80
#define QB_LAYOUT_MIN_ROWS 24

enum qb_pane {
    QB_PANE_MODELS = 0,
    QB_PANE_METHOD,
    QB_PANE_JOB,
    QB_PANE_GPU,
    QB_PANE_RESULTS,
    QB_PANE_COUNT
};

/* "Models", "Method & precision", "Job", "GPU", "Results"; never NULL. */
const char *qb_pane_title(enum qb_pane pane);

struct qb_rect {
    int x, y;  /* top-left cell, 0-based */
    int w, h;  /* cells, borders included */
};

struct qb_layout {
    int cols, rows;
    int too_small;                  /* 1: nothing but the too-small message fits */
    struct qb_rect header, footer;  /* one row each */
    struct qb_rect pane[QB_PANE_COUNT];
    int visible[QB_PANE_COUNT];
};

/* Smallest pane (borders included) at the minimum terminal size. */
#define QB_LAYOUT_MIN_PANE_W 24
#define QB_LAYOUT_MIN_PANE_H 6

void qb_layout_compute(int cols, int rows, int zoom, struct qb_layout *out);

/* The pane whose rect holds cell (x, y), or -1. */
int qb_layout_hit(const struct qb_layout *l, int x, int y);

#endif /* QB_LAYOUT_H */
