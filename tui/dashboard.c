/*
 * dashboard.c - `quantbench [MODEL]`: the ncurses dashboard's entry point,
 * terminal lifetime, signals and event loop (the other dashboard_*.c files
 * are listed in dashboard_impl.h).
 *
 * Loop: poll() on stdin and the self-pipe with a 100 ms timeout; every wake
 * drains the pipe, copies the job snapshot (dash_bridge_poll), reads all
 * pending keys, and redraws with wnoutrefresh + one doupdate (~10 Hz while a
 * job runs, on demand otherwise). Keys are answered in the same iteration, so
 * the UI stays responsive while the worker computes.
 *
 * Signals: SIGINT cancels the running job (first press) or quits (second
 * press, or when no job runs); SIGTERM/SIGHUP quit. Handlers only bump a
 * volatile sig_atomic_t counter and write a byte to the self-pipe (the one
 * allowed piece of global state). KEY_RESIZE comes from ncurses' own SIGWINCH
 * handling. Every exit path (quit, signal, OOM) goes through endwin(); stderr
 * is redirected to $XDG_STATE_HOME/quantbench/dashboard.log while curses owns
 * the screen, so nothing scribbles over it.
 *
 * No terminal (stdin/stdout not a tty), TERM unset/dumb/unknown, or a
 * terminal without cursor addressing: a message pointing at the CLI commands
 * on stderr and exit status 1 (the dashboard could not do its job; scripts
 * should use the CLI). Nothing waits for input in that case.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <term.h>
#include <unistd.h>

#include "tui/cli.h"
#include "tui/dashboard_impl.h"

/* The only process-global mutable state: what the signal handlers touch. */
static volatile sig_atomic_t g_sigint_count;
static volatile sig_atomic_t g_sigterm;
static volatile sig_atomic_t g_wake_fd = -1;

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGINT)
        g_sigint_count++;
    else
        g_sigterm = 1;
    if (g_wake_fd >= 0) {
        ssize_t w = write(g_wake_fd, "s", 1);
        (void)w;
    }
    errno = saved;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void restore_signals(void)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
}

/* atexit safety net: whatever path leaves the process, the terminal is restored. */
static void restore_terminal_at_exit(void)
{
    if (stdscr && !isendwin())
        endwin();
}

void dash_status(struct qb_dash *d, int elem, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->status, sizeof d->status, fmt, ap);
    va_end(ap);
    d->status_elem = elem;
    d->status_until = qb_now_seconds() + 8.0;
}

void dash_fatal_oom(struct qb_dash *d)
{
    (void)d;
    if (stdscr && !isendwin())
        endwin();
    fprintf(stderr, "quantbench: out of memory in the dashboard\n");
    _exit(1);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: quantbench [MODEL] [OPTIONS]   open the dashboard\n\n"
            "MODEL is a checkpoint folder or ORG/NAME[@REV] (default: the bundled demo model)\n\n"
            "options:\n"
            "  --theme NAME        default, light, high-contrast, monochrome, or a .theme path\n"
            "                      (default: `theme = NAME` in $XDG_CONFIG_HOME/quantbench/config)\n"
            "  --models-dir DIR    also list every checkpoint folder under DIR\n"
            "  --data FILE         evaluation text (default: the bundled Gutenberg sample)\n"
            "  --calib FILE        calibration text for GPTQ/AWQ (default: the bundled sample)\n"
            "  --ctx N             evaluation tokens per chunk (default 512)\n"
            "  --chunks N          evaluation chunks per run (0 = all; default: the pane's)\n"
            "  --backend B         auto, cpu or cuda (default auto)\n"
            "  --ascii             ASCII borders and sparklines even on UTF-8 terminals\n"
            "  -h, --help          this help\n\n"
            "Keys: ? shows every key. NO_COLOR is honoured. Without a terminal, use the CLI\n"
            "commands (quantbench --help).\n");
}

/* "quantbench: MSG" and the help pointer on stderr; returns 2 (usage). */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("quantbench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\ntry 'quantbench MODEL --help' (dashboard) or 'quantbench --help'\n", stderr);
    return 2;
}

