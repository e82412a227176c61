/*
 * keys.c - the key table and the help text generated from it (see keys.h).
 */
#include "keys.h"

#include <curses.h>
#include <stdio.h>
#include <string.h>

#define CTRL(c) ((c) & 0x1f)
#define ESC 27

const struct qb_key_binding qb_key_table[] = {
    /* global: focus, run, cancel, overlays, quit */
    {'\t', QB_KCTX_GLOBAL, QB_ACT_NEXT_PANE, "Tab", "focus the next pane"},
    {KEY_RIGHT, QB_KCTX_GLOBAL, QB_ACT_NEXT_PANE, "Right", "focus the next pane"},
    {KEY_BTAB, QB_KCTX_GLOBAL, QB_ACT_PREV_PANE, "S-Tab", "focus the previous pane"},
    {KEY_LEFT, QB_KCTX_GLOBAL, QB_ACT_PREV_PANE, "Left", "focus the previous pane"},
    {KEY_UP, QB_KCTX_GLOBAL, QB_ACT_UP, "Up", "move up in the focused pane"},
    {'k', QB_KCTX_GLOBAL, QB_ACT_UP, "k", "move up in the focused pane"},
    {KEY_DOWN, QB_KCTX_GLOBAL, QB_ACT_DOWN, "Down", "move down in the focused pane"},
    {'j', QB_KCTX_GLOBAL, QB_ACT_DOWN, "j", "move down in the focused pane"},
    {KEY_PPAGE, QB_KCTX_GLOBAL, QB_ACT_PAGE_UP, "PgUp", "page up"},
    {KEY_NPAGE, QB_KCTX_GLOBAL, QB_ACT_PAGE_DOWN, "PgDn", "page down"},
    {KEY_HOME, QB_KCTX_GLOBAL, QB_ACT_HOME, "Home", "first entry"},
    {KEY_END, QB_KCTX_GLOBAL, QB_ACT_END, "End", "last entry"},
    {'\r', QB_KCTX_GLOBAL, QB_ACT_ACTIVATE, "Enter", "act on the selection"},
    {'\n', QB_KCTX_GLOBAL, QB_ACT_ACTIVATE, "Enter", "act on the selection"},
    {KEY_ENTER, QB_KCTX_GLOBAL, QB_ACT_ACTIVATE, "Enter", "act on the selection"},
    {'/', QB_KCTX_GLOBAL, QB_ACT_SEARCH, "/", "search the Hugging Face Hub"},
    {'r', QB_KCTX_GLOBAL, QB_ACT_RUN, "r", "run: eval the selected scheme vs the baseline"},
    {'C', QB_KCTX_GLOBAL, QB_ACT_COMPARE, "C", "compare every marked scheme (Space marks)"},
    {'c', QB_KCTX_GLOBAL, QB_ACT_CANCEL, "c", "cancel the running job"},
    {'d', QB_KCTX_GLOBAL, QB_ACT_DOCTOR, "d", "doctor: driver-update sanity check"},
    {'w', QB_KCTX_GLOBAL, QB_ACT_WRITE, "w", "write: quantize the selected scheme to disk"},
    {'B', QB_KCTX_GLOBAL, QB_ACT_BENCH, "B", "bench: pp/tg tok/s of the selected scheme"},
    {'b', QB_KCTX_GLOBAL, QB_ACT_BACKEND, "b", "backend: auto, cpu, cuda"},
    {'?', QB_KCTX_GLOBAL, QB_ACT_HELP, "?", "this help"},
    {KEY_F(1), QB_KCTX_GLOBAL, QB_ACT_HELP, "F1", "this help"},
    {'z', QB_KCTX_GLOBAL, QB_ACT_ZOOM, "z", "zoom the focused pane (again: back)"},
    {CTRL('l'), QB_KCTX_GLOBAL, QB_ACT_REDRAW, "C-l", "redraw the screen"},
    {'q', QB_KCTX_GLOBAL, QB_ACT_QUIT, "q", "quit (asks while a job runs)"},

    /* models */
    {'R', QB_KCTX_MODELS, QB_ACT_REFRESH_MODELS, "R", "rescan the local models"},

    /* method & precision */
    {' ', QB_KCTX_METHOD, QB_ACT_MARK, "Space", "mark/unmark the scheme for compare"},
    {'g', QB_KCTX_METHOD, QB_ACT_GROUP, "g", "group size: default, 32, 64, 128"},
    {'a', QB_KCTX_METHOD, QB_ACT_ACT_ORDER, "a", "act-order on/off (GPTQ)"},
    {'n', QB_KCTX_METHOD, QB_ACT_CALIB, "n", "calibration samples: 32, 128, 512"},
    {'e', QB_KCTX_METHOD, QB_ACT_CHUNKS, "e", "eval chunks: 1, 4, 16, all"},

    /* results */
    {'s', QB_KCTX_RESULTS, QB_ACT_SORT_NEXT, "s", "sort by the next column"},
    {'S', QB_KCTX_RESULTS, QB_ACT_SORT_REVERSE, "S", "reverse the sort order"},
    {'h', QB_KCTX_RESULTS, QB_ACT_HISTORY, "h", "this session / every past run"},
    {'x', QB_KCTX_RESULTS, QB_ACT_EXPORT, "x", "export the rows (CSV, JSON, Markdown)"},

    /* help overlay */
    {ESC, QB_KCTX_HELP, QB_ACT_CLOSE, "Esc", "close the help"},
    {'?', QB_KCTX_HELP, QB_ACT_CLOSE, "?", "close the help"},
    {'q', QB_KCTX_HELP, QB_ACT_CLOSE, "q", "close the help"},
    {KEY_UP, QB_KCTX_HELP, QB_ACT_UP, "Up", "scroll up"},
    {KEY_DOWN, QB_KCTX_HELP, QB_ACT_DOWN, "Down", "scroll down"},
    {KEY_PPAGE, QB_KCTX_HELP, QB_ACT_PAGE_UP, "PgUp", "page up"},
    {KEY_NPAGE, QB_KCTX_HELP, QB_ACT_PAGE_DOWN, "PgDn", "page down"},

    /* quit confirmation */
    {'y', QB_KCTX_CONFIRM, QB_ACT_YES, "y", "yes: cancel the job and quit"},
    {'q', QB_KCTX_CONFIRM, QB_ACT_YES, "q", "yes: cancel the job and quit"},
    {'n', QB_KCTX_CONFIRM, QB_ACT_NO, "n", "no: keep working"},
    {ESC, QB_KCTX_CONFIRM, QB_ACT_NO, "Esc", "no: keep working"},

    /* search prompt (printable characters are typed into the query) */
    {'\r', QB_KCTX_SEARCH, QB_ACT_SUBMIT, "Enter", "search the Hub for the text"},
    {'\n', QB_KCTX_SEARCH, QB_ACT_SUBMIT, "Enter", "search the Hub for the text"},
    {KEY_ENTER, QB_KCTX_SEARCH, QB_ACT_SUBMIT, "Enter", "search the Hub for the text"},
    {ESC, QB_KCTX_SEARCH, QB_ACT_CLOSE, "Esc", "leave the search prompt"},
    {KEY_BACKSPACE, QB_KCTX_SEARCH, QB_ACT_BACKSPACE, "Bksp", "delete a character"},
    {127, QB_KCTX_SEARCH, QB_ACT_BACKSPACE, "Bksp", "delete a character"},
    {CTRL('h'), QB_KCTX_SEARCH, QB_ACT_BACKSPACE, "Bksp", "delete a character"},
};

