/*
 * test_keys.c - the dashboard key table: no key bound twice in one context,
 * no pane binding shadowing a global one by accident, every action with help
 * text, the keys the issue names bound where it says, and the help overlay
 * generated from the table listing every binding.
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <curses.h>
#include <string.h>

#include "tui/keys.h"

Test(keys, no_duplicate_key_in_a_context)
{
    for (size_t i = 0; i < qb_key_table_len; i++) {
        for (size_t j = i + 1; j < qb_key_table_len; j++) {
            const struct qb_key_binding *a = &qb_key_table[i], *b = &qb_key_table[j];
            cr_assert(!(a->ctx == b->ctx && a->key == b->key), "key %s bound twice in %s",
                      a->label, qb_key_ctx_name(a->ctx));
        }
    }
}

/* A pane binding may not take a key the global table already uses: that
 * would silently change what the key does when focus moves. */
Test(keys, pane_bindings_do_not_shadow_global_ones)
{
    for (size_t i = 0; i < qb_key_table_len; i++) {
        const struct qb_key_binding *b = &qb_key_table[i];
        if (b->ctx == QB_KCTX_GLOBAL || b->ctx >= QB_KCTX_HELP)
            continue;
        for (size_t j = 0; j < qb_key_table_len; j++) {
            const struct qb_key_binding *g = &qb_key_table[j];
            cr_assert(!(g->ctx == QB_KCTX_GLOBAL && g->key == b->key),
                      "%s in %s shadows the global %s", b->label, qb_key_ctx_name(b->ctx),
                      qb_action_name(g->action));
        }
    }
}

Test(keys, every_binding_has_a_label_help_and_named_action)
{
    for (size_t i = 0; i < qb_key_table_len; i++) {
        const struct qb_key_binding *b = &qb_key_table[i];
        cr_assert(b->action > QB_ACT_NONE && b->action < QB_ACT_COUNT);
        cr_assert(b->label && b->label[0]);
        cr_assert(b->help && strlen(b->help) >= 4, "help of %s", b->label);
        cr_assert(strlen(b->help) < 60, "help of %s fits the overlay", b->label);
        cr_assert_str_neq(qb_action_name(b->action), "?");
        cr_assert_str_neq(qb_key_ctx_name(b->ctx), "?");
    }
    /* every action except NONE is reachable from some key */
    for (int a = QB_ACT_NONE + 1; a < QB_ACT_COUNT; a++) {
        int bound = 0;
        for (size_t i = 0; i < qb_key_table_len; i++)
            bound |= qb_key_table[i].action == (enum qb_action)a;
        cr_assert(bound, "action %s has no key", qb_action_name(a));
    }
}

Test(keys, the_issue_keys_are_where_it_says)
{
    cr_assert_eq(qb_keys_lookup(QB_KCTX_MODELS, '\t'), QB_ACT_NEXT_PANE);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_RESULTS, KEY_RIGHT), QB_ACT_NEXT_PANE);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_MODELS, '\n'), QB_ACT_ACTIVATE);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_MODELS, '\r'), QB_ACT_ACTIVATE, "Enter under nonl()");
    cr_assert_eq(qb_keys_lookup(QB_KCTX_SEARCH, '\r'), QB_ACT_SUBMIT);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_MODELS, '/'), QB_ACT_SEARCH);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_METHOD, 'r'), QB_ACT_RUN);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_JOB, 'c'), QB_ACT_CANCEL);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_GPU, 'd'), QB_ACT_DOCTOR);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_GPU, '?'), QB_ACT_HELP);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_HELP, 27), QB_ACT_CLOSE);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_JOB, 'q'), QB_ACT_QUIT);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_JOB, 'z'), QB_ACT_ZOOM);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_RESULTS, 's'), QB_ACT_SORT_NEXT);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_RESULTS, 'x'), QB_ACT_EXPORT);
    /* overlays are modal: global keys do nothing there */
    cr_assert_eq(qb_keys_lookup(QB_KCTX_HELP, 'r'), QB_ACT_NONE);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_CONFIRM, 'c'), QB_ACT_NONE);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_SEARCH, 'q'), QB_ACT_NONE);
    cr_assert_eq(qb_keys_lookup(QB_KCTX_CONFIRM, 'y'), QB_ACT_YES);
    /* pane keys stay in their pane */
    cr_assert_eq(qb_keys_lookup(QB_KCTX_MODELS, 's'), QB_ACT_NONE);
}

Test(keys, help_overlay_lists_every_binding)
{
    size_t n = qb_keys_help_lines(NULL, 0);
    cr_assert_gt(n, 10);
    char (*lines)[QB_HELP_LINE_MAX] = calloc(n, sizeof *lines);
    cr_assert_eq(qb_keys_help_lines(lines, n), n);
    for (size_t i = 0; i < qb_key_table_len; i++) {
        const struct qb_key_binding *b = &qb_key_table[i];
        int found = 0;
        for (size_t k = 0; k < n && !found; k++)
            found = strstr(lines[k], b->help) && strstr(lines[k], b->label);
        cr_assert(found, "help lacks %s (%s)", b->label, b->help);
    }
    int headers = 0;
    for (size_t k = 0; k < n; k++)
        headers += lines[k][0] != ' ';
    int used[QB_KCTX_COUNT] = {0}, n_used = 0;
    for (size_t i = 0; i < qb_key_table_len; i++) {
        n_used += !used[qb_key_table[i].ctx];
        used[qb_key_table[i].ctx] = 1;
    }
    cr_assert_eq(headers, n_used, "one section per context with bindings");
    cr_assert_str_eq(lines[0], "Everywhere");
    free(lines);
}