static int parse_args(struct qb_dash *d, const char *model, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"theme", required_argument, NULL, 't'}, {"models-dir", required_argument, NULL, 'm'},
        {"data", required_argument, NULL, 'x'},  {"backend", required_argument, NULL, 'b'},
        {"ctx", required_argument, NULL, 'c'},   {"ascii", no_argument, NULL, 'a'},
        {"chunks", required_argument, NULL, 'k'}, {"calib", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    struct dash_opts *o = &d->opt;
    snprintf(o->backend, sizeof o->backend, "auto");
    o->chunks = -1;
    if (model)
        snprintf(o->model_arg, sizeof o->model_arg, "%s", model);
    optind = 1;
    opterr = 0;
    int c;
    long v;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 't': snprintf(o->theme, sizeof o->theme, "%s", optarg); break;
        case 'm': snprintf(o->models_dir, sizeof o->models_dir, "%s", optarg); break;
        case 'x': snprintf(o->text_path, sizeof o->text_path, "%s", optarg); break;
        case 'a': o->ascii = 1; break;
        case 'C': snprintf(o->calib_path, sizeof o->calib_path, "%s", optarg); break;
        case 'b':
            if (strcmp(optarg, "auto") && strcmp(optarg, "cpu") && strcmp(optarg, "cuda"))
                return usage_error("--backend must be auto, cpu or cuda");
            snprintf(o->backend, sizeof o->backend, "%s", optarg);
            break;
        case 'c':
            if (qb_cli_parse_int(optarg, 8, 1 << 20, &v))
                return usage_error("--ctx must be a number >= 8");
            o->ctx = (int)v;
            break;
        case 'k':
            if (qb_cli_parse_int(optarg, 0, 1 << 20, &v))
                return usage_error("--chunks must be a number (0 = all)");
            o->chunks = (int)v;
            break;
        case 'h': usage(stdout); return 0;
        case ':': return usage_error("%s needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc && !o->model_arg[0])
        snprintf(o->model_arg, sizeof o->model_arg, "%s", argv[optind++]);
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    return -1;
}

static const char *no_terminal_reason(void)
{
    const char *term = getenv("TERM");
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return "stdin/stdout is not a terminal";
    if (!term || !term[0])
        return "TERM is not set";
    if (strcmp(term, "dumb") == 0)
        return "TERM=dumb cannot draw a full-screen interface";
    return NULL;
}

static void print_cli_pointer(const char *why)
{
    fprintf(stderr,
            "quantbench: the dashboard needs a terminal (%s)\n"
            "use the CLI commands instead, for example:\n"
            "  quantbench eval MODEL --data FILE        perplexity\n"
            "  quantbench compare MODEL --data FILE --schemes int8,int4\n"
            "  quantbench gpu | doctor | search | pull | list\n"
            "see quantbench --help\n",
            why);
}

/* mkdir -p dir; failures are ignored (the log then goes to /dev/null). */
static void mkdir_parents(char *dir)
{
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(dir, 0755);
        *p = '/';
    }
    mkdir(dir, 0755);
}

/* Send stderr to the dashboard log while curses owns the screen. */
static int redirect_stderr(void)
{
    int saved = dup(STDERR_FILENO);
    char path[4096];
    int fd = -1;
    if (qb_results_default_path(path, sizeof path, NULL) == QB_OK) {
        char *slash = strrchr(path, '/');
        if (slash && (size_t)(slash - path) + 16 < sizeof path) {
            *slash = '\0';
            mkdir_parents(path);
            snprintf(slash, sizeof path - (size_t)(slash - path), "/dashboard.log");
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        }
    }
    if (fd < 0)
        fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    return saved;
}

static void restore_stderr(int saved)
{
    if (saved >= 0) {
        dup2(saved, STDERR_FILENO);
        close(saved);
    }
}

static int start_curses(struct qb_dash *d)
{
    const char *cs = nl_langinfo(CODESET);
    d->utf8 = !d->opt.ascii && cs && strcmp(cs, "UTF-8") == 0;
    setenv("ESCDELAY", "25", 0);
    d->screen = newterm(NULL, stdout, stdin);
    if (!d->screen) {
        print_cli_pointer("unknown TERM type");
        return -1;
    }
    set_term(d->screen);
    char cup[] = "cup";
    if (!tigetstr(cup) || tigetstr(cup) == (char *)-1) {
        endwin();
        delscreen(d->screen);
        d->screen = NULL;
        print_cli_pointer("the terminal cannot move the cursor");
        return -1;
    }
    set_escdelay(25);
    cbreak();
    noecho();
    nonl();
    intrflush(stdscr, FALSE);
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    curs_set(0);
    mousemask(BUTTON1_CLICKED, NULL);
    mouseinterval(0);
    dash_apply_theme(d);
    return 0;
}

