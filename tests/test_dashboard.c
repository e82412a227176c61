/*
 * test_dashboard.c - end-to-end tests of the dashboard in a real terminal:
 * tmux on a private socket (-L qbtestPID_N, no user config, status line off)
 * runs the built binary at 80x24 with HOME and the XDG folders in a temporary
 * folder; keys go in with send-keys, the screen comes back with capture-pane,
 * and every check polls the screen with a deadline instead of sleeping. The
 * command's exit status is written to a file by the wrapping shell.
 *
 * Covered: the five panes at 80x24 and 160x48, picking a scheme and running
 * a real eval of the demo model on the CPU backend (progress, then a Results
 * row with ppl, and its line in the history file), help open/close, zoom,
 * resize down to "terminal too small" and back, cancelling a long eval (with
 * c and with Ctrl-C), quitting with and without a running job (exit 0),
 * NO_COLOR, the ASCII fallback, and TERM=dumb / no terminal falling back to a
 * message with exit 1; against the loopback Hub (tests/hub_server.py): a
 * search from the `/` prompt, and pulling a model with Enter then evaluating
 * the pulled copy.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/qb_common.h"
#include "test_hub_fixture.h"

#define DEMO QB_TEST_DATA "/ref-llama-10m"
#define FAST_ARGS "--backend cpu --ctx 128 --chunks 2"
/* every chunk of the demo text: minutes, so there is always time to cancel;
 * short chunks keep the cancel check (between chunks) frequent */
#define LONG_ARGS "--backend cpu --ctx 128 --chunks 0"

struct tmx {
    char sock[64];
    char dir[128];
};

/* Sessions this test process started, so .fini can remove them even when an
 * assertion ended the test early (each test runs in its own process). */
#define TMX_MAX 16
static struct tmx tmx_started[TMX_MAX];
static int tmx_counter;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* Start the dashboard in a detached tmux session of cols x rows. env is put in
 * front of the command (e.g. "NO_COLOR=1"), args after it; config (may be
 * NULL) becomes $XDG_CONFIG_HOME/quantbench/config; model NULL is the demo. */
static void tmx_start_cfg(struct tmx *t, int cols, int rows, const char *env, const char *model,
                          const char *args, const char *config)
{
    cr_assert_lt(tmx_counter, TMX_MAX);
    snprintf(t->sock, sizeof t->sock, "qbtest%d_%d", (int)getpid(), tmx_counter);
    snprintf(t->dir, sizeof t->dir, "/tmp/qb_dash_XXXXXX");
    cr_assert_not_null(mkdtemp(t->dir));
    tmx_started[tmx_counter++] = *t;
    if (config) {
        char cfg[256];
        cr_assert_eq(sh("mkdir -p '%s/config/quantbench'", t->dir), 0);
        snprintf(cfg, sizeof cfg, "%s/config/quantbench/config", t->dir);
        FILE *c = fopen(cfg, "w");
        cr_assert_not_null(c);
        fputs(config, c);
        fclose(c);
    }
    char conf[256];
    snprintf(conf, sizeof conf, "%s/tmux.conf", t->dir);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fputs("set -g status off\nset -g escape-time 0\nset -g default-terminal screen-256color\n",
          f);
    fclose(f);
    int rc = sh("tmux -L %s -f %s new-session -d -x %d -y %d "
                "\"env HOME=%s XDG_STATE_HOME=%s/state XDG_CONFIG_HOME=%s/config "
                "XDG_CACHE_HOME=%s/cache HF_HUB_OFFLINE=1 LANG=C.UTF-8 %s '%s' '%s' %s; "
                "echo \\$? > %s/rc.tmp; mv %s/rc.tmp %s/rc; sleep 60\"",
                t->sock, conf, cols, rows, t->dir, t->dir, t->dir, t->dir, env ? env : "",
                QB_BINARY, model ? model : DEMO, args ? args : "", t->dir, t->dir, t->dir);
    cr_assert_eq(rc, 0, "tmux new-session failed");
}

static void tmx_start(struct tmx *t, int cols, int rows, const char *env, const char *args)
{
    tmx_start_cfg(t, cols, rows, env, NULL, args, NULL);
}

