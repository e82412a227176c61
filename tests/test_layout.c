/*
 * test_layout.c - the dashboard layout over every terminal size from 20x5 to
 * 320x120: below 80x24 only "too small"; from there the five panes tile the
 * area between header and footer exactly (no gap, no overlap, inside the
 * screen), each big enough for its title, and grow with the terminal; zoom
 * gives one pane everything.
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tui/layout.h"

static void check_inside(const struct qb_layout *l, const struct qb_rect *r, const char *what)
{
    cr_assert(r->x >= 0 && r->y >= 0 && r->w > 0 && r->h > 0, "%s at %dx%d", what, l->cols,
              l->rows);
    cr_assert(r->x + r->w <= l->cols && r->y + r->h <= l->rows, "%s outside at %dx%d", what,
              l->cols, l->rows);
}

/* Every cell of rows 1..R-2 is covered by exactly one visible pane. */
static void check_tiling(const struct qb_layout *l)
{
    static unsigned char cover[130][330];
    memset(cover, 0, sizeof cover);
    for (int p = 0; p < QB_PANE_COUNT; p++) {
        if (!l->visible[p])
            continue;
        const struct qb_rect *r = &l->pane[p];
        check_inside(l, r, qb_pane_title(p));
        cr_assert(r->y >= 1 && r->y + r->h <= l->rows - 1, "pane over header/footer");
        for (int y = r->y; y < r->y + r->h; y++)
            for (int x = r->x; x < r->x + r->w; x++)
                cover[y][x]++;
    }
    for (int y = 1; y < l->rows - 1; y++)
        for (int x = 0; x < l->cols; x++)
            cr_assert_eq(cover[y][x], 1, "cell %d,%d covered %d times at %dx%d", x, y,
                         cover[y][x], l->cols, l->rows);
}

Test(layout, below_minimum_is_too_small)
{
    struct qb_layout l;
    for (int c = 20; c <= 320; c += 3) {
        for (int r = 5; r <= 120; r += 2) {
            qb_layout_compute(c, r, -1, &l);
            int small = c < QB_LAYOUT_MIN_COLS || r < QB_LAYOUT_MIN_ROWS;
            cr_assert_eq(l.too_small, small, "%dx%d", c, r);
        }
    }
    qb_layout_compute(79, 24, -1, &l);
    cr_assert(l.too_small);
    qb_layout_compute(80, 23, -1, &l);
    cr_assert(l.too_small);
    qb_layout_compute(80, 24, -1, &l);
    cr_assert_not(l.too_small);
}

Test(layout, five_panes_tile_the_screen_at_every_size)
{
    struct qb_layout l;
    for (int c = QB_LAYOUT_MIN_COLS; c <= 320; c++) {
        for (int r = QB_LAYOUT_MIN_ROWS; r <= 120; r += (c % 7 == 0) ? 1 : 5) {
            qb_layout_compute(c, r, -1, &l);
            cr_assert_not(l.too_small);
            check_inside(&l, &l.header, "header");
            check_inside(&l, &l.footer, "footer");
            cr_assert_eq(l.header.y, 0);
            cr_assert_eq(l.footer.y, r - 1);
            for (int p = 0; p < QB_PANE_COUNT; p++) {
                cr_assert(l.visible[p], "%s hidden at %dx%d", qb_pane_title(p), c, r);
                cr_assert_geq(l.pane[p].w, QB_LAYOUT_MIN_PANE_W, "%s width at %dx%d",
                              qb_pane_title(p), c, r);
                cr_assert_geq(l.pane[p].h, QB_LAYOUT_MIN_PANE_H, "%s height at %dx%d",
                              qb_pane_title(p), c, r);
                /* the title with its decoration fits on the top border */
                cr_assert_geq(l.pane[p].w, (int)strlen(qb_pane_title(p)) + 6);
            }
            check_tiling(&l);
        }
    }
}

Test(layout, bigger_terminals_give_panes_more_room)
{
    struct qb_layout small, big;
    qb_layout_compute(80, 24, -1, &small);
    qb_layout_compute(160, 48, -1, &big);
    for (int p = 0; p < QB_PANE_COUNT; p++) {
        cr_assert_gt(big.pane[p].w * big.pane[p].h, small.pane[p].w * small.pane[p].h,
                     "%s", qb_pane_title(p));
    }
    cr_assert_gt(big.pane[QB_PANE_RESULTS].h, small.pane[QB_PANE_RESULTS].h);
    /* monotonic in rows for the results pane */
    int prev = 0;
    for (int r = 24; r < 100; r++) {
        struct qb_layout l;
        qb_layout_compute(100, r, -1, &l);
        cr_assert_geq(l.pane[QB_PANE_RESULTS].h, prev);
        prev = l.pane[QB_PANE_RESULTS].h;
    }
}

Test(layout, zoom_gives_one_pane_the_whole_area)
{
    struct qb_layout l;
    for (int z = 0; z < QB_PANE_COUNT; z++) {
        qb_layout_compute(100, 30, z, &l);
        for (int p = 0; p < QB_PANE_COUNT; p++)
            cr_assert_eq(l.visible[p], p == z);
        cr_assert_eq(l.pane[z].x, 0);
        cr_assert_eq(l.pane[z].y, 1);
        cr_assert_eq(l.pane[z].w, 100);
        cr_assert_eq(l.pane[z].h, 28);
        check_tiling(&l);
    }
    qb_layout_compute(60, 20, 2, &l);
    cr_assert(l.too_small, "zoom does not bypass the minimum");
}

Test(layout, hit_test_finds_the_pane_under_a_cell)
{
    struct qb_layout l;
    qb_layout_compute(80, 24, -1, &l);
    cr_assert_eq(qb_layout_hit(&l, 0, 0), -1, "header");
    cr_assert_eq(qb_layout_hit(&l, 1, 1), QB_PANE_MODELS);
    cr_assert_eq(qb_layout_hit(&l, 79, 1), QB_PANE_METHOD);
    cr_assert_eq(qb_layout_hit(&l, 79, 22), QB_PANE_RESULTS);
    cr_assert_eq(qb_layout_hit(&l, 0, 23), -1, "footer");
}