const size_t qb_key_table_len = sizeof qb_key_table / sizeof qb_key_table[0];

static int is_modal(enum qb_key_ctx ctx)
{
    return ctx == QB_KCTX_HELP || ctx == QB_KCTX_CONFIRM || ctx == QB_KCTX_SEARCH;
}

static enum qb_action find(enum qb_key_ctx ctx, int key)
{
    for (size_t i = 0; i < qb_key_table_len; i++) {
        if (qb_key_table[i].ctx == ctx && qb_key_table[i].key == key)
            return qb_key_table[i].action;
    }
    return QB_ACT_NONE;
}

enum qb_action qb_keys_lookup(enum qb_key_ctx ctx, int key)
{
    enum qb_action a = find(ctx, key);
    if (a != QB_ACT_NONE || is_modal(ctx) || ctx == QB_KCTX_GLOBAL)
        return a;
    return find(QB_KCTX_GLOBAL, key);
}

const char *qb_key_ctx_name(enum qb_key_ctx ctx)
{
    switch (ctx) {
    case QB_KCTX_GLOBAL: return "Everywhere";
    case QB_KCTX_MODELS: return "Models pane";
    case QB_KCTX_METHOD: return "Method & precision pane";
    case QB_KCTX_JOB: return "Job pane";
    case QB_KCTX_GPU: return "GPU pane";
    case QB_KCTX_RESULTS: return "Results pane";
    case QB_KCTX_HELP: return "Help";
    case QB_KCTX_CONFIRM: return "Quit while a job runs";
    case QB_KCTX_SEARCH: return "Search prompt";
    case QB_KCTX_COUNT: break;
    }
    return "?";
}