/* Kill the server, then remove its socket (tmux leaves it behind) and folder. */
static void tmx_stop(struct tmx *t)
{
    const char *tmpdir = getenv("TMUX_TMPDIR");
    sh("tmux -L %s kill-server >/dev/null 2>&1", t->sock);
    sh("rm -f '%s/tmux-%d/%s'", tmpdir && tmpdir[0] ? tmpdir : "/tmp", (int)getuid(), t->sock);
    sh("rm -rf '%s'", t->dir);
}

/* The screen as text (rows separated by '\n'); malloced. */
static char *tmx_capture(struct tmx *t, int escapes)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "tmux -L %s capture-pane -p %s -t 0 2>/dev/null", t->sock,
             escapes ? "-e" : "");
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[len] = '\0';
    pclose(p);
    return buf;
}

static void tmx_keys(struct tmx *t, const char *keys)
{
    cr_assert_eq(sh("tmux -L %s send-keys -t 0 %s", t->sock, keys), 0);
}

/* Poll until the screen contains needle (or, with absent, no longer does). */
static int tmx_poll(struct tmx *t, const char *needle, int absent, double timeout, int quiet)
{
    double end = qb_now_seconds() + timeout;
    do {
        char *s = tmx_capture(t, 0);
        int has = strstr(s, needle) != NULL;
        free(s);
        if (has != absent)
            return 1;
        usleep(50 * 1000);
    } while (qb_now_seconds() < end);
    if (quiet)
        return 0;
    char *s = tmx_capture(t, 0);
    cr_log_error("screen while waiting for %s'%s':\n%s", absent ? "no " : "", needle, s);
    free(s);
    return 0;
}

static int tmx_wait(struct tmx *t, const char *needle, int absent, double timeout)
{
    return tmx_poll(t, needle, absent, timeout, 0);
}

#define WAIT_FOR(t, text, secs) cr_assert(tmx_wait(t, text, 0, secs), "never saw '%s'", text)
#define WAIT_GONE(t, text, secs) cr_assert(tmx_wait(t, text, 1, secs), "'%s' stayed", text)

/* The exit status the wrapper wrote, or -1 after timeout seconds. */
static int tmx_exit_code(struct tmx *t, double timeout)
{
    char path[256];
    snprintf(path, sizeof path, "%s/rc", t->dir);
    double end = qb_now_seconds() + timeout;
    while (qb_now_seconds() < end) {
        FILE *f = fopen(path, "r");
        if (f) {
            int rc = -1;
            if (fscanf(f, "%d", &rc) != 1)
                rc = -1;
            fclose(f);
            return rc;
        }
        usleep(50 * 1000);
    }
    return -1;
}

/* Focus Method & precision and move down until the hardware line names scheme. */
static void pick_scheme(struct tmx *t, const char *scheme)
{
    char want[64];
    snprintf(want, sizeof want, "%s: ", scheme);
    tmx_keys(t, "Tab");
    for (int i = 0; i < 64; i++) {
        if (tmx_poll(t, want, 0, 0.3, 1))
            return;
        tmx_keys(t, "Down");
    }
    cr_assert_fail("scheme %s not found in the Method pane", scheme);
}

/* "12/243 chunks" on the screen -> 12, or -1. */
static int chunks_done(struct tmx *t)
{
    char *s = tmx_capture(t, 0);
    int done = -1;
    for (char *p = strstr(s, " chunks"); p; p = strstr(p + 1, " chunks")) {
        char *q = p;
        while (q > s && q[-1] != ' ')
            q--;
        int a, b;
        if (sscanf(q, "%d/%d", &a, &b) == 2)
            done = a;
    }
    free(s);
    return done;
}

/* 1 when an SGR sequence in s sets a colour (30-37, 38, 40-47, 48, 90-97,
 * 100-107); 39/49 (default colours) and attributes do not count. */
static int has_colour_sgr(const char *s)
{
    for (const char *p = strstr(s, "\x1b["); p; p = strstr(p + 1, "\x1b[")) {
        const char *q = p + 2;
        while (*q && *q != 'm' && ((*q >= '0' && *q <= '9') || *q == ';')) {
            int v = atoi(q);
            if ((v >= 30 && v <= 38) || (v >= 40 && v <= 48) || (v >= 90 && v <= 97) ||
                (v >= 100 && v <= 107))
                return 1;
            while (*q >= '0' && *q <= '9')
                q++;
            if (*q == ';')
                q++;
        }
    }
    return 0;
}

