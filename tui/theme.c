/*
 * theme.c - theme files, colour fallbacks and the user config (see theme.h).
 */
#include "theme.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileutil.h"

#define THEME_FILE_MAX (64 * 1024)

static const char *const elem_names[QB_TH_COUNT] = {
    [QB_TH_TEXT] = "text",         [QB_TH_DIM] = "dim",
    [QB_TH_TITLE] = "title",       [QB_TH_BORDER] = "border",
    [QB_TH_BORDER_FOCUS] = "border_focus", [QB_TH_HEADER] = "header",
    [QB_TH_SELECTED] = "selected", [QB_TH_GOOD] = "good",
    [QB_TH_BAD] = "bad",           [QB_TH_WARN] = "warn",
    [QB_TH_BAR] = "bar",           [QB_TH_BAR_BG] = "bar_bg",
    [QB_TH_SPARK] = "spark",       [QB_TH_STATUS] = "status",
    [QB_TH_KEY] = "key",           [QB_TH_BASELINE] = "baseline",
};

const char *qb_theme_elem_name(enum qb_theme_elem e)
{
    if ((unsigned)e >= QB_TH_COUNT)
        return NULL;
    return elem_names[e];
}

static const struct { const char *name; unsigned bit; } attr_names[] = {
    {"bold", QB_ATTR_BOLD},         {"dim", QB_ATTR_DIM},       {"underline", QB_ATTR_UNDERLINE},
    {"reverse", QB_ATTR_REVERSE},   {"italic", QB_ATTR_ITALIC}, {"standout", QB_ATTR_STANDOUT},
};

static const char *const basic_names[8] = {"black", "red",     "green", "yellow",
                                           "blue",  "magenta", "cyan",  "white"};

void qb_theme_builtin(struct qb_theme *t)
{
    static const struct qb_style def[QB_TH_COUNT] = {
        [QB_TH_TEXT] = {252, -1, 0},
        [QB_TH_DIM] = {244, -1, 0},
        [QB_TH_TITLE] = {81, -1, QB_ATTR_BOLD},
        [QB_TH_BORDER] = {240, -1, 0},
        [QB_TH_BORDER_FOCUS] = {81, -1, QB_ATTR_BOLD},
        [QB_TH_HEADER] = {231, 24, QB_ATTR_BOLD},
        [QB_TH_SELECTED] = {231, 31, QB_ATTR_BOLD},
        [QB_TH_GOOD] = {114, -1, 0},
        [QB_TH_BAD] = {203, -1, QB_ATTR_BOLD},
        [QB_TH_WARN] = {221, -1, 0},
        [QB_TH_BAR] = {81, -1, 0},
        [QB_TH_BAR_BG] = {238, -1, 0},
        [QB_TH_SPARK] = {114, -1, 0},
        [QB_TH_STATUS] = {250, 236, 0},
        [QB_TH_KEY] = {221, 236, QB_ATTR_BOLD},
        [QB_TH_BASELINE] = {180, -1, QB_ATTR_BOLD},
    };
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "builtin");
    t->colors = 256;
    memcpy(t->style, def, sizeof def);
}

static int parse_color(const char *s, int *out)
{
    if (strcmp(s, "default") == 0) {
        *out = QB_COLOR_DEFAULT;
        return 0;
    }
    int bright = strncmp(s, "bright-", 7) == 0;
    const char *base = bright ? s + 7 : s;
    for (int i = 0; i < 8; i++) {
        if (strcmp(base, basic_names[i]) == 0) {
            *out = i + (bright ? 8 : 0);
            return 0;
        }
    }
    if (bright || !*s)
        return -1;
    int v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > 255)
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v > 255)
        return -1;
    *out = v;
    return 0;
}

static int parse_attr(const char *s, unsigned *bits)
{
    for (size_t i = 0; i < QB_ARRAY_LEN(attr_names); i++) {
        if (strcmp(s, attr_names[i].name) == 0) {
            *bits |= attr_names[i].bit;
            return 0;
        }
    }
    return -1;
}

static int find_elem(const char *s)
{
    for (int i = 0; i < QB_TH_COUNT; i++) {
        if (strcmp(s, elem_names[i]) == 0)
            return i;
    }
    return -1;
}

