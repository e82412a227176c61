/*
 * keys.h - the dashboard's key table: every binding is one row of
 * {key, context, action, label, help}, and both dispatch and the `?` help
 * overlay are generated from it, so the help can never drift from behaviour
 * (tig's approach).
 *
 * Contexts: GLOBAL applies in every pane; a pane context (MODELS ... RESULTS)
 * is tried first while that pane has focus, then GLOBAL. The overlay
 * contexts (HELP, CONFIRM, SEARCH) are modal: only their own rows apply
 * (SEARCH also takes printable characters as text, outside the table).
 * Key codes are curses codes (KEY_UP, '\t', 27 for Esc, ...).
 */
#ifndef QB_KEYS_H
#define QB_KEYS_H

#include <stddef.h>

enum qb_key_ctx {
    QB_KCTX_GLOBAL = 0,
    QB_KCTX_MODELS,
    QB_KCTX_METHOD,
    QB_KCTX_JOB,
    QB_KCTX_GPU,
    QB_KCTX_RESULTS,
    QB_KCTX_HELP,
    QB_KCTX_CONFIRM,
    QB_KCTX_SEARCH,
    QB_KCTX_COUNT
};

enum qb_action {
    QB_ACT_NONE = 0,
    QB_ACT_NEXT_PANE,
    QB_ACT_PREV_PANE,
    QB_ACT_UP,
    QB_ACT_DOWN,
    QB_ACT_PAGE_UP,
    QB_ACT_PAGE_DOWN,
    QB_ACT_HOME,
    QB_ACT_END,
    QB_ACT_ACTIVATE,
    QB_ACT_SEARCH,
    QB_ACT_RUN,
    QB_ACT_COMPARE,
    QB_ACT_CANCEL,
    QB_ACT_DOCTOR,
    QB_ACT_WRITE,
    QB_ACT_BENCH,
    QB_ACT_HELP,
    QB_ACT_ZOOM,
    QB_ACT_REDRAW,
    QB_ACT_QUIT,
    QB_ACT_MARK,
    QB_ACT_GROUP,
    QB_ACT_ACT_ORDER,
    QB_ACT_CALIB,
    QB_ACT_CHUNKS,
    QB_ACT_BACKEND,
    QB_ACT_REFRESH_MODELS,
    QB_ACT_SORT_NEXT,
    QB_ACT_SORT_REVERSE,
    QB_ACT_HISTORY,
    QB_ACT_EXPORT,
    QB_ACT_CLOSE,
    QB_ACT_YES,
    QB_ACT_NO,
    QB_ACT_SUBMIT,
    QB_ACT_BACKSPACE,
    QB_ACT_COUNT
};

struct qb_key_binding {
    int key;                /* curses key code */
    enum qb_key_ctx ctx;
    enum qb_action action;
    const char *label;      /* how the key is written in help: "Tab", "r" */
    const char *help;       /* what it does, one short line */
};

extern const struct qb_key_binding qb_key_table[];
extern const size_t qb_key_table_len;

/* The action bound to key in ctx (pane contexts fall back to GLOBAL). */
enum qb_action qb_keys_lookup(enum qb_key_ctx ctx, int key);

const char *qb_key_ctx_name(enum qb_key_ctx ctx);   /* "Global", "Models", ... */
const char *qb_action_name(enum qb_action action);  /* "run", ...; never NULL */

#define QB_HELP_LINE_MAX 96

/* The help overlay's text: per context a header line ("Models") followed by
 * one line per action ("  Up/k         previous entry"), bindings of the same
 * action joined with '/'. Writes at most max lines; returns the total count
 * (call with max 0 to size). */
size_t qb_keys_help_lines(char (*out)[QB_HELP_LINE_MAX], size_t max);

#endif /* QB_KEYS_H */