static const char *const pane_titles[] = {"Models", "Method & precision", "Job", "GPU",
                                          "Results"};

static void expect_panes(struct tmx *t)
{
    for (size_t i = 0; i < QB_ARRAY_LEN(pane_titles); i++) {
        char title[64];
        snprintf(title, sizeof title, " %s ", pane_titles[i]);
        WAIT_FOR(t, title, 5);
    }
}

static void need_tmux(void)
{
    cr_assert_eq(system("command -v tmux >/dev/null 2>&1"), 0,
                 "tmux not found: these end-to-end tests need it (apt-get install tmux)");
}

/* Kill every tmux server this test started (the dashboard inside gets
 * SIGHUP and quits) and remove its folder; harmless when already done. */
static void cleanup_sessions(void)
{
    for (int i = 0; i < tmx_counter; i++)
        tmx_stop(&tmx_started[i]);
}

TestSuite(dashboard, .init = need_tmux, .fini = cleanup_sessions, .timeout = 240);

Test(dashboard, opens_on_the_demo_model_with_five_panes_and_quits_cleanly)
{
    struct tmx t;
    tmx_start(&t, 80, 24, NULL, FAST_ARGS);
    expect_panes(&t);
    WAIT_FOR(&t, "ref-llama-10m", 5);
    WAIT_FOR(&t, "llama, 8 layers", 5);
    WAIT_FOR(&t, "no GPU", 5);
    char *s = tmx_capture(&t, 0);
    int lines = 0;
    for (char *p = s; *p; p++)
        lines += *p == '\n';
    cr_assert_geq(lines, 23, "%s", s);
    free(s);
    tmx_keys(&t, "Enter");
    WAIT_FOR(&t, "selected; pick a scheme", 5);
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
}

Test(dashboard, runs_an_eval_on_the_cpu_and_shows_the_results_row)
{
    struct tmx t;
    tmx_start(&t, 80, 24, NULL, FAST_ARGS);
    expect_panes(&t);
    pick_scheme(&t, "f32");
    tmx_keys(&t, "r");
    WAIT_FOR(&t, "eval f32", 10);
    WAIT_FOR(&t, "[done]", 120);
    WAIT_FOR(&t, "bf16 (base)", 5);
    char *s = tmx_capture(&t, 0);
    char *row = strstr(s, "\xe2\x94\x82" "f32  "); /* "│f32  " at the pane's left border */
    cr_assert_not_null(row, "%s", s);
    double bpw = 0, ppl = 0;
    char size[16], unit[8];
    cr_assert_eq(sscanf(row + 3, "f32 %lf %15s %7s %lf", &bpw, size, unit, &ppl), 4, "%s", row);
    cr_assert_float_eq(bpw, 32.0, 1e-9);
    cr_assert(ppl > 1.0 && ppl < 1e5, "ppl %g", ppl);
    /* f32 holds the bf16 weights exactly: the same perplexity as the baseline */
    char *base = strstr(s, "bf16 (base)");
    double base_bpw = 0, base_ppl = 0;
    cr_assert_eq(sscanf(base, "bf16 (base) %lf %15s %7s %lf", &base_bpw, size, unit, &base_ppl),
                 4, "%s", base);
    cr_assert_float_eq(base_bpw, 16.0, 1e-9);
    cr_assert_float_eq(ppl, base_ppl, 1e-3);
    free(s);
    char hist[256];
    snprintf(hist, sizeof hist, "%s/state/quantbench/results.jsonl", t.dir);
    struct stat st;
    cr_assert_eq(stat(hist, &st), 0, "the run was recorded in the history");
    cr_assert_eq(sh("grep -q '\"scheme\":\"f32\"' '%s'", hist), 0);
    /* Results pane: sort and export */
    tmx_keys(&t, "Tab Tab Tab");
    tmx_keys(&t, "s");
    WAIT_FOR(&t, "sort scheme", 5);
    tmx_keys(&t, "x");
    WAIT_FOR(&t, "exported 2 rows", 5);
    cr_assert_eq(sh("ls %s/state/quantbench/export-*.csv %s/state/quantbench/export-*.json "
                    "%s/state/quantbench/export-*.md >/dev/null", t.dir, t.dir, t.dir), 0);
    tmx_keys(&t, "h");
    WAIT_FOR(&t, "history, sort", 5);
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
}

