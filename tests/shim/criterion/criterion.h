/*
 * tests/shim/criterion/criterion.h - a minimal in-process stand-in for the
 * criterion API, used only when the test suites run under qemu-user (the
 * arm64 cross build). Criterion proper re-executes /proc/self/exe to isolate
 * each test, which under qemu-user is the emulator itself; this shim runs the
 * tests one after another in one process instead.
 *
 * It implements the subset our suites use: Test() with designated extras
 * (.timeout, .disabled, .description are accepted), cr_assert*, cr_expect*,
 * cr_skip_test, cr_log_*. A failing assertion longjmps out of the test. It
 * prints one line per test and the closing "N passed, N failed, N skipped".
 * The first test that crashes ends the run (ctest reports it as failed).
 */
#ifndef QB_CRITERION_SHIM_H
#define QB_CRITERION_SHIM_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qbs_extra {
    int reserved; /* lets Test() start the initializer with 0 when no extras are given */
    double timeout;
    int disabled;
    const char *description;
    int signal;
    int exit_code;
};

struct qbs_test {
    const char *suite, *name;
    void (*fn)(void);
    struct qbs_extra extra;
};

#define QBS_MAX_TESTS 1024
static struct qbs_test qbs_tests[QBS_MAX_TESTS];
static int qbs_n_tests;
static jmp_buf qbs_jmp;
static int qbs_failed_expect;

static void qbs_register(const char *suite, const char *name, void (*fn)(void),
                         struct qbs_extra extra)
{
    if (qbs_n_tests < QBS_MAX_TESTS)
        qbs_tests[qbs_n_tests++] = (struct qbs_test){suite, name, fn, extra};
}

#define Test(suite, name, ...)                                                                 \
    static void qbs_fn_##suite##_##name(void);                                                 \
    __attribute__((constructor)) static void qbs_reg_##suite##_##name(void)                   \
    {                                                                                          \
        struct qbs_extra ex = {0, __VA_ARGS__};                                                \
        qbs_register(#suite, #name, qbs_fn_##suite##_##name, ex);                              \
    }                                                                                          \
    static void qbs_fn_##suite##_##name(void)

__attribute__((format(printf, 4, 5))) static void qbs_report(const char *file, int line,
                                                             const char *expr, const char *fmt,
                                                             ...)
{
    fprintf(stderr, "[----] %s:%d: Assertion Failed: %s\n", file, line, expr);
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "[----]   ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
}

#define QBS_ASSERT(fatal, cond, expr, ...)                                                     \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            qbs_report(__FILE__, __LINE__, expr, "" __VA_ARGS__);                              \
            if (fatal)                                                                         \
                longjmp(qbs_jmp, 1);                                                           \
            qbs_failed_expect = 1;                                                             \
        }                                                                                      \
    } while (0)

#define cr_assert(c, ...) QBS_ASSERT(1, (c), #c, __VA_ARGS__)
#define cr_assert_not(c, ...) QBS_ASSERT(1, !(c), "!(" #c ")", __VA_ARGS__)
#define cr_assert_fail(...) QBS_ASSERT(1, 0, "fail", __VA_ARGS__)
#define cr_assert_eq(a, b, ...) QBS_ASSERT(1, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) QBS_ASSERT(1, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) QBS_ASSERT(1, (a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) QBS_ASSERT(1, (a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) QBS_ASSERT(1, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) QBS_ASSERT(1, (a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_null(p, ...) QBS_ASSERT(1, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) QBS_ASSERT(1, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_float_eq(a, b, eps, ...)                                                     \
    QBS_ASSERT(1, fabs((double)(a) - (double)(b)) <= (double)(eps), #a " ~= " #b, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) QBS_ASSERT(1, strcmp((a), (b)) == 0, #a " == " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...)                                                           \
    QBS_ASSERT(1, strcmp((a), (b)) != 0, #a " != " #b, __VA_ARGS__)
#define cr_expect(c, ...) QBS_ASSERT(0, (c), #c, __VA_ARGS__)
#define cr_expect_eq(a, b, ...) QBS_ASSERT(0, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...) QBS_ASSERT(0, (a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...) QBS_ASSERT(0, (a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_skip_test(...)                                                                      \
    do {                                                                                       \
        fprintf(stderr, "[SKIP] " __VA_ARGS__);                                                \
        fprintf(stderr, "\n");                                                                 \
        longjmp(qbs_jmp, 2);                                                                   \
    } while (0)
#define cr_log_info(...) (fprintf(stderr, "[INFO] " __VA_ARGS__), fputc('\n', stderr))
#define cr_log_warn(...) (fprintf(stderr, "[WARN] " __VA_ARGS__), fputc('\n', stderr))
#define cr_log_error(...) (fprintf(stderr, "[ERR ] " __VA_ARGS__), fputc('\n', stderr))

/* 0 passed, 1 failed, 2 skipped. */
static int qbs_run_one(const struct qbs_test *t)
{
    qbs_failed_expect = 0;
    int rc = setjmp(qbs_jmp);
    if (rc == 0) {
        t->fn();
        rc = qbs_failed_expect;
    }
    return rc;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < qbs_n_tests; i++) {
        const struct qbs_test *t = &qbs_tests[i];
        int rc = t->extra.disabled ? 2 : qbs_run_one(t);
        const char *verdict = rc == 0 ? "PASS" : rc == 2 ? "SKIP" : "FAIL";
        fprintf(stderr, "[%s] %s::%s\n", verdict, t->suite, t->name);
        counts[rc]++;
    }
    printf("%d passed, %d failed, %d skipped\n", counts[0], counts[1], counts[2]);
    return counts[1] ? 1 : 0;
}

#endif /* QB_CRITERION_SHIM_H */
