/*
 * qb_test_util.c - see qb_test_util.h.
 */
#include "qb_test_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char *qbt_tempdir(void)
{
    const char *base = getenv("TMPDIR");
    char *path = NULL;
    if (asprintf(&path, "%s/qbtest.XXXXXX", base && *base ? base : "/tmp") < 0)
        return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

void qbt_rmtree(const char *path)
{
    if (!path)
        return;
    char *cmd = NULL;
    if (asprintf(&cmd, "rm -rf '%s'", path) >= 0) {
        int rc = system(cmd);
        (void)rc;
    }
    free(cmd);
}

char *qbt_demo_copy(void)
{
    char *dir = qbt_tempdir();
    DIR *d = opendir(QB_DEMO_MODEL);
    if (!dir || !d)
        return dir;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *src = NULL, *dst = NULL;
        if (asprintf(&src, "%s/%s", QB_DEMO_MODEL, e->d_name) >= 0 &&
            asprintf(&dst, "%s/%s", dir, e->d_name) >= 0) {
            int rc = symlink(src, dst);
            (void)rc;
        }
        free(src);
        free(dst);
    }
    closedir(d);
    return dir;
}

void qbt_write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char *path = NULL;
    if (asprintf(&path, "%s/%s", dir, name) < 0)
        return;
    unlink(path);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
    free(path);
}

char *qbt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

static char *slurp_fd(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    return buf;
}

void qbt_run(const char *const *argv, const char *stdin_path, double timeout_s,
             struct qbt_run *out)
{
    memset(out, 0, sizeof *out);
    FILE *fo = tmpfile(), *fe = tmpfile();
    pid_t pid = fork();
    if (pid == 0) {
        int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
        dup2(in, 0);
        dup2(fileno(fo), 1);
        dup2(fileno(fe), 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    double waited = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (waited > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        waited += 0.02;
    }
    out->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    out->out = slurp_fd(fileno(fo));
    out->err = slurp_fd(fileno(fe));
    fclose(fo);
    fclose(fe);
}

void qbt_run_free(struct qbt_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

int qbt_count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

int qbt_python_has(const char *modules)
{
    char *cmd = NULL;
    if (asprintf(&cmd, "'%s' -c 'import %s' >/dev/null 2>&1", QB_PYTHON, modules) < 0)
        return 0;
    int rc = system(cmd);
    free(cmd);
    return rc == 0;
}

double qbt_rel_l2(const float *got, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]))
            return INFINITY;
        num += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

double qbt_urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0;
}

double qbt_nrand(uint64_t *s)
{
    double u = qbt_urand(s) + 1e-12, v = qbt_urand(s);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

float *qbt_correlated_inputs(int64_t n, int64_t d, uint64_t seed)
{
    uint64_t s = seed;
    float *x = malloc(sizeof(float) * (size_t)(n * d));
    double *mix = malloc(sizeof(double) * (size_t)(d * d)), *z = malloc(sizeof(double) * d);
    if (!x || !mix || !z) {
        free(x), free(mix), free(z);
        return NULL;
    }
    for (int64_t i = 0; i < d * d; i++)
        mix[i] = qbt_nrand(&s) / sqrt((double)d) + (i % (d + 1) == 0 ? 1.0 : 0.0);
    for (int64_t t = 0; t < n; t++) {
        for (int64_t j = 0; j < d; j++)
            z[j] = qbt_nrand(&s) * (j % 17 == 0 ? 8.0 : 1.0);
        for (int64_t j = 0; j < d; j++) {
            double v = 0;
            for (int64_t k = 0; k < d; k++)
                v += z[k] * mix[k * d + j];
            x[t * d + j] = (float)v;
        }
    }
    free(mix), free(z);
    return x;
}
