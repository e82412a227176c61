/*
 * qb_test_util.h - helpers shared by the criterion suites: temporary
 * directories, copies of the demo model with one file broken, running the
 * quantbench binary with captured stdout/stderr and exit code, the relative
 * error the numeric suites compare against their tolerances, and deterministic
 * random data.
 */
#ifndef QB_TEST_UTIL_H
#define QB_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define QB_DEMO_MODEL QB_TEST_DATA "/ref-llama-10m"
#define QB_EVAL_TEXT QB_TEST_DATA "/eval-gutenberg.txt"
#define QB_CALIB_TEXT QB_TEST_DATA "/calib-gutenberg.txt"
#define QB_REFERENCE_JSON QB_TEST_DATA "/ref-llama-10m.reference.json"

/* The GPU suites (criterion, core/engine.h included): skip without a GPU, and
 * assert a call returned QB_OK, reporting the struct qb_err named err in scope. */
#define QBT_REQUIRE_GPU()                                                                     \
    do {                                                                                      \
        if (!qb_cuda_available())                                                             \
            cr_skip_test("no CUDA GPU on this machine");                                      \
    } while (0)
#define QBT_OK(expr)                                                                          \
    do {                                                                                      \
        enum qb_status s_ = (expr);                                                           \
        cr_assert_eq(s_, QB_OK, "%s: %s", #expr, err.msg);                                    \
    } while (0)

/* mkdtemp under $TMPDIR; returns a malloced path. */
char *qbt_tempdir(void);
/* rm -rf path (best effort). */
void qbt_rmtree(const char *path);
/* New temp dir holding symlinks to every file of the demo model; malloced path. */
char *qbt_demo_copy(void);
/* Replace dir/name with a regular file holding data (len bytes). */
void qbt_write_file(const char *dir, const char *name, const void *data, size_t len);
/* Read a whole file (NUL-terminated, malloced); NULL on failure. */
char *qbt_read_file(const char *path, size_t *len);

struct qbt_run {
    int exit_code;     /* -1 when killed by a signal */
    char *out;         /* stdout, NUL-terminated, malloced */
    char *err;         /* stderr */
};

/* Run argv (argv[0] is the program path) with stdin from the file `stdin_path` (or
 * /dev/null when NULL); waits up to timeout_s seconds. */
void qbt_run(const char *const *argv, const char *stdin_path, double timeout_s,
             struct qbt_run *out);
void qbt_run_free(struct qbt_run *r);
/* Number of newline-terminated lines in s. */
int qbt_count_lines(const char *s);
/* 1 if QB_PYTHON can import every module in the comma-separated list. */
int qbt_python_has(const char *modules);

/* ||got - ref|| / ||ref|| over n values, in double (||ref|| = 0 counts as 1);
 * INFINITY when got holds a NaN or an infinity, so a poisoned output never
 * passes a tolerance. */
double qbt_rel_l2(const float *got, const float *ref, size_t n);

/* Deterministic random numbers from the 64-bit LCG state *s: uniform in [0, 1) and
 * standard normal (Box-Muller). */
double qbt_urand(uint64_t *s);
double qbt_nrand(uint64_t *s);
/* Correlated inputs x[n][d] = z M (malloced, NULL on OOM): z normal with every 17th
 * channel 8x stronger, M = I + N(0, 1/d), so X^T X is far from diagonal. */
float *qbt_correlated_inputs(int64_t n, int64_t d, uint64_t seed);

#endif /* QB_TEST_UTIL_H */