const char *qb_action_name(enum qb_action action)
{
    static const char *const names[QB_ACT_COUNT] = {
        [QB_ACT_NONE] = "none", [QB_ACT_NEXT_PANE] = "next-pane",
        [QB_ACT_PREV_PANE] = "prev-pane", [QB_ACT_UP] = "up", [QB_ACT_DOWN] = "down",
        [QB_ACT_PAGE_UP] = "page-up", [QB_ACT_PAGE_DOWN] = "page-down", [QB_ACT_HOME] = "home",
        [QB_ACT_END] = "end", [QB_ACT_ACTIVATE] = "activate", [QB_ACT_SEARCH] = "search",
        [QB_ACT_RUN] = "run", [QB_ACT_COMPARE] = "compare", [QB_ACT_CANCEL] = "cancel",
        [QB_ACT_DOCTOR] = "doctor", [QB_ACT_WRITE] = "write", [QB_ACT_BENCH] = "bench", [QB_ACT_HELP] = "help", [QB_ACT_ZOOM] = "zoom",
        [QB_ACT_REDRAW] = "redraw", [QB_ACT_QUIT] = "quit", [QB_ACT_MARK] = "mark", [QB_ACT_GROUP] = "group",
        [QB_ACT_ACT_ORDER] = "act-order", [QB_ACT_CALIB] = "calib", [QB_ACT_CHUNKS] = "chunks",
        [QB_ACT_BACKEND] = "backend", [QB_ACT_REFRESH_MODELS] = "refresh-models",
        [QB_ACT_SORT_NEXT] = "sort", [QB_ACT_SORT_REVERSE] = "sort-reverse",
        [QB_ACT_HISTORY] = "history", [QB_ACT_EXPORT] = "export", [QB_ACT_CLOSE] = "close",
        [QB_ACT_YES] = "yes", [QB_ACT_NO] = "no", [QB_ACT_SUBMIT] = "submit",
        [QB_ACT_BACKSPACE] = "backspace",
    };
    if ((unsigned)action >= QB_ACT_COUNT || !names[action])
        return "?";
    return names[action];
}

/* Labels of every binding of (ctx, action), joined with '/', duplicates once. */
static void joined_labels(enum qb_key_ctx ctx, enum qb_action action, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; i < qb_key_table_len; i++) {
        const struct qb_key_binding *b = &qb_key_table[i];
        if (b->ctx != ctx || b->action != action)
            continue;
        size_t n = strlen(b->label);
        const char *hit = strstr(buf, b->label);
        int dup = hit && (hit == buf || hit[-1] == '/') && (hit[n] == '\0' || hit[n] == '/');
        if (dup)
            continue;
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s", used ? "/" : "", b->label);
    }
}

static int first_of(size_t idx)
{
    const struct qb_key_binding *b = &qb_key_table[idx];
    for (size_t i = 0; i < idx; i++) {
        if (qb_key_table[i].ctx == b->ctx && qb_key_table[i].action == b->action)
            return 0;
    }
    return 1;
}

size_t qb_keys_help_lines(char (*out)[QB_HELP_LINE_MAX], size_t max)
{
    size_t n = 0;
    for (int ctx = 0; ctx < QB_KCTX_COUNT; ctx++) {
        int header = 0;
        for (size_t i = 0; i < qb_key_table_len; i++) {
            const struct qb_key_binding *b = &qb_key_table[i];
            if ((int)b->ctx != ctx || !first_of(i))
                continue;
            if (!header) {
                if (n < max)
                    snprintf(out[n], QB_HELP_LINE_MAX, "%s", qb_key_ctx_name(b->ctx));
                n++;
                header = 1;
            }
            char keys[48];
            joined_labels(b->ctx, b->action, keys, sizeof keys);
            if (n < max)
                snprintf(out[n], QB_HELP_LINE_MAX, "  %-12s %s", keys, b->help);
            n++;
        }
    }
    return n;
}
