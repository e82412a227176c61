/*
 * test_results.c - the results history: round trip, concurrent atomic
 * appends from several processes, corrupt lines skipped, default path,
 * sort/filter, and the CSV/JSON/Markdown exports (CSV and JSON read back by
 * Python's csv and json modules as the independent peers).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "results.h"

static char tmpdir[256];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qb_results_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(results, .init = setup, .fini = teardown, .timeout = 60);

static char *path_in(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

static void sample_row(struct qb_result *r, const char *scheme, double ppl)
{
    qb_result_init(r);
    snprintf(r->kind, sizeof r->kind, "compare");
    snprintf(r->model, sizeof r->model, "tests/data/ref-llama-10m");
    snprintf(r->scheme, sizeof r->scheme, "%s", scheme);
    snprintf(r->base_dtype, sizeof r->base_dtype, "bf16");
    snprintf(r->backend, sizeof r->backend, "cpu");
    r->ppl = ppl;
    r->ppl_baseline = 10.0;
    r->delta_ppl = ppl - 10.0;
    r->bits_per_weight = 4.25;
    r->size_bytes = 123456789;
    r->pp_tps = 1000.5;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(results, round_trip_keeps_values_and_absent_fields)
{
    struct qb_result r, back;
    struct qb_err err = {0};
    sample_row(&r, "int4", 10.5);
    snprintf(r.options, sizeof r.options, "group=64 \"quoted\", comma");
    char *json = qb_result_to_json(&r);
    cr_assert_not_null(json);
    cr_assert(strstr(json, "\"kld\":null"), "%s", json);
    cr_assert(strstr(json, "\"gpu\":null"), "%s", json);
    cr_assert_eq(qb_result_from_json(json, &back, &err), QB_OK, "%s", err.msg);
    free(json);
    cr_assert_str_eq(back.scheme, "int4");
    cr_assert_str_eq(back.options, r.options);
    cr_assert_float_eq(back.ppl, 10.5, 1e-12);
    cr_assert_float_eq(back.delta_ppl, 0.5, 1e-12);
    cr_assert_eq(back.size_bytes, 123456789);
    cr_assert(isnan(back.kld));
    cr_assert(isnan(back.tg_tps));
    cr_assert_eq(back.ctx, -1);
    cr_assert_eq(back.time, r.time);
    cr_assert_eq(back.baseline, 0);
}

Test(results, append_creates_folders_and_load_reads_back)
{
    struct qb_err err = {0};
    struct qb_result r;
    const char *p = path_in("a/b/c/results.jsonl");
    for (int i = 0; i < 3; i++) {
        sample_row(&r, i == 0 ? "bf16" : "int8", 10.0 + i);
        r.baseline = i == 0;
        cr_assert_eq(qb_results_append(p, &r, &err), QB_OK, "%s", err.msg);
    }
    struct qb_results rs;
    cr_assert_eq(qb_results_load(p, &rs, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(rs.n, 3);
    cr_assert_eq(rs.skipped, 0);
    cr_assert_eq(rs.items[0].baseline, 1);
    cr_assert_float_eq(rs.items[2].ppl, 12.0, 1e-12);
    qb_results_clear(&rs);
}

Test(results, missing_file_is_empty_history)
{
    struct qb_results rs;
    struct qb_err err = {0};
    cr_assert_eq(qb_results_load(path_in("none.jsonl"), &rs, &err), QB_OK);
    cr_assert_eq(rs.n, 0);
}

Test(results, corrupt_lines_are_skipped_with_a_warning)
{
    struct qb_result r;
    sample_row(&r, "nf4", 11.0);
    char *good = qb_result_to_json(&r);
    char text[8192];
    snprintf(text, sizeof text,
             "%s\n"
             "this is not json\n"
             "{\"scheme\":\"int4\",\"ppl\":\"twelve\"}\n"
             "\n"
             "{\"ppl\":3}\n"
             "[1,2,3]\n"
             "{\"scheme\":\"int4\",\"ppl\":12.5,\"ctx\":1e300}\n"
             "%s\n"
             "{\"scheme\":\"int8\",\"ppl\":1", /* truncated last line, no newline */
             good, good);
    free(good);
    const char *p = path_in("r.jsonl");
    write_file(p, text);
    struct qb_results rs;
    struct qb_err err = {0};
    cr_assert_eq(qb_results_load(p, &rs, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(rs.n, 2);
    cr_assert_eq(rs.skipped, 6);
    cr_assert(strstr(rs.warning, "line 2"), "%s", rs.warning);
    qb_results_clear(&rs);
}

Test(results, nul_byte_line_is_skipped)
{
    const char *p = path_in("nul.jsonl");
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    static const char data[] = "{\"scheme\":\"a\"}\0xx\n{\"scheme\":\"b\"}\n";
    fwrite(data, 1, sizeof data - 1, f);
    fclose(f);
    struct qb_results rs;
    struct qb_err err = {0};
    cr_assert_eq(qb_results_load(p, &rs, &err), QB_OK);
    cr_assert_eq(rs.n, 1);
    cr_assert_str_eq(rs.items[0].scheme, "b");
    cr_assert_eq(rs.skipped, 1);
    qb_results_clear(&rs);
}

/* Eight processes append 200 long lines each at once: every line must come
 * back whole (a torn write would show up as a corrupt or merged line). */
Test(results, concurrent_appends_from_processes_are_atomic)
{
    const char *p = path_in("concurrent.jsonl");
    enum { PROCS = 8, LINES = 200 };
    pid_t pids[PROCS];
    for (int k = 0; k < PROCS; k++) {
        pids[k] = fork();
        cr_assert(pids[k] >= 0);
        if (pids[k] == 0) {
            struct qb_result r;
            struct qb_err err = {0};
            for (int i = 0; i < LINES; i++) {
                sample_row(&r, "int4", k * 1000 + i);
                memset(r.model, 'a' + k, 900); /* long line: ~1.5 KB */
                r.model[900] = '\0';
                if (qb_results_append(p, &r, &err))
                    _exit(1);
            }
            _exit(0);
        }
    }
    for (int k = 0; k < PROCS; k++) {
        int status = 0;
        waitpid(pids[k], &status, 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    struct qb_results rs;
    struct qb_err err = {0};
    cr_assert_eq(qb_results_load(p, &rs, &err), QB_OK);
    cr_assert_eq(rs.skipped, 0, "%s", rs.warning);
    cr_assert_eq(rs.n, PROCS * LINES);
    int seen[PROCS] = {0};
    for (size_t i = 0; i < rs.n; i++) {
        int k = rs.items[i].model[0] - 'a';
        cr_assert(k >= 0 && k < PROCS);
        cr_assert_eq((int)strlen(rs.items[i].model), 900);
        cr_assert_eq((int)rs.items[i].ppl, k * 1000 + seen[k], "per-process order kept");
        seen[k]++;
    }
    qb_results_clear(&rs);
}

Test(results, default_path_follows_xdg_then_home)
{
    char buf[512];
    struct qb_err err = {0};
    setenv("XDG_STATE_HOME", "/x/state", 1);
    cr_assert_eq(qb_results_default_path(buf, sizeof buf, &err), QB_OK);
    cr_assert_str_eq(buf, "/x/state/quantbench/results.jsonl");
    setenv("XDG_STATE_HOME", "relative/ignored", 1);
    setenv("HOME", "/home/u", 1);
    cr_assert_eq(qb_results_default_path(buf, sizeof buf, &err), QB_OK);
    cr_assert_str_eq(buf, "/home/u/.local/state/quantbench/results.jsonl");
    unsetenv("XDG_STATE_HOME");
    unsetenv("HOME");
    cr_assert_eq(qb_results_default_path(buf, sizeof buf, &err), QB_ERR_IO);
    cr_assert(strstr(err.msg, "HOME"));
}

Test(results, sort_puts_absent_last_and_is_stable)
{
    struct qb_results rs = {0};
    struct qb_result r;
    double ppls[] = {12, NAN, 10, 12, 11};
    const char *names[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++) {
        sample_row(&r, names[i], ppls[i]);
        cr_assert_eq(qb_results_push(&rs, &r), QB_OK);
    }
    qb_results_sort(&rs, QB_RESULTS_BY_PPL, 0);
    const char *asc = "ceadb";
    for (int i = 0; i < 5; i++)
        cr_assert_eq(rs.items[i].scheme[0], asc[i], "asc %d", i);
    qb_results_sort(&rs, QB_RESULTS_BY_PPL, 1);
    const char *desc = "adecb";
    for (int i = 0; i < 5; i++)
        cr_assert_eq(rs.items[i].scheme[0], desc[i], "desc %d", i);
    qb_results_sort(&rs, QB_RESULTS_BY_SCHEME, 0);
    cr_assert_str_eq(rs.items[0].scheme, "a");
    cr_assert_str_eq(rs.items[4].scheme, "e");
    struct qb_results_filter f = {.scheme = "c"};
    qb_results_filter(&rs, &f);
    cr_assert_eq(rs.n, 1);
    cr_assert_str_eq(rs.items[0].scheme, "c");
    qb_results_clear(&rs);
}

static struct qb_results two_rows(void)
{
    struct qb_results rs = {0};
    struct qb_result r;
    sample_row(&r, "bf16", 10.0);
    r.baseline = 1;
    cr_assert_eq(qb_results_push(&rs, &r), QB_OK);
    sample_row(&r, "int4", 10.75);
    snprintf(r.options, sizeof r.options, "a,\"b\"|c");
    r.kld = 0.0125;
    cr_assert_eq(qb_results_push(&rs, &r), QB_OK);
    return rs;
}

static int run_python(const char *script, const char *file)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' -c '%s' '%s'", QB_PYTHON, script, file);
    return system(cmd);
}

Test(results, csv_export_reads_back_in_python)
{
    struct qb_results rs = two_rows();
    struct qb_err err = {0};
    const char *p = path_in("out/export.csv");
    cr_assert_eq(qb_results_export_file(&rs, QB_EXPORT_CSV, p, &err), QB_OK, "%s", err.msg);
    const char *py =
        "import csv,sys\n"
        "rows=list(csv.DictReader(open(sys.argv[1],newline=\"\")))\n"
        "assert len(rows)==2, rows\n"
        "assert rows[0][\"scheme\"]==\"bf16\" and rows[0][\"baseline\"]==\"true\"\n"
        "assert rows[1][\"options\"]==\"a,\\\"b\\\"|c\", rows[1][\"options\"]\n"
        "assert float(rows[1][\"ppl\"])==10.75 and float(rows[1][\"kld\"])==0.0125\n"
        "assert rows[0][\"kld\"]==\"\"\n"
        "assert rows[1][\"size_bytes\"]==\"123456789\"\n";
    cr_assert_eq(run_python(py, p), 0);
    qb_results_clear(&rs);
}

Test(results, json_export_reads_back_in_python)
{
    struct qb_results rs = two_rows();
    struct qb_err err = {0};
    const char *p = path_in("export.json");
    cr_assert_eq(qb_results_export_file(&rs, QB_EXPORT_JSON, p, &err), QB_OK, "%s", err.msg);
    const char *py =
        "import json,sys\n"
        "d=json.load(open(sys.argv[1]))\n"
        "assert isinstance(d,list) and len(d)==2\n"
        "assert d[0][\"baseline\"] is True and d[0][\"kld\"] is None\n"
        "assert d[1][\"kld\"]==0.0125 and d[1][\"delta_ppl\"]==0.75\n";
    cr_assert_eq(run_python(py, p), 0);
    qb_results_clear(&rs);
}

Test(results, markdown_export_is_a_pipe_table)
{
    struct qb_results rs = two_rows();
    struct qb_err err = {0};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(qb_results_export(&rs, QB_EXPORT_MARKDOWN, f, &err), QB_OK);
    fclose(f);
    cr_assert(strncmp(buf, "| time | kind | model |", 23) == 0, "%s", buf);
    char *second = strchr(buf, '\n') + 1;
    cr_assert(strncmp(second, "|---|---|", 9) == 0);
    cr_assert(strstr(buf, "a,\"b\"\\|c"), "pipe escaped: %s", buf);
    int lines = 0;
    for (char *c = buf; *c; c++)
        lines += *c == '\n';
    cr_assert_eq(lines, 4);
    free(buf);
    enum qb_export_format fmt;
    cr_assert_eq(qb_export_format_parse("markdown", &fmt), 0);
    cr_assert_eq(fmt, QB_EXPORT_MARKDOWN);
    cr_assert_eq(qb_export_format_parse("xml", &fmt), -1);
    qb_results_clear(&rs);
}

Test(results, speedup_against_baseline)
{
    struct qb_result a;
    sample_row(&a, "int4", 11);
    a.pp_tps = 3000;
    cr_assert(isnan(qb_result_speedup(&a)), "no baseline speed: unknown");
    a.pp_tps_baseline = 1000;
    cr_assert_float_eq(qb_result_speedup(&a), 3.0, 1e-12);
    a.pp_tps = NAN;
    cr_assert(isnan(qb_result_speedup(&a)));
}

Test(results, decode_speedup_round_trips)
{
    struct qb_result a, back;
    struct qb_err err = {0};
    sample_row(&a, "int4", 11);
    a.tg_tps = 250;
    cr_assert(isnan(qb_result_tg_speedup(&a)), "no baseline decode speed: unknown");
    a.tg_tps_baseline = 100;
    cr_assert_float_eq(qb_result_tg_speedup(&a), 2.5, 1e-12);
    char *json = qb_result_to_json(&a);
    cr_assert_not_null(json);
    cr_assert(strstr(json, "\"tg_tps_baseline\":100"), "%s", json);
    cr_assert_eq(qb_result_from_json(json, &back, &err), QB_OK, "%s", err.msg);
    free(json);
    cr_assert_float_eq(back.tg_tps_baseline, 100, 1e-12);
    /* a line written before the key existed reads as "not measured" */
    cr_assert_eq(qb_result_from_json("{\"scheme\":\"int4\",\"tg_tps\":5}", &back, &err), QB_OK,
                 "%s", err.msg);
    cr_assert(isnan(back.tg_tps_baseline) && isnan(qb_result_tg_speedup(&back)));
}
