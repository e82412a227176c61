/*
 * theme.h - the dashboard's colours: semantic elements (title, border, good,
 * bad, ...) mapped to a foreground, a background and attributes, read from
 * themes/NAME.theme. Parsing is pure (no curses) so it is unit-tested; the
 * dashboard turns a struct qb_theme into curses colour pairs.
 *
 * Theme file format (see themes/default.theme for a commented example):
 *   # comment                    blank lines and '#' comments are ignored
 *   colors = 256                 colours the theme is designed for (8 or 256)
 *   ELEMENT = FG [BG] [ATTR...]  one element per line, whitespace-separated
 * FG/BG: `default` (the terminal's), black red green yellow blue magenta cyan
 * white, bright-black ... bright-white, or an xterm-256 index 0..255.
 * ATTR: bold dim underline reverse italic standout.
 * Elements not listed keep the built-in default theme's style. An unknown
 * element, colour or attribute is an error naming the file and line.
 *
 * Lookup of NAME: a path when NAME holds a '/'; else NAME.theme in
 * $QB_SOURCE_DIR/themes (environment), the source tree's themes/ (compile
 * time QB_SOURCE_DIR), then the install folder (QB_THEMES_DIR).
 * On terminals with fewer than 256 colours every colour >= 8 is mapped to the
 * nearest of the 8 basic ones (qb_theme_color_to_8); with NO_COLOR set (and
 * non-empty) or no colour support, colours are dropped and attributes kept
 * (qb_theme_strip_colors), as the monochrome theme does.
 */
#ifndef QB_THEME_H
#define QB_THEME_H

#include <stddef.h>

#include "core/qb_common.h"

enum qb_theme_elem {
    QB_TH_TEXT = 0,
    QB_TH_DIM,
    QB_TH_TITLE,
    QB_TH_BORDER,
    QB_TH_BORDER_FOCUS,
    QB_TH_HEADER,
    QB_TH_SELECTED,
    QB_TH_GOOD,
    QB_TH_BAD,
    QB_TH_WARN,
    QB_TH_BAR,
    QB_TH_BAR_BG,
    QB_TH_SPARK,
    QB_TH_STATUS,
    QB_TH_KEY,
    QB_TH_BASELINE,
    QB_TH_COUNT
};

enum qb_theme_attr {
    QB_ATTR_BOLD = 1u << 0,
    QB_ATTR_DIM = 1u << 1,
    QB_ATTR_UNDERLINE = 1u << 2,
    QB_ATTR_REVERSE = 1u << 3,
    QB_ATTR_ITALIC = 1u << 4,
    QB_ATTR_STANDOUT = 1u << 5,
};

#define QB_COLOR_DEFAULT (-1)

struct qb_style {
    int fg, bg;        /* QB_COLOR_DEFAULT or 0..255 */
    unsigned attrs;    /* enum qb_theme_attr bits */
};

struct qb_theme {
    char name[64];
    int colors;        /* 8 or 256 */
    struct qb_style style[QB_TH_COUNT];
};

/* "text", "border_focus", ...; NULL for an invalid element. */
const char *qb_theme_elem_name(enum qb_theme_elem e);

/* The compiled-in default (256 colours), used when no file is found. */
void qb_theme_builtin(struct qb_theme *t);

/* Parse theme text on top of the built-in default; what names the source in
 * errors. QB_ERR_FORMAT naming the line on a bad entry. */
enum qb_status qb_theme_parse(const char *text, size_t len, const char *what, struct qb_theme *t,
                              struct qb_err *err);

/* Find and parse theme NAME (see the lookup above). path (may be NULL) gets
 * the file used. QB_ERR_IO naming the folders tried when not found. */
enum qb_status qb_theme_load(const char *name, struct qb_theme *t, char *path, size_t path_size,
                             struct qb_err *err);

/* Nearest of the 8 basic colours for an xterm-256 index (identity below 8;
 * QB_COLOR_DEFAULT stays). */
int qb_theme_color_to_8(int color);

/* Map every colour into 0..7 (8-colour terminals). */
void qb_theme_to_8_colors(struct qb_theme *t);

/* Drop every colour (NO_COLOR, monochrome terminals), keeping attributes and
 * making sure selection, focus, bars and bad values stay visible. */
void qb_theme_strip_colors(struct qb_theme *t);

/* 1 when NO_COLOR is set to a non-empty value. */
int qb_no_color_requested(void);

/* Value of `key = value` in $XDG_CONFIG_HOME/quantbench/config (default
 * ~/.config/...), into out. Returns 1 when found, 0 when absent (no file, or
 * no such key). '#' comments and blank lines are ignored. */
int qb_tui_config_get(const char *key, char *out, size_t size);

#endif /* QB_THEME_H */
