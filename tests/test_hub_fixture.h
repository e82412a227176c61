/*
 * test_hub_fixture.h - what the hub suites share: start tests/hub_server.py
 * (with QB_PYTHON) on ephemeral loopback ports in a fresh temporary folder,
 * read its request log, open a client pointed at it, run the quantbench
 * binary (QB_BINARY) with a controlled environment, and clean up.
 * Included by tests/test_hub_*.c only (static functions, one server per test).
 */
#ifndef QB_TEST_HUB_FIXTURE_H
#define QB_TEST_HUB_FIXTURE_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hub/hub.h"

struct hub_srv {
    pid_t pid;
    int hub_port, cdn_port;
    char dir[128];     /* temporary folder, removed in hub_srv_stop */
    char log[192];     /* the server's JSON-lines request log */
    char endpoint[64]; /* http://127.0.0.1:PORT */
    char cache[192];   /* dir/hub: HF_HUB_CACHE for the API client and the CLI */
};

static struct hub_srv srv;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void hub_rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void hub_srv_start(void)
{
    int fds[2];
    memset(&srv, 0, sizeof srv);
    snprintf(srv.dir, sizeof srv.dir, "/tmp/qbhubtest.XXXXXX");
    cr_assert_not_null(mkdtemp(srv.dir));
    snprintf(srv.log, sizeof srv.log, "%s/requests.jsonl", srv.dir);
    snprintf(srv.cache, sizeof srv.cache, "%s/hub", srv.dir);
    cr_assert_eq(pipe(fds), 0);
    srv.pid = fork();
    cr_assert_geq(srv.pid, 0);
    if (srv.pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(QB_PYTHON, QB_PYTHON, QB_SOURCE_DIR "/tests/hub_server.py", "--data", QB_TEST_DATA,
              "--log", srv.log, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[128] = {0};
    size_t got = 0;
    struct pollfd pfd = {fds[0], POLLIN, 0};
    while (got < sizeof line - 1 && !strchr(line, '\n') && poll(&pfd, 1, 20000) > 0) {
        ssize_t n = read(fds[0], line + got, sizeof line - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fds[0]);
    cr_assert_eq(sscanf(line, "READY hub=%d cdn=%d", &srv.hub_port, &srv.cdn_port), 2,
                 "hub_server.py did not start: '%s'", line);
    snprintf(srv.endpoint, sizeof srv.endpoint, "http://127.0.0.1:%d", srv.hub_port);
}

static void hub_srv_stop(void)
{
    if (srv.pid > 0) {
        kill(srv.pid, SIGTERM);
        waitpid(srv.pid, NULL, 0);
        srv.pid = 0;
    }
    if (srv.dir[0])
        hub_rm_rf(srv.dir);
}

/* Options for a client aimed at the loopback server, quick retries. */
static void hub_test_opts(struct qb_hub_opts *o)
{
    memset(o, 0, sizeof *o);
    o->endpoint = srv.endpoint;
    o->datasets_endpoint = srv.endpoint;
    o->hub_cache = srv.cache;
    static char data[192];
    snprintf(data, sizeof data, "%s/datasets", srv.dir);
    o->data_cache = data;
    o->connect_timeout_s = 5;
    o->api_timeout_s = 10;
    o->stall_timeout_s = 3;
    o->max_retries = 3;
    o->backoff_s = 0.02;
    o->retry_after_cap_s = 5;
    o->parallel = 4;
    o->max_pages = 20;
}

__attribute__((unused)) static struct qb_hub *hub_test_open(const char *token, int offline)
{
    struct qb_hub_opts o;
    struct qb_hub *hub = NULL;
    struct qb_err err;
    hub_test_opts(&o);
    o.token = (char *)token;
    o.offline = offline;
    cr_assert_eq(qb_hub_open(&o, &hub, &err), QB_OK, "%s", err.msg);
    return hub;
}

/* Lines of the request log containing every one of the NULL-terminated needles. */
__attribute__((unused)) static int hub_log_count(const char *first, ...)
{
    FILE *f = fopen(srv.log, "r");
    char line[4096];
    int n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        va_list ap;
        va_start(ap, first);
        int all = 1;
        for (const char *s = first; s; s = va_arg(ap, const char *))
            all &= strstr(line, s) != NULL;
        va_end(ap);
        n += all;
    }
    fclose(f);
    return n;
}

static char *hub_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

struct cli_result {
    int rc;
    char *out, *err;
};

__attribute__((unused)) static void cli_result_free(struct cli_result *r)
{
    free(r->out);
    free(r->err);
}

/* Run QB_BINARY argv[] with HF_* aimed at the server, then env[] ("K=V" sets,
 * "K" alone unsets); NULL-terminated arrays. */
__attribute__((unused)) static struct cli_result hub_run_cli(const char *const *env,
                                                             const char *const *argv)
{
    struct cli_result r = {0};
    char out[256], err[256];
    snprintf(out, sizeof out, "%s/cli.out", srv.dir);
    snprintf(err, sizeof err, "%s/cli.err", srv.dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char buf[256];
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fo, 1);
        dup2(fe, 2);
        setenv("HF_ENDPOINT", srv.endpoint, 1);
        setenv("HF_DATASETS_SERVER", srv.endpoint, 1);
        setenv("HF_HUB_CACHE", srv.cache, 1);
        snprintf(buf, sizeof buf, "%s/hfhome", srv.dir);
        setenv("HF_HOME", buf, 1);
        snprintf(buf, sizeof buf, "%s/xdg", srv.dir);
        setenv("XDG_CACHE_HOME", buf, 1);
        setenv("QUANTBENCH_HUB_BACKOFF_S", "0.02", 1);
        unsetenv("HF_TOKEN");
        unsetenv("HUGGING_FACE_HUB_TOKEN");
        unsetenv("HF_TOKEN_PATH");
        unsetenv("HF_HUB_OFFLINE");
        unsetenv("TRANSFORMERS_OFFLINE");
        unsetenv("HUGGINGFACE_HUB_CACHE");
        for (const char *const *e = env; e && *e; e++) {
            const char *eq = strchr(*e, '=');
            if (!eq) {
                unsetenv(*e);
                continue;
            }
            snprintf(buf, sizeof buf, "%.*s", (int)(eq - *e), *e);
            setenv(buf, eq + 1, 1);
        }
        char *args[32];
        int n = 0;
        args[n++] = (char *)QB_BINARY;
        for (const char *const *a = argv; *a && n < 31; a++)
            args[n++] = (char *)*a;
        args[n] = NULL;
        execv(QB_BINARY, args);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    r.out = hub_slurp(out);
    r.err = hub_slurp(err);
    return r;
}

static int hub_path_exists(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static int hub_path_exists(const char *fmt, ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    struct stat st;
    return lstat(path, &st) == 0;
}

/* mkdir -p */
__attribute__((unused)) static void hub_mkdir_p(const char *path)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    cr_assert_eq(system(cmd), 0);
}

#endif /* QB_TEST_HUB_FIXTURE_H */
