/*
 * test_doctor.c - `quantbench doctor` on the CPU paths: the report (every scheme
 * self-tested, perplexity and speed measured), a saved baseline, and the
 * regression rules (perplexity drift, NaN, failed self-test, speed drop).
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "doctor.h"
#include "qb_test_util.h"

Test(doctor, cpu_report_baseline_and_regressions, .timeout = 900)
{
    char *dir = qbt_tempdir();
    char path[512];
    snprintf(path, sizeof path, "%s/base.json", dir);
    const char *argv[] = {QB_BINARY, "doctor", "--backend", "cpu", "--chunks", "1",
                          "--save-baseline", path, "--json", NULL};
    struct qbt_run r;
    qbt_run(argv, NULL, 900, &r);
    cr_assert_eq(r.exit_code, 0, "doctor failed: %s", r.err);
    cJSON *doc = cJSON_Parse(r.out);
    cr_assert_not_null(doc, "stdout is not one JSON document");
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "backend")->valuestring, "cpu");
    cJSON *schemes = cJSON_GetObjectItem(doc, "schemes");
    cr_assert_geq(cJSON_GetArraySize(schemes), 14);
    cJSON *s;
    cJSON_ArrayForEach(s, schemes)
    {
        const char *name = cJSON_GetObjectItem(s, "scheme")->valuestring;
        cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(s, "selftest_ok")), "%s self-test", name);
        cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(s, "ppl")), "%s has no ppl", name);
        cr_assert_gt(cJSON_GetObjectItem(s, "tg_tok_s")->valuedouble, 0, "%s tg", name);
    }
    cJSON_Delete(doc);
    qbt_run_free(&r);

    /* the saved baseline reads back; the same report shows no regression */
    size_t len = 0;
    char *json = qbt_read_file(path, &len);
    cr_assert_not_null(json);
    static struct qb_doctor_report base, now;
    struct qb_err err = {0};
    cr_assert_eq(qb_doctor_from_json(json, len, path, &base, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(qb_doctor_from_json(json, len, path, &now, &err), QB_OK);
    for (int i = 0; i < now.n_schemes; i++)
        now.schemes[i].selftest_ok = 1;
    char lines[8][160];
    cr_assert_eq(qb_doctor_compare(&now, &base, lines, 8), 0);
    /* perplexity drift, a NaN, a slower decode: each named */
    now.schemes[2].ppl *= 1.01;
    now.schemes[3].ppl = NAN;
    now.schemes[4].tg_tok_s = base.schemes[4].tg_tok_s * 0.5;
    int n = qb_doctor_compare(&now, &base, lines, 8);
    cr_assert_eq(n, 3, "%d regressions", n);
    cr_assert(strstr(lines[0], now.schemes[2].scheme) && strstr(lines[0], "perplexity"), "%s",
              lines[0]);
    cr_assert(strstr(lines[1], now.schemes[3].scheme) && strstr(lines[1], "NaN"), "%s", lines[1]);
    cr_assert(strstr(lines[2], "decode"), "%s", lines[2]);
    free(json);
    cr_assert_neq(qb_doctor_from_json("{}", 2, "x.json", &base, &err), QB_OK);
    cr_assert(strstr(err.msg, "x.json") != NULL);
    qbt_rmtree(dir);
    free(dir);
}