Test(dashboard, help_opens_and_closes_and_zoom_toggles)
{
    struct tmx t;
    tmx_start(&t, 80, 24, NULL, FAST_ARGS);
    expect_panes(&t);
    tmx_keys(&t, "?");
    WAIT_FOR(&t, "Help: keys", 5);
    WAIT_FOR(&t, "Everywhere", 5);
    WAIT_FOR(&t, "cancel the running job", 5);
    tmx_keys(&t, "Escape");
    WAIT_GONE(&t, "Help: keys", 2);
    tmx_keys(&t, "?");
    WAIT_FOR(&t, "Help: keys", 5);
    tmx_keys(&t, "?");
    WAIT_GONE(&t, "Help: keys", 2);
    tmx_keys(&t, "z");
    WAIT_FOR(&t, "zoom", 5);
    WAIT_GONE(&t, " Results ", 2);
    tmx_keys(&t, "z");
    WAIT_FOR(&t, " Results ", 5);
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
}

Test(dashboard, doctor_starts_and_cancels_then_search_answers)
{
    struct tmx t;
    tmx_start(&t, 80, 24, NULL, FAST_ARGS);
    expect_panes(&t);
    tmx_keys(&t, "d");
    WAIT_FOR(&t, "doctor", 5);
    tmx_keys(&t, "c");
    WAIT_FOR(&t, "cancelled", 30);
    tmx_keys(&t, "/");
    WAIT_FOR(&t, "Search the Hugging Face Hub", 5);
    tmx_keys(&t, "-l tiny");
    WAIT_FOR(&t, "/ tiny", 5);
    tmx_keys(&t, "BSpace");
    WAIT_FOR(&t, "/ tin_", 5);
    tmx_keys(&t, "Enter");
    WAIT_GONE(&t, "Search the Hugging Face Hub", 5);
    WAIT_FOR(&t, "tin", 10); /* a result count, or why the search could not run */
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
}

Test(dashboard, resize_down_to_too_small_and_back_up)
{
    struct tmx t;
    tmx_start(&t, 80, 24, NULL, FAST_ARGS);
    expect_panes(&t);
    sh("tmux -L %s resize-window -t 0 -x 160 -y 48", t.sock);
    WAIT_FOR(&t, "top-1", 5); /* the wide Results columns appear */
    expect_panes(&t);
    sh("tmux -L %s resize-window -t 0 -x 60 -y 20", t.sock);
    WAIT_FOR(&t, "terminal too small", 5);
    WAIT_FOR(&t, "need 80x24", 5);
    sh("tmux -L %s resize-window -t 0 -x 80 -y 24", t.sock);
    WAIT_GONE(&t, "terminal too small", 5);
    expect_panes(&t);
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
}

Test(dashboard, cancel_a_long_eval_records_nothing)
{
    struct tmx t;
    tmx_start(&t, 80, 24, NULL, LONG_ARGS);
    expect_panes(&t);
    tmx_keys(&t, "r");
    WAIT_FOR(&t, "[running]", 10);
    WAIT_FOR(&t, " chunks", 60);
    int a = chunks_done(&t);
    double end = qb_now_seconds() + 60;
    int b = a;
    while (b <= a && qb_now_seconds() < end) {
        usleep(100 * 1000);
        b = chunks_done(&t);
    }
    cr_assert_gt(b, a, "progress moves (%d -> %d)", a, b);
    tmx_keys(&t, "c");
    WAIT_FOR(&t, "[cancelled]", 20);
    WAIT_FOR(&t, "nothing recorded", 5);
    char hist[256];
    snprintf(hist, sizeof hist, "%s/state/quantbench/results.jsonl", t.dir);
    cr_assert_neq(access(hist, F_OK), 0, "no history line for a cancelled eval");
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0, "quit without asking once the job ended");
    tmx_stop(&t);
}

