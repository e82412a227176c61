/*
 * test_dashboard_theme.c - theme files: every shipped theme parses and
 * defines every element, the format's errors name file and line, colour names
 * and indexes, the 8-colour mapping (hand-checked xterm colours), NO_COLOR
 * stripping, and the `theme = NAME` user config.
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tui/theme.h"

static const char *const shipped[] = {"default", "light", "high-contrast", "monochrome"};

Test(theme, every_shipped_theme_parses_and_sets_every_element)
{
    setenv("QB_SOURCE_DIR", QB_TEST_DATA "/..", 1);
    for (size_t i = 0; i < QB_ARRAY_LEN(shipped); i++) {
        struct qb_theme t;
        struct qb_err err = {0};
        char path[4096];
        cr_assert_eq(qb_theme_load(shipped[i], &t, path, sizeof path, &err), QB_OK, "%s: %s",
                     shipped[i], err.msg);
        cr_assert_str_eq(t.name, shipped[i]);
        cr_assert(strstr(path, "themes/"), "%s", path);
        /* each element is written out in the file (not only inherited) */
        char cmd[8192];
        for (int e = 0; e < QB_TH_COUNT; e++) {
            snprintf(cmd, sizeof cmd, "grep -Eq '^%s +=' '%s'", qb_theme_elem_name(e), path);
            cr_assert_eq(system(cmd), 0, "%s lacks %s", shipped[i], qb_theme_elem_name(e));
        }
    }
}

Test(theme, monochrome_has_no_colours_and_default_has_256)
{
    setenv("QB_SOURCE_DIR", QB_TEST_DATA "/..", 1);
    struct qb_theme t;
    struct qb_err err = {0};
    cr_assert_eq(qb_theme_load("monochrome", &t, NULL, 0, &err), QB_OK);
    for (int e = 0; e < QB_TH_COUNT; e++) {
        cr_assert_eq(t.style[e].fg, QB_COLOR_DEFAULT);
        cr_assert_eq(t.style[e].bg, QB_COLOR_DEFAULT);
    }
    cr_assert(t.style[QB_TH_SELECTED].attrs & QB_ATTR_REVERSE);
    cr_assert_eq(qb_theme_load("default", &t, NULL, 0, &err), QB_OK);
    cr_assert_eq(t.colors, 256);
    cr_assert_eq(t.style[QB_TH_TITLE].fg, 81);
    cr_assert(t.style[QB_TH_TITLE].attrs & QB_ATTR_BOLD);
}