/* Split line into whitespace-separated words (in place); returns the count. */
static int split_words(char *line, char **words, int max)
{
    int n = 0;
    char *p = line;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (n == max)
            return max + 1;
        words[n++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p)
            *p++ = '\0';
    }
    return n;
}

static enum qb_status parse_entry(char *key, char *value, const char *what, int lineno,
                                  struct qb_theme *t, struct qb_err *err)
{
    char *w[8];
    int n = split_words(value, w, 7);
    if (strcmp(key, "colors") == 0) {
        if (n != 1 || (strcmp(w[0], "8") != 0 && strcmp(w[0], "256") != 0))
            return qb_err_set(err, QB_ERR_FORMAT, "%s:%d: colors must be 8 or 256", what,
                              lineno);
        t->colors = atoi(w[0]);
        return QB_OK;
    }
    if (strcmp(key, "name") == 0) {
        if (n >= 1)
            snprintf(t->name, sizeof t->name, "%s", w[0]);
        return QB_OK;
    }
    int e = find_elem(key);
    if (e < 0)
        return qb_err_set(err, QB_ERR_FORMAT, "%s:%d: unknown element '%s'", what, lineno, key);
    if (n < 1 || n > 7)
        return qb_err_set(err, QB_ERR_FORMAT, "%s:%d: '%s' needs FG [BG] [ATTR...]", what,
                          lineno, key);
    struct qb_style st = {QB_COLOR_DEFAULT, QB_COLOR_DEFAULT, 0};
    if (parse_color(w[0], &st.fg))
        return qb_err_set(err, QB_ERR_FORMAT, "%s:%d: unknown colour '%s'", what, lineno, w[0]);
    int i = 1;
    if (i < n && parse_color(w[i], &st.bg) == 0)
        i++;
    for (; i < n; i++) {
        if (parse_attr(w[i], &st.attrs))
            return qb_err_set(err, QB_ERR_FORMAT, "%s:%d: unknown colour or attribute '%s'",
                              what, lineno, w[i]);
    }
    t->style[e] = st;
    return QB_OK;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

enum qb_status qb_theme_parse(const char *text, size_t len, const char *what, struct qb_theme *t,
                              struct qb_err *err)
{
    enum qb_status st = QB_OK;
    qb_theme_builtin(t);
    char *copy = malloc(len + 1);
    if (!copy)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory reading %s", what);
    memcpy(copy, text, len);
    copy[len] = '\0';
    int lineno = 0;
    char *next = NULL;
    for (char *line = copy; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *l = trim(line);
        if (!*l)
            continue;
        char *eq = strchr(l, '=');
        if (!eq) {
            st = qb_err_set(err, QB_ERR_FORMAT, "%s:%d: expected 'element = colours'", what,
                            lineno);
            goto out;
        }
        *eq = '\0';
        st = parse_entry(trim(l), trim(eq + 1), what, lineno, t, err);
        if (st)
            goto out;
    }
out:
    free(copy);
    return st;
}

static int theme_path(const char *dir, const char *name, char *buf, size_t size)
{
    if (!dir || !dir[0])
        return 0;
    int n = snprintf(buf, size, "%s/%s.theme", dir, name);
    return n > 0 && (size_t)n < size && qb_path_exists(buf);
}

static int name_is_plain(const char *name)
{
    if (!name[0])
        return 0;
    for (const char *p = name; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return 0;
    }
    return 1;
}

enum qb_status qb_theme_load(const char *name, struct qb_theme *t, char *path, size_t path_size,
                             struct qb_err *err)
{
    char file[4096], envdir[4096] = "";
    const char *env = getenv("QB_SOURCE_DIR");
    if (env && env[0])
        snprintf(envdir, sizeof envdir, "%s/themes", env);
    int found = 0;
    if (strchr(name, '/')) {
        snprintf(file, sizeof file, "%s", name);
        found = qb_path_exists(file);
    } else if (name_is_plain(name)) {
        found = theme_path(envdir, name, file, sizeof file) ||
                theme_path(QB_SOURCE_DIR "/themes", name, file, sizeof file) ||
                theme_path(QB_THEMES_DIR, name, file, sizeof file);
    }
    if (!found)
        return qb_err_set(err, QB_ERR_IO, "theme '%s' not found (looked in %s%s%s/themes and %s)",
                          name, envdir, envdir[0] ? ", " : "", QB_SOURCE_DIR, QB_THEMES_DIR);
    char *text = NULL;
    size_t len = 0;
    enum qb_status st = qb_file_read_all(file, THEME_FILE_MAX, &text, &len, err);
    if (!st)
        st = qb_theme_parse(text, len, file, t, err);
    free(text);
    if (!st && path)
        snprintf(path, path_size, "%s", file);
    return st;
}

/* xterm-256 index -> RGB (0..255). */
static void xterm_rgb(int c, int rgb[3])
{
    static const int basic[16][3] = {
        {0, 0, 0},       {205, 0, 0},     {0, 205, 0},     {205, 205, 0},
        {0, 0, 238},     {205, 0, 205},   {0, 205, 205},   {229, 229, 229},
        {127, 127, 127}, {255, 0, 0},     {0, 255, 0},     {255, 255, 0},
        {92, 92, 255},   {255, 0, 255},   {0, 255, 255},   {255, 255, 255},
    };
    if (c < 16) {
        memcpy(rgb, basic[c], sizeof basic[c]);
    } else if (c < 232) {
        static const int level[6] = {0, 95, 135, 175, 215, 255};
        int i = c - 16;
        rgb[0] = level[i / 36];
        rgb[1] = level[(i / 6) % 6];
        rgb[2] = level[i % 6];
    } else {
        int v = 8 + 10 * (c - 232);
        rgb[0] = rgb[1] = rgb[2] = v;
    }
}

int qb_theme_color_to_8(int color)
{
    if (color < 8)
        return color;
    if (color < 16)
        return color - 8;
    int rgb[3];
    xterm_rgb(color, rgb);
    /* Hue by thresholding each channel halfway between the weakest and the
     * strongest one; greys go to black or white by brightness. */
    int mx = QB_MAX(rgb[0], QB_MAX(rgb[1], rgb[2]));
    int mn = QB_MIN(rgb[0], QB_MIN(rgb[1], rgb[2]));
    if (mx - mn < 40)
        return mx >= 128 ? 7 : 0;
    int bits = 0;
    for (int i = 0; i < 3; i++) {
        if (rgb[i] * 2 > mx + mn)
            bits |= 1 << i;
    }
    return bits;
}

void qb_theme_to_8_colors(struct qb_theme *t)
{
    for (int i = 0; i < QB_TH_COUNT; i++) {
        t->style[i].fg = qb_theme_color_to_8(t->style[i].fg);
        t->style[i].bg = qb_theme_color_to_8(t->style[i].bg);
    }
    t->colors = 8;
}

void qb_theme_strip_colors(struct qb_theme *t)
{
    for (int i = 0; i < QB_TH_COUNT; i++)
        t->style[i].fg = t->style[i].bg = QB_COLOR_DEFAULT;
    t->style[QB_TH_SELECTED].attrs |= QB_ATTR_REVERSE;
    t->style[QB_TH_HEADER].attrs |= QB_ATTR_REVERSE;
    t->style[QB_TH_STATUS].attrs |= QB_ATTR_REVERSE;
    t->style[QB_TH_KEY].attrs |= QB_ATTR_REVERSE | QB_ATTR_BOLD;
    t->style[QB_TH_BORDER_FOCUS].attrs |= QB_ATTR_BOLD;
    t->style[QB_TH_BAR].attrs |= QB_ATTR_REVERSE;
    t->style[QB_TH_BAD].attrs |= QB_ATTR_BOLD;
    t->style[QB_TH_DIM].attrs |= QB_ATTR_DIM;
}

int qb_no_color_requested(void)
{
    const char *v = getenv("NO_COLOR");
    return v && v[0];
}

int qb_tui_config_get(const char *key, char *out, size_t size)
{
    char path[4096];
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        snprintf(path, sizeof path, "%s/quantbench/config", xdg);
    else if (home && home[0])
        snprintf(path, sizeof path, "%s/.config/quantbench/config", home);
    else
        return 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        line[strcspn(line, "\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        if (strcmp(trim(line), key) != 0)
            continue;
        snprintf(out, size, "%s", trim(eq + 1));
        found = 1;
    }
    fclose(f);
    return found;
}