Test(dashboard, ctrl_c_cancels_first_and_quits_second)
{
    struct tmx t;
    tmx_start(&t, 80, 24, NULL, LONG_ARGS);
    expect_panes(&t);
    tmx_keys(&t, "r");
    WAIT_FOR(&t, "[running]", 10);
    tmx_keys(&t, "C-c");
    WAIT_FOR(&t, "[cancelled]", 20);
    tmx_keys(&t, "C-c");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
}

Test(dashboard, quit_while_a_job_runs_asks_first)
{
    struct tmx t;
    tmx_start(&t, 80, 24, NULL, LONG_ARGS);
    expect_panes(&t);
    tmx_keys(&t, "r");
    WAIT_FOR(&t, "[running]", 10);
    /* keys are answered while the worker computes (100 ms in the loop; the
     * bound here allows for tmux and the capture polling) */
    for (int i = 0; i < 3; i++) {
        double t0 = qb_now_seconds();
        tmx_keys(&t, "?");
        WAIT_FOR(&t, "Help: keys", 5);
        cr_assert_lt(qb_now_seconds() - t0, 0.5, "help took %.3f s during a job",
                     qb_now_seconds() - t0);
        tmx_keys(&t, "Escape");
        WAIT_GONE(&t, "Help: keys", 5);
    }
    tmx_keys(&t, "q");
    WAIT_FOR(&t, "Cancel it and quit?", 5);
    tmx_keys(&t, "n");
    WAIT_GONE(&t, "Cancel it and quit?", 5);
    WAIT_FOR(&t, "[running]", 5);
    tmx_keys(&t, "q");
    WAIT_FOR(&t, "Cancel it and quit?", 5);
    double t0 = qb_now_seconds();
    tmx_keys(&t, "y");
    cr_assert_eq(tmx_exit_code(&t, 20), 0);
    cr_assert_lt(qb_now_seconds() - t0, 10.0, "quit does not wait for the eval to finish");
    tmx_stop(&t);
}

Test(dashboard, no_color_and_ascii_fallbacks)
{
    struct tmx t;
    tmx_start(&t, 80, 24, "NO_COLOR=1 LC_ALL=C", FAST_ARGS);
    WAIT_FOR(&t, "+- Models ", 5); /* ASCII borders under a non-UTF-8 locale */
    char *s = tmx_capture(&t, 1);
    cr_assert_not(has_colour_sgr(s), "no colour escapes with NO_COLOR:\n%s", s);
    free(s);
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
}

Test(dashboard, themes_load_and_a_bad_theme_falls_back)
{
    struct tmx t;
    tmx_start(&t, 80, 24, NULL, FAST_ARGS " --theme light");
    expect_panes(&t);
    char *s = tmx_capture(&t, 1);
    cr_assert(has_colour_sgr(s), "colours with a colour theme");
    free(s);
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
    tmx_start_cfg(&t, 80, 24, NULL, NULL, FAST_ARGS, "# user settings\ntheme = monochrome\n");
    expect_panes(&t);
    s = tmx_capture(&t, 1);
    cr_assert_not(has_colour_sgr(s), "`theme = monochrome` in the config: no colours");
    free(s);
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
    tmx_start(&t, 80, 24, NULL, FAST_ARGS " --theme no-such-theme");
    WAIT_FOR(&t, "theme 'no-such-theme' not found", 5);
    expect_panes(&t);
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
}

/* With the telemetry module and its fake NVML (built by tests/CMakeLists.txt
 * when the telemetry room is in the tree), the GPU pane shows real values,
 * and N/A for what the driver does not answer. Skipped otherwise. */
