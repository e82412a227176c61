/*
 * dashboard_keys.c - what each action of the key table (keys.h) does.
 *
 * A key is looked up in the current context (an overlay if one is open, else
 * the focused pane, falling back to the global rows) and the resulting action
 * is dispatched here. The search prompt takes printable characters itself.
 */
#include <string.h>

#include "tui/dashboard_impl.h"

static const enum qb_key_ctx pane_ctx[QB_PANE_COUNT] = {
    [QB_PANE_MODELS] = QB_KCTX_MODELS, [QB_PANE_METHOD] = QB_KCTX_METHOD,
    [QB_PANE_JOB] = QB_KCTX_JOB,       [QB_PANE_GPU] = QB_KCTX_GPU,
    [QB_PANE_RESULTS] = QB_KCTX_RESULTS,
};

enum qb_key_ctx dash_key_context(const struct qb_dash *d)
{
    switch (d->overlay) {
    case DASH_OV_HELP: return QB_KCTX_HELP;
    case DASH_OV_CONFIRM: return QB_KCTX_CONFIRM;
    case DASH_OV_SEARCH: return QB_KCTX_SEARCH;
    case DASH_OV_NONE: break;
    }
    return pane_ctx[d->focus];
}

/* Move *sel by delta within [0, n). */
static void move_sel(int *sel, int n, int delta)
{
    int v = *sel + delta;
    if (v >= n)
        v = n - 1;
    if (v < 0)
        v = 0;
    *sel = v;
}

static int page_rows(const struct qb_dash *d)
{
    int h = d->layout.pane[d->focus].h - 4;
    return h > 1 ? h : 1;
}

static void move_in_pane(struct qb_dash *d, int delta)
{
    switch (d->focus) {
    case QB_PANE_MODELS:
        move_sel(&d->model_sel, (int)d->n_models, delta);
        dash_schemes_init(d); /* bits/weight follow the model's hidden size */
        break;
    case QB_PANE_METHOD: move_sel(&d->scheme_sel, d->n_schemes, delta); break;
    case QB_PANE_RESULTS: move_sel(&d->results_sel, (int)d->view.n, delta); break;
    default: break;
    }
}

static void activate(struct qb_dash *d)
{
    switch (d->focus) {
    case QB_PANE_MODELS: {
        const struct dash_model *m = dash_model_selected(d);
        if (!m)
            return;
        if (!m->path[0]) {
            dash_models_pull(d);
            return;
        }
        d->model_active = d->model_sel;
        dash_results_resort(d);
        dash_status(d, QB_TH_GOOD, "%s: selected; pick a scheme and press r", m->id);
        d->focus = QB_PANE_METHOD;
        break;
    }
    case QB_PANE_METHOD: dash_submit_eval(d, 0); break;
    case QB_PANE_JOB: dash_cancel_job(d); break;
    case QB_PANE_RESULTS: d->show_history = !d->show_history; dash_results_resort(d); break;
    default: break;
    }
}

static void request_quit(struct qb_dash *d)
{
    if (dash_job_running(d))
        d->overlay = DASH_OV_CONFIRM;
    else
        d->quit = 1;
}

static void cycle_sort(struct qb_dash *d)
{
    d->sort_key = (enum qb_results_key)((d->sort_key + 1) % QB_RESULTS_KEY_COUNT);
    dash_results_resort(d);
    dash_status(d, QB_TH_TEXT, "sorted by %s%s", qb_results_key_name(d->sort_key),
                d->sort_desc ? " (descending)" : "");
}

static void search_key(struct qb_dash *d, int key)
{
    if (key >= 32 && key < 127 && d->search_len + 1 < sizeof d->search) {
        d->search[d->search_len++] = (char)key;
        d->search[d->search_len] = '\0';
    }
}

static void dispatch_overlay_action(struct qb_dash *d, enum qb_action a)
{
    switch (a) {
    case QB_ACT_CLOSE:
    case QB_ACT_NO: d->overlay = DASH_OV_NONE; break;
    case QB_ACT_YES:
        dash_cancel_job(d);
        d->quit = 1;
        break;
    case QB_ACT_SUBMIT:
        d->overlay = DASH_OV_NONE;
        if (d->search_len) {
            dash_models_search(d, d->search);
        }
        break;
    case QB_ACT_BACKSPACE:
        if (d->search_len)
            d->search[--d->search_len] = '\0';
        break;
    case QB_ACT_UP: d->help_scroll = d->help_scroll > 0 ? d->help_scroll - 1 : 0; break;
    case QB_ACT_DOWN: d->help_scroll++; break;
    case QB_ACT_PAGE_UP: d->help_scroll = QB_MAX(0, d->help_scroll - 10); break;
    case QB_ACT_PAGE_DOWN: d->help_scroll += 10; break;
    default: break;
    }
}