Test(theme, parses_names_indexes_and_attributes)
{
    const char *text = "# c\n\n  colors = 8  \n"
                       "title = bright-red blue bold underline # trailing comment\n"
                       "bad = 196\n"
                       "good = default green\n"
                       "dim = white dim\n";
    struct qb_theme t;
    struct qb_err err = {0};
    cr_assert_eq(qb_theme_parse(text, strlen(text), "t.theme", &t, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(t.colors, 8);
    cr_assert_eq(t.style[QB_TH_TITLE].fg, 9);
    cr_assert_eq(t.style[QB_TH_TITLE].bg, 4);
    cr_assert_eq(t.style[QB_TH_TITLE].attrs, QB_ATTR_BOLD | QB_ATTR_UNDERLINE);
    cr_assert_eq(t.style[QB_TH_BAD].fg, 196);
    cr_assert_eq(t.style[QB_TH_BAD].bg, QB_COLOR_DEFAULT);
    cr_assert_eq(t.style[QB_TH_GOOD].fg, QB_COLOR_DEFAULT);
    cr_assert_eq(t.style[QB_TH_GOOD].bg, 2);
    cr_assert_eq(t.style[QB_TH_DIM].attrs, QB_ATTR_DIM);
    /* elements not mentioned keep the built-in style */
    struct qb_theme b;
    qb_theme_builtin(&b);
    cr_assert_eq(t.style[QB_TH_SPARK].fg, b.style[QB_TH_SPARK].fg);
}

Test(theme, errors_name_the_file_and_line)
{
    static const struct { const char *text; const char *want; } bad[] = {
        {"title = red\nnope = red\n", "t.theme:2: unknown element 'nope'"},
        {"title = reddish\n", "t.theme:1: unknown colour 'reddish'"},
        {"title = 256\n", "unknown colour '256'"},
        {"title = red blue blink\n", "t.theme:1: unknown colour or attribute 'blink'"},
        {"\n\ntitle red\n", "t.theme:3: expected"},
        {"colors = 16\n", "colors must be 8 or 256"},
        {"title =\n", "needs FG"},
        {"title = bright-\n", "unknown colour"},
        {"title = 1 2 bold bold bold bold bold bold\n", "needs FG"},
    };
    for (size_t i = 0; i < QB_ARRAY_LEN(bad); i++) {
        struct qb_theme t;
        struct qb_err err = {0};
        cr_assert_eq(qb_theme_parse(bad[i].text, strlen(bad[i].text), "t.theme", &t, &err),
                     QB_ERR_FORMAT, "case %zu", i);
        cr_assert(strstr(err.msg, bad[i].want), "case %zu: %s", i, err.msg);
    }
    struct qb_theme t;
    struct qb_err err = {0};
    cr_assert_eq(qb_theme_load("no-such-theme", &t, NULL, 0, &err), QB_ERR_IO);
    cr_assert(strstr(err.msg, "not found"), "%s", err.msg);
    cr_assert_eq(qb_theme_load("../etc/passwd", &t, NULL, 0, &err), QB_ERR_IO);
}

/* Hand-checked against the xterm palette: 81 = #5fd7ff (cyan), 203 = #ff5f5f
 * (red), 114 = #87d787 (green), 221 = #ffd75f (yellow), 24 = #005f87 (deep sky
 * blue: green and blue both well above red, so cyan), 17 = #00005f (blue),
 * 244 = grey 50% (white), 236 = grey 19% (black), 231 = #ffffff (white). */
Test(theme, eight_colour_mapping)
{
    cr_assert_eq(qb_theme_color_to_8(QB_COLOR_DEFAULT), QB_COLOR_DEFAULT);
    cr_assert_eq(qb_theme_color_to_8(3), 3);
    cr_assert_eq(qb_theme_color_to_8(9), 1);
    cr_assert_eq(qb_theme_color_to_8(81), 6);
    cr_assert_eq(qb_theme_color_to_8(203), 1);
    cr_assert_eq(qb_theme_color_to_8(114), 2);
    cr_assert_eq(qb_theme_color_to_8(221), 3);
    cr_assert_eq(qb_theme_color_to_8(24), 6);
    cr_assert_eq(qb_theme_color_to_8(17), 4);
    cr_assert_eq(qb_theme_color_to_8(244), 0 + 7);
    cr_assert_eq(qb_theme_color_to_8(236), 0);
    cr_assert_eq(qb_theme_color_to_8(231), 7);
    for (int c = 0; c < 256; c++) {
        int m = qb_theme_color_to_8(c);
        cr_assert(m >= 0 && m < 8, "%d -> %d", c, m);
    }
    struct qb_theme t;
    qb_theme_builtin(&t);
    qb_theme_to_8_colors(&t);
    cr_assert_eq(t.colors, 8);
    for (int e = 0; e < QB_TH_COUNT; e++)
        cr_assert(t.style[e].fg < 8 && t.style[e].bg < 8);
}

Test(theme, no_color_strips_colours_but_keeps_things_visible)
{
    struct qb_theme t;
    qb_theme_builtin(&t);
    qb_theme_strip_colors(&t);
    for (int e = 0; e < QB_TH_COUNT; e++)
        cr_assert(t.style[e].fg == QB_COLOR_DEFAULT && t.style[e].bg == QB_COLOR_DEFAULT);
    cr_assert(t.style[QB_TH_SELECTED].attrs & QB_ATTR_REVERSE);
    cr_assert(t.style[QB_TH_BAR].attrs & QB_ATTR_REVERSE);
    setenv("NO_COLOR", "", 1);
    cr_assert_not(qb_no_color_requested(), "empty NO_COLOR does not count");
    setenv("NO_COLOR", "1", 1);
    cr_assert(qb_no_color_requested());
    unsetenv("NO_COLOR");
    cr_assert_not(qb_no_color_requested());
}

Test(theme, user_config_names_the_theme)
{
    char dir[] = "/tmp/qb_theme_cfg_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256], cmd[512];
    snprintf(path, sizeof path, "%s/quantbench", dir);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/quantbench/config", dir);
    FILE *f = fopen(path, "w");
    fputs("# my settings\nbackend = cpu\n  theme =  light  # comment\n", f);
    fclose(f);
    setenv("XDG_CONFIG_HOME", dir, 1);
    char value[64] = "";
    cr_assert(qb_tui_config_get("theme", value, sizeof value));
    cr_assert_str_eq(value, "light");
    cr_assert(qb_tui_config_get("backend", value, sizeof value));
    cr_assert_str_eq(value, "cpu");
    cr_assert_not(qb_tui_config_get("missing", value, sizeof value));
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_not(qb_tui_config_get("theme", value, sizeof value), "no file: not found");
}
