/*
 * test_manpage.c - man/quantbench.1 renders cleanly and keeps up with --help.
 *
 * 1. The page renders with `groff -t -man -Tutf8 -ww` (or, without groff,
 *    `man -l --warnings` at 80 columns) with nothing on stderr: no roff or tbl
 *    warnings. Skips when neither program exists.
 * 2. Every command listed by `quantbench --help` has its own `.SS "quantbench CMD`
 *    section, and every long option (--xxx) printed by `quantbench CMD --help`
 *    appears in the page as a whole option (source text with \- read as -), so
 *    the page cannot silently fall behind a new command or flag; so must the
 *    dashboard's (`quantbench MODEL --help`). A command whose --help exits
 *    non-zero (a placeholder not built yet) only needs its section.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qb_test_util.h"

#define MANPAGE QB_TEST_DATA "/../../man/quantbench.1"

static int have(const char *prog)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

Test(manpage, renders_without_warnings)
{
    const char *argv_groff[] = {"/bin/sh", "-c",
                                "groff -t -man -Tutf8 -ww -P-cbou '" MANPAGE "'", NULL};
    const char *argv_man[] = {"/bin/sh", "-c",
                              "MANWIDTH=80 man -l --warnings '" MANPAGE "' | col -b", NULL};
    const char *const *argv = have("groff") ? argv_groff : have("man") ? argv_man : NULL;
    if (!argv)
        cr_skip_test("neither groff nor man is installed");
    struct qbt_run r;
    qbt_run(argv, NULL, 60, &r);
    cr_assert_eq(r.exit_code, 0, "render failed: %s", r.err);
    cr_assert_str_empty(r.err, "warnings while rendering:\n%s", r.err);
    cr_assert(strstr(r.out, "NAME") && strstr(r.out, "EXIT STATUS") && strstr(r.out, "SCHEMES"));
    qbt_run_free(&r);
}

/* The page source with "\-" as "-" and font escapes removed. */
static char *page_text(void)
{
    size_t len = 0;
    char *src = qbt_read_file(MANPAGE, &len);
    cr_assert_not_null(src, "cannot read %s", MANPAGE);
    char *out = malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\\' && src[i + 1] == '-') {
            out[n++] = '-';
            i++;
        } else if (src[i] == '\\' && src[i + 1] == 'f' && src[i + 2]) {
            i += 2;
        } else {
            out[n++] = src[i];
        }
    }
    out[n] = '\0';
    free(src);
    return out;
}

static int is_opt_char(char c)
{
    return isalnum((unsigned char)c) || c == '-';
}

/* 1 when `opt` (e.g. "--word-ppl") occurs in text not followed by more option chars. */
static int has_option(const char *text, const char *opt)
{
    size_t n = strlen(opt);
    for (const char *p = strstr(text, opt); p; p = strstr(p + 1, opt)) {
        if (!is_opt_char(p[n]) && (p == text || p[-1] != '-'))
            return 1;
    }
    return 0;
}

/* Every long option `quantbench ARG --help` prints must be in the page. */
static void check_options(const char *page, const char *arg, const char *cmd)
{
    const char *argv[] = {QB_BINARY, arg, "--help", NULL};
    struct qbt_run r;
    qbt_run(argv, NULL, 30, &r);
    if (r.exit_code == 0) {
        for (const char *p = strstr(r.out, "--"); p; p = strstr(p + 2, "--")) {
            if (!isalpha((unsigned char)p[2]) || (p > r.out && is_opt_char(p[-1])))
                continue;
            char opt[64];
            size_t k = 0;
            while (k + 1 < sizeof opt && is_opt_char(p[k]))
                opt[k] = p[k], k++;
            opt[k] = '\0';
            cr_expect(has_option(page, opt), "`quantbench %s --help` prints %s, the man page "
                      "does not mention it", cmd, opt);
        }
    }
    qbt_run_free(&r);
}

static void check_command(const char *page, const char *cmd)
{
    char heading[128];
    snprintf(heading, sizeof heading, ".SS \"quantbench %s", cmd);
    cr_expect(strstr(page, heading) != NULL, "the man page has no section for `%s`", cmd);
    check_options(page, cmd, cmd);
}

Test(manpage, every_command_and_long_option_is_documented)
{
    char *page = page_text();
    const char *argv[] = {QB_BINARY, "--help", NULL};
    struct qbt_run r;
    qbt_run(argv, NULL, 30, &r);
    cr_assert_eq(r.exit_code, 0);
    const char *list = strstr(r.out, "commands:\n");
    cr_assert_not_null(list, "quantbench --help lists no commands:\n%s", r.out);
    int n = 0;
    for (const char *line = strchr(list, '\n') + 1; *line == ' '; line = strchr(line, '\n') + 1) {
        char cmd[64];
        cr_assert_eq(sscanf(line, " %63s", cmd), 1);
        check_command(page, cmd);
        n++;
    }
    cr_assert_geq(n, 12, "expected at least the 12 commands of issue 9, got %d", n);
    check_options(page, QB_DEMO_MODEL, "MODEL (the dashboard)");
    cr_expect(has_option(page, "--version"), "the man page does not mention --version");
    qbt_run_free(&r);
    free(page);
}