static void cycle_option(struct qb_dash *d, enum qb_action a)
{
    switch (a) {
    case QB_ACT_GROUP:
        d->group_idx = (d->group_idx + 1) % 4;
        if (dash_group_size(d))
            dash_status(d, QB_TH_TEXT, "group size: %d", dash_group_size(d));
        else
            dash_status(d, QB_TH_TEXT, "group size: the scheme's default");
        break;
    case QB_ACT_ACT_ORDER:
        d->act_order = !d->act_order;
        dash_status(d, QB_TH_TEXT, "act-order %s", d->act_order ? "on" : "off");
        break;
    case QB_ACT_CALIB:
        d->calib_idx = (d->calib_idx + 1) % 3;
        dash_status(d, QB_TH_TEXT, "calibration samples: %d", dash_calib_samples(d));
        break;
    case QB_ACT_CHUNKS:
        d->chunks_idx = (d->chunks_idx + 1) % 4;
        if (dash_eval_chunks(d))
            dash_status(d, QB_TH_TEXT, "eval chunks: %d", dash_eval_chunks(d));
        else
            dash_status(d, QB_TH_TEXT, "eval chunks: all");
        break;
    case QB_ACT_BACKEND: {
        static const char *const order[] = {"auto", "cpu", "cuda"};
        int i = 0;
        while (i < 3 && strcmp(order[i], d->opt.backend) != 0)
            i++;
        snprintf(d->opt.backend, sizeof d->opt.backend, "%s", order[(i + 1) % 3]);
        dash_status(d, QB_TH_TEXT, "backend: %s", d->opt.backend);
        break;
    }
    default: break;
    }
}

static void dispatch_action(struct qb_dash *d, enum qb_action a)
{
    switch (a) {
    case QB_ACT_NEXT_PANE: d->focus = (d->focus + 1) % QB_PANE_COUNT; break;
    case QB_ACT_PREV_PANE: d->focus = (d->focus + QB_PANE_COUNT - 1) % QB_PANE_COUNT; break;
    case QB_ACT_UP: move_in_pane(d, -1); break;
    case QB_ACT_DOWN: move_in_pane(d, 1); break;
    case QB_ACT_PAGE_UP: move_in_pane(d, -page_rows(d)); break;
    case QB_ACT_PAGE_DOWN: move_in_pane(d, page_rows(d)); break;
    case QB_ACT_HOME: move_in_pane(d, -100000); break;
    case QB_ACT_END: move_in_pane(d, 100000); break;
    case QB_ACT_ACTIVATE: activate(d); break;
    case QB_ACT_SEARCH:
        d->overlay = DASH_OV_SEARCH;
        d->focus = QB_PANE_MODELS;
        break;
    case QB_ACT_RUN: dash_submit_eval(d, 0); break;
    case QB_ACT_COMPARE: dash_submit_eval(d, 1); break;
    case QB_ACT_CANCEL: dash_cancel_job(d); break;
    case QB_ACT_DOCTOR: dash_submit_doctor(d); break;
    case QB_ACT_WRITE: dash_submit_quantize(d); break;
    case QB_ACT_BENCH: dash_submit_bench(d); break;
    case QB_ACT_HELP:
        d->overlay = DASH_OV_HELP;
        d->help_scroll = 0;
        break;
    case QB_ACT_ZOOM: d->zoom = d->zoom == d->focus ? -1 : d->focus; break;
    case QB_ACT_REDRAW: clearok(curscr, TRUE); break;
    case QB_ACT_QUIT: request_quit(d); break;
    case QB_ACT_MARK:
        if (d->n_schemes)
            d->schemes[d->scheme_sel].marked = !d->schemes[d->scheme_sel].marked;
        move_sel(&d->scheme_sel, d->n_schemes, 1);
        break;
    case QB_ACT_REFRESH_MODELS: dash_models_scan(d); break;
    case QB_ACT_SORT_NEXT: cycle_sort(d); break;
    case QB_ACT_SORT_REVERSE:
        d->sort_desc = !d->sort_desc;
        dash_results_resort(d);
        break;
    case QB_ACT_HISTORY:
        d->show_history = !d->show_history;
        d->results_sel = 0;
        dash_results_resort(d);
        dash_status(d, QB_TH_TEXT, "results: %s",
                    d->show_history ? "every past run (history)" : "this session");
        break;
    case QB_ACT_EXPORT: dash_results_export(d); break;
    default: cycle_option(d, a); break;
    }
}

void dash_handle_key(struct qb_dash *d, int key)
{
    if (key == KEY_RESIZE) {
        clearok(curscr, TRUE);
        return;
    }
    if (key == KEY_MOUSE) { /* optional: a click focuses the pane under it */
        MEVENT ev;
        if (getmouse(&ev) == OK && d->overlay == DASH_OV_NONE) {
            int p = qb_layout_hit(&d->layout, ev.x, ev.y);
            if (p >= 0)
                d->focus = p;
        }
        return;
    }
    enum qb_key_ctx ctx = dash_key_context(d);
    enum qb_action a = qb_keys_lookup(ctx, key);
    if (d->overlay != DASH_OV_NONE) {
        if (a == QB_ACT_NONE && d->overlay == DASH_OV_SEARCH)
            search_key(d, key);
        else
            dispatch_overlay_action(d, a);
        return;
    }
    dispatch_action(d, a);
}