static void stop_curses(struct qb_dash *d)
{
    if (!d->screen)
        return;
    if (!isendwin())
        endwin();
    delscreen(d->screen);
    d->screen = NULL;
}

static void load_theme(struct qb_dash *d)
{
    char name[256] = "default";
    struct qb_err err = {0};
    if (d->opt.theme[0])
        snprintf(name, sizeof name, "%s", d->opt.theme);
    else
        qb_tui_config_get("theme", name, sizeof name);
    if (qb_theme_load(name, &d->theme, NULL, 0, &err)) {
        qb_theme_builtin(&d->theme);
        dash_status(d, QB_TH_WARN, "%s; using the built-in theme", err.msg);
    }
}

static void drain_fd(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

static void handle_signals(struct qb_dash *d, int *sigint_seen)
{
    if (g_sigterm)
        d->quit = 1;
    while (*sigint_seen < g_sigint_count) {
        (*sigint_seen)++;
        if (dash_job_running(d) && !d->cancel_requested) {
            dash_cancel_job(d);
            dash_status(d, QB_TH_WARN, "interrupt: cancelling the job (Ctrl-C again quits)");
        } else {
            d->quit = 1;
        }
    }
}

static void event_loop(struct qb_dash *d, int wake_rd)
{
    int sigint_seen = 0;
    double last_draw = 0;
    int dirty = 1;
    while (!d->quit) {
        handle_signals(d, &sigint_seen);
        if (d->quit)
            break;
        dirty |= dash_bridge_poll(d);
        double now = qb_now_seconds();
        if (dirty || now - last_draw >= 0.1) {
            dash_gpu_sample(d);
            dash_draw(d);
            last_draw = now;
            dirty = 0;
        }
        struct pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_rd, POLLIN, 0}};
        int n = poll(fds, 2, 100);
        if (n > 0 && (fds[1].revents & POLLIN))
            drain_fd(wake_rd);
        if (n > 0 && (fds[0].revents & (POLLHUP | POLLERR)) && !(fds[0].revents & POLLIN))
            d->quit = 1; /* the terminal went away */
        int ch;
        while ((ch = wgetch(stdscr)) != ERR) {
            dash_handle_key(d, ch);
            dirty = 1;
            if (d->quit)
                break;
        }
    }
}

static int make_pipe(int fds[2])
{
    if (pipe(fds) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

static void dash_free(struct qb_dash *d)
{
    dash_models_free(d);
    qb_results_clear(&d->session);
    qb_results_clear(&d->history);
    qb_results_clear(&d->view);
    free(d);
}

int qb_dashboard_main(const char *model, int argc, char **argv)
{
    int rc = 1, pipefd[2] = {-1, -1}, saved_stderr = -1;
    struct qb_err err = {0};
    struct qb_dash *d = calloc(1, sizeof *d);
    if (!d) {
        fprintf(stderr, "quantbench: out of memory\n");
        return 1;
    }
    d->zoom = -1;
    d->model_active = -1;
    int prc = parse_args(d, model, argc, argv);
    if (prc >= 0) {
        rc = prc;
        goto out;
    }
    setlocale(LC_ALL, "");
    const char *why = no_terminal_reason();
    if (why) {
        print_cli_pointer(why);
        goto out;
    }
    if (make_pipe(pipefd)) {
        fprintf(stderr, "quantbench: cannot create a pipe: %s\n", strerror(errno));
        goto out;
    }
    load_theme(d);
    dash_models_scan(d);
    dash_schemes_init(d);
    dash_results_reload(d);
    if (dash_bridge_start(d, pipefd[1], &err)) {
        qb_err_print(&err);
        goto out;
    }
    g_wake_fd = pipefd[1];
    install_signals();
    atexit(restore_terminal_at_exit);
    if (start_curses(d) == 0) {
        saved_stderr = redirect_stderr();
        event_loop(d, pipefd[0]);
        rc = 0;
    }
    stop_curses(d);
out:
    restore_signals();
    g_wake_fd = -1;
    restore_stderr(saved_stderr);
    dash_bridge_stop(d);
    for (int i = 0; i < 2; i++) {
        if (pipefd[i] >= 0)
            close(pipefd[i]);
    }
    dash_free(d);
    return rc;
}