Test(dashboard, gpu_pane_with_fake_nvml)
{
    const char *lib = QB_BUILD_DIR "/tests/libfake_nvml.so";
    if (access(lib, R_OK) != 0)
        cr_skip_test("no fake NVML in this build (telemetry module absent)");
    char env[512];
    struct tmx t;
    snprintf(env, sizeof env, "QUANTBENCH_NVML_LIB=%s", lib);
    tmx_start(&t, 80, 24, env, FAST_ARGS);
    WAIT_FOR(&t, "NVIDIA H100", 10);
    WAIT_FOR(&t, "79.6 GiB", 5);
    WAIT_FOR(&t, " W", 5);
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
    snprintf(env, sizeof env, "FAKE_NVML_MODE=no_gpus QUANTBENCH_NVML_LIB=%s", lib);
    tmx_start(&t, 80, 24, env, FAST_ARGS);
    WAIT_FOR(&t, "no GPU", 10);
    WAIT_FOR(&t, "util  N/A", 5);
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
}

Test(dashboard, dumb_terminal_or_no_terminal_points_at_the_cli)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "TERM=dumb timeout 10 '%s' '%s' </dev/null 2>&1", QB_BINARY, DEMO);
    FILE *p = popen(cmd, "r");
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit 1, got %d", status);
    cr_assert(strstr(out, "needs a terminal"), "%s", out);
    cr_assert(strstr(out, "quantbench eval"), "%s", out);
    /* a real terminal but TERM=dumb: the same message, no hang */
    struct tmx t;
    tmx_start(&t, 80, 24, "TERM=dumb", FAST_ARGS);
    cr_assert_eq(tmx_exit_code(&t, 10), 1);
    WAIT_FOR(&t, "TERM=dumb", 5);
    tmx_stop(&t);
}

/* ---- against the loopback Hub (tests/hub_server.py) --------------------------------- */

static void hub_suite_fini(void)
{
    cleanup_sessions();
    hub_srv_stop();
}

TestSuite(dashboard_hub, .init = need_tmux, .fini = hub_suite_fini, .timeout = 240);

static void hub_env(char *buf, size_t size)
{
    snprintf(buf, size,
             "HF_HUB_OFFLINE=0 HF_ENDPOINT=%s HF_HUB_CACHE=%s QUANTBENCH_HUB_RETRIES=1 "
             "QUANTBENCH_HUB_BACKOFF_S=0.02",
             srv.endpoint, srv.cache);
}

Test(dashboard_hub, search_lists_hub_models)
{
    hub_srv_start();
    char env[512];
    hub_env(env, sizeof env);
    struct tmx t;
    tmx_start(&t, 80, 24, env, FAST_ARGS);
    expect_panes(&t);
    tmx_keys(&t, "/");
    WAIT_FOR(&t, "Search the Hugging Face Hub", 5);
    tmx_keys(&t, "-l qwen3");
    tmx_keys(&t, "Enter");
    WAIT_FOR(&t, "Hub: 2 models for 'qwen3'", 20);
    WAIT_FOR(&t, "Qwen/Qwen3-8B", 5);
    WAIT_FOR(&t, "Qwen/Qwen3-0.6B", 5);
    WAIT_FOR(&t, "downloads", 5); /* the selected hit's details */
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
}

Test(dashboard_hub, enter_pulls_a_model_then_r_evaluates_it)
{
    hub_srv_start();
    char env[512];
    hub_env(env, sizeof env);
    struct tmx t;
    /* the MODEL argument, not in the cache yet: listed first, marked for pulling */
    tmx_start_cfg(&t, 80, 24, env, "qb-test/ref-llama-10m", FAST_ARGS, NULL);
    expect_panes(&t);
    WAIT_FOR(&t, "not in the local cache", 5);
    tmx_keys(&t, "Enter");
    WAIT_FOR(&t, "pulled into", 60);
    cr_assert(hub_path_exists("%s/models--qb-test--ref-llama-10m/snapshots", srv.cache));
    WAIT_FOR(&t, "llama, 8 layers", 5); /* details read from the pulled copy */
    tmx_keys(&t, "r");
    WAIT_FOR(&t, "bf16 (base)", 120);
    char hist[256];
    snprintf(hist, sizeof hist, "%s/state/quantbench/results.jsonl", t.dir);
    cr_assert_eq(sh("grep -q 'models--qb-test--ref-llama-10m' '%s'", hist), 0,
                 "the history names the pulled snapshot");
    tmx_keys(&t, "q");
    cr_assert_eq(tmx_exit_code(&t, 10), 0);
    tmx_stop(&t);
}
