/*
 * cli_bench.c - `quantbench bench` (prefill and decode speed, llama-bench
 * style, with the decode roofline) and `quantbench synth` (a random-weight
 * checkpoint with a real model's shapes, so speed can be measured without
 * downloading the weights).
 *
 * bench: parses the options, applies the scheme (RTN over the decoder
 * linears, spread over the cores; GPTQ/AWQ filled by RTN in their format:
 * same bytes, same kernels) and prints what core/bench.c (qb_bench_run)
 * measured: pp/tg tokens/s, bytes per decode step, bandwidth and roofline.
 *
 * synth: tensors named and shaped as transformers writes a Llama/Qwen
 * checkpoint, bf16, uniform in +-0.02 sqrt(3) (the usual init std 0.02),
 * norms 1, biases 0; sharded at ~4 GB with model.safetensors.index.json;
 * config.json copied; tokenizer.json copied from the source directory or,
 * when it has none, from the demo model. Every file is written to a
 * temporary name and renamed.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "cli.h"
#include "config.h"
#include "dtype.h"
#include "engine.h"
#include "eval.h"
#include "fileutil.h"
#include "kernels/qb_cuda.h"
#include "kernels/qb_w4a4.h"
#include "model.h"
#include "threadpool.h"

#define SYNTH_SHARD_BYTES ((size_t)4000 << 20)
#define SYNTH_IO_BYTES ((size_t)8 << 20)
#define SYNTH_INIT_STD 0.02
#define DEMO_TOKENIZER QB_SOURCE_DIR "/tests/data/ref-llama-10m/tokenizer.json"

/* ---- bench ------------------------------------------------------------------- */

struct bench_args {
    const char *model;
    const char *scheme;
    long p, n, r, threads, group;
    enum qb_backend backend;
    int json;
};

struct bench_result {
    struct qb_bench_result m; /* what qb_bench_run measured */
    int speed_only_rtn;       /* a calibrated scheme's format filled by RTN */
};

static void bench_usage(void)
{
    printf("usage: quantbench bench MODEL [options]\n\n"
           "Prefill (pp) and decode (tg) tokens/s like llama-bench: each test once to warm\n"
           "up, then -r times from an empty cache; mean +- stddev. Also prints the weight\n"
           "bytes, the measured memory bandwidth and the decode roofline.\n\n"
           "  --scheme S     quantize in memory first (%s);\n"
           "                 GPTQ/AWQ schemes are filled by RTN in the same format\n"
           "                 (same bytes, same kernels: exact for speed)\n"
           "  --group N      group size for grouped schemes\n"
           "  -p N           prompt tokens for pp (default 512, 0 skips)\n"
           "  -n N           generated tokens for tg (default 128, 0 skips)\n"
           "  -r N           repetitions (default 5)\n"
           "  --backend B    auto (default), cpu or cuda\n"
           "  --threads N    CPU threads (default: all cores)\n"
           "  --json         print one JSON object on stdout\n"
           "  -h, --help     this help\n\n"
           "MODEL is a checkpoint directory; `quantbench synth` makes one with any real\n"
           "model's shapes.\n", qb_scheme_names());
}

enum { OPT_SCHEME = 256, OPT_GROUP, OPT_BACKEND, OPT_THREADS, OPT_JSON };

static const struct option bench_options[] = {
    {"scheme", required_argument, NULL, OPT_SCHEME},
    {"group", required_argument, NULL, OPT_GROUP},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int bench_number(const char *name, long min, long max, long *out)
{
    if (qb_cli_parse_int(optarg, min, max, out) != 0)
        return qb_cli_usage_error("bench", "%s needs an integer in [%ld, %ld], got '%s'", name,
                                  min, max, optarg);
    return 0;
}

/* Returns -1 when parsing may go on, else an exit code. */
static int bench_parse(int argc, char **argv, struct bench_args *a)
{
    struct qb_err err = {0};
    int c, rc = 0;
    memset(a, 0, sizeof *a);
    a->p = 512;
    a->n = 128;
    a->r = 5;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:n:r:h", bench_options, NULL)) != -1) {
        switch (c) {
        case 'p': rc = bench_number("-p", 0, QB_BENCH_MAX_TOKENS, &a->p); break;
        case 'n': rc = bench_number("-n", 0, QB_BENCH_MAX_TOKENS, &a->n); break;
        case 'r': rc = bench_number("-r", 1, 1000, &a->r); break;
        case OPT_GROUP: rc = bench_number("--group", 1, 1 << 16, &a->group); break;
        case OPT_THREADS: rc = bench_number("--threads", 0, 4096, &a->threads); break;
        case OPT_SCHEME: a->scheme = optarg; break;
        case OPT_JSON: a->json = 1; break;
        case OPT_BACKEND:
            if (qb_backend_parse(optarg, &a->backend, &err))
                return qb_cli_usage_error("bench", "%s", err.msg);
            break;
        case 'h': bench_usage(); return 0;
        default: return qb_cli_usage_error("bench", "unknown option");
        }
        if (rc)
            return rc;
    }
    if (optind != argc - 1)
        return qb_cli_usage_error("bench", "expected one MODEL directory");
    if (a->p == 0 && a->n == 0)
        return qb_cli_usage_error("bench", "-p and -n are both 0: nothing to measure");
    a->model = argv[optind];
    return -1;
}

/* One decoder linear to the scheme's format (as model.c's quantize_linear). */
static enum qb_status quantize_one(struct qb_linear *lin, const struct qb_scheme *s,
                                   const char *name, struct qb_err *err)
{
    size_t n = (size_t)lin->rows * (size_t)lin->cols;
    float *w = qb_malloc_array(n, sizeof(float));
    struct qb_linear q;
    enum qb_status st;
    if (!w)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory quantizing '%s'", name);
    qb_model_linear_to_f32(lin, w);
    st = qb_linear_quantize(w, lin->rows, lin->cols, s->fmt, &s->qp, name, &q, err);
    free(w);
    if (st)
        return st;
    q.bias = lin->bias;
    q.owned_bias = lin->owned_bias;
    lin->owned_bias = NULL;
    qb_linear_release(lin);
    *lin = q;
    return QB_OK;
}

struct quant_job {
    struct qb_model *m;
    const struct qb_scheme *s;
    enum qb_status *st;  /* [n_layers * QB_LIN_COUNT] */
    struct qb_err *errs; /* same */
};

static void quant_slice(void *ctx, int64_t begin, int64_t end)
{
    struct quant_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        int layer = (int)(i / QB_LIN_COUNT), slot = (int)(i % QB_LIN_COUNT);
        char name[96];
        snprintf(name, sizeof name, "layer %d %s", layer,
                 qb_linear_slot_name((enum qb_linear_slot)slot));
        j->st[i] = quantize_one(&j->m->layers[layer].lin[slot], j->s, name, &j->errs[i]);
    }
}

/* RTN over every decoder linear, the linears spread over the cores (each one is
 * single-threaded in the format code): the 8B shape in seconds, not minutes. */
static enum qb_status quantize_parallel(struct qb_model *m, const struct qb_scheme *s,
                                        int threads, struct qb_err *err)
{
    int64_t n = (int64_t)m->cfg.n_layers * QB_LIN_COUNT;
    struct quant_job j = {m, s, qb_calloc_array((size_t)n, sizeof *j.st),
                          qb_calloc_array((size_t)n, sizeof *j.errs)};
    struct qb_pool *pool = qb_pool_create(threads);
    enum qb_status st = QB_OK;
    if (!j.st || !j.errs || !pool) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory for the quantization jobs");
        goto out;
    }
    qb_pool_for(pool, n, 1, quant_slice, &j);
    for (int64_t i = 0; i < n && !st; i++)
        if (j.st[i]) {
            st = j.st[i];
            *err = j.errs[i];
        }
    if (!st)
        m->scheme = *s;
out:
    qb_pool_free(pool);
    free(j.st);
    free(j.errs);
    return st;
}

static enum qb_status apply_bench_scheme(struct qb_model *m, const struct bench_args *a,
                                         struct bench_result *res, struct qb_err *err)
{
    struct qb_scheme s;
    enum qb_status st;
    if (!a->scheme)
        return QB_OK;
    st = qb_scheme_parse(a->scheme, (int)a->group, &s, err);
    if (st)
        return st;
    if (qb_backend_resolve(a->backend) == QB_BACKEND_CUDA && !qb_cuda_supports(s.fmt, s.qp.act)) {
        struct qb_cuda_device dev;
        struct qb_err ignored;
        int cc = qb_cuda_device_query(&dev, &ignored) ? 0 : dev.cc_major;
        const char *fp4 = qb_w4a4_status_note(s.qp.act, cc); /* W4A4: "compiled, not executed" */
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "scheme %s: no GPU kernels for %s%s on this GPU%s%s%s; use --backend "
                          "cpu", s.name, qb_wfmt_get(s.fmt)->name,
                          s.qp.act != QB_ACT_F32 ? " with quantized activations" : "",
                          fp4 ? " (" : "", fp4 ? fp4 : "", fp4 ? ")" : "");
    }
    if (s.needs_calibration) { /* same format and bytes; the values do not matter for speed */
        s.method = QB_METHOD_RTN;
        s.needs_calibration = 0;
        res->speed_only_rtn = 1;
        fprintf(stderr, "quantbench bench: %s filled by RTN in its format (speed only)\n",
                s.name);
    }
    if (s.method == QB_METHOD_NONE) /* a cast (or nothing) */
        return qb_model_apply_scheme(m, &s, NULL, err);
    fprintf(stderr, "quantbench bench: quantizing to %s\n", s.name);
    return quantize_parallel(m, &s, (int)a->threads, err);
}

static enum qb_status bench_run(const struct bench_args *a, struct qb_model *m,
                                struct bench_result *res, struct qb_err *err)
{
    struct qb_bench_opts o = {.p = (int)a->p, .n = (int)a->n, .r = (int)a->r,
                              .threads = (int)a->threads, .backend = a->backend};
    return qb_bench_run(m, &o, NULL, &res->m, err);
}

static void bench_print_text(const struct bench_args *a, const char *scheme,
                             enum qb_backend be, const struct bench_result *r)
{
    printf("model: %s  scheme: %s%s  backend: %s\n", a->model, scheme,
           r->speed_only_rtn ? " (RTN-filled, speed only)" : "", qb_backend_name(be));
    printf("device: %s\n", r->m.device);
    printf("weights: %.2f GB; a decode step reads %.2f GB of weights + %.4f GB of KV\n",
           r->m.weight_bytes / 1e9, r->m.decode_weight_bytes / 1e9, r->m.kv_bytes / 1e9);
    printf("\n| %-8s | %20s |\n|----------|----------------------|\n", "test", "t/s");
    if (a->p > 0)
        printf("| pp%-6ld | %11.2f ± %6.2f |\n", a->p, r->m.pp.mean, r->m.pp.stddev);
    if (a->n > 0)
        printf("| tg%-6ld | %11.2f ± %6.2f |\n", a->n, r->m.tg.mean, r->m.tg.stddev);
    printf("\nbandwidth (measured copy, read+write): %.0f GB/s\n", r->m.bandwidth_gbs);
    if (a->n > 0)
        printf("decode roofline: %.1f t/s; tg reached %.1f %% of it\n", r->m.roofline_tps,
               100 * r->m.roofline_frac);
    if (be == QB_BACKEND_CUDA)
        printf("GPU memory in use after the run: %.2f GiB\n", r->m.gpu_used_bytes / 1073741824.0);
}

static int bench_print_json(const struct bench_args *a, const char *scheme, enum qb_backend be,
                            const struct bench_result *r)
{
    cJSON *o = cJSON_CreateObject();
    char *s;
    cJSON_AddStringToObject(o, "model", a->model);
    cJSON_AddStringToObject(o, "scheme", scheme);
    cJSON_AddBoolToObject(o, "rtn_filled_speed_only", r->speed_only_rtn);
    cJSON_AddStringToObject(o, "backend", qb_backend_name(be));
    cJSON_AddStringToObject(o, "device", r->m.device);
    cJSON_AddNumberToObject(o, "n_prompt", (double)a->p);
    cJSON_AddNumberToObject(o, "n_gen", (double)a->n);
    cJSON_AddNumberToObject(o, "repetitions", (double)a->r);
    cJSON_AddNumberToObject(o, "pp_tps_mean", r->m.pp.mean);
    cJSON_AddNumberToObject(o, "pp_tps_stddev", r->m.pp.stddev);
    cJSON_AddNumberToObject(o, "tg_tps_mean", r->m.tg.mean);
    cJSON_AddNumberToObject(o, "tg_tps_stddev", r->m.tg.stddev);
    cJSON_AddNumberToObject(o, "weight_bytes", (double)r->m.weight_bytes);
    cJSON_AddNumberToObject(o, "decode_weight_bytes_per_token", r->m.decode_weight_bytes);
    cJSON_AddNumberToObject(o, "decode_kv_bytes_per_token", r->m.kv_bytes);
    cJSON_AddNumberToObject(o, "bandwidth_gbs", r->m.bandwidth_gbs);
    cJSON_AddNumberToObject(o, "roofline_tps", r->m.roofline_tps);
    cJSON_AddNumberToObject(o, "roofline_fraction", r->m.roofline_frac);
    cJSON_AddNumberToObject(o, "gpu_mem_used_bytes", (double)r->m.gpu_used_bytes);
    s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s)
        return 1;
    puts(s);
    free(s);
    return 0;
}

int qb_cmd_bench(int argc, char **argv)
{
    struct bench_args a;
    struct bench_result res;
    struct qb_err err = {0};
    struct qb_model *m = NULL;
    struct qb_model_load_opts lo = {.no_tokenizer = 1};
    enum qb_status st;
    int rc = bench_parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    memset(&res, 0, sizeof res);
    st = qb_model_load(a.model, &lo, &m, &err);
    if (!st)
        st = apply_bench_scheme(m, &a, &res, &err);
    if (!st)
        st = bench_run(&a, m, &res, &err);
    if (!st) {
        enum qb_backend be = qb_backend_resolve(a.backend);
        const char *scheme = m->scheme.name[0] ? m->scheme.name : qb_dtype_name(m->base_dtype);
        if (a.json)
            rc = bench_print_json(&a, scheme, be, &res);
        else
            bench_print_text(&a, scheme, be, &res);
    }
    qb_model_free(m);
    if (st) {
        qb_err_print(&err);
        return qb_status_exit_code(st);
    }
    return rc;
}

/* ---- synth ------------------------------------------------------------------- */

struct synth_tensor {
    char name[96];
    int64_t shape[2];
    int n_dims;
    enum { FILL_RANDOM, FILL_ONES, FILL_ZEROS } fill;
    int shard;
    size_t begin;              /* offset within its shard's data section */
};

struct synth_plan {
    struct synth_tensor *t;
    int n, cap, n_shards;
    size_t total_bytes;
};

static void synth_usage(void)
{
    printf("usage: quantbench synth --like CONFIG_JSON|DIR --out DIR [options]\n\n"
           "Write a random-weight bf16 checkpoint with the shapes of a real model, for\n"
           "`quantbench bench` (random weights are exact for speed, useless for quality).\n"
           "Sharded at ~4 GB with model.safetensors.index.json; config.json is copied;\n"
           "tokenizer.json comes from the source directory or, without one, from the demo\n"
           "model. bench/llama-3.1-8b/config.json has the Llama-3.1-8B shape.\n\n"
           "  --like P    a config.json, or a checkpoint directory holding one\n"
           "  --out DIR   output directory (created if missing)\n"
           "  --seed N    random seed (default 1)\n"
           "  --tokenizer FILE  the tokenizer.json to copy\n"
           "  -h, --help  this help\n");
}

static enum qb_status plan_add(struct synth_plan *p, const char *name, int64_t d0, int64_t d1,
                               int fill, struct qb_err *err)
{
    struct synth_tensor *t;
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        t = qb_realloc_array(p->t, (size_t)cap, sizeof *t);
        if (!t)
            return qb_err_set(err, QB_ERR_NOMEM, "out of memory planning the checkpoint");
        p->t = t;
        p->cap = cap;
    }
    t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->n_dims = d1 ? 2 : 1;
    t->fill = fill;
    return QB_OK;
}

static size_t tensor_bytes(const struct synth_tensor *t)
{
    return (size_t)t->shape[0] * (size_t)(t->n_dims == 2 ? t->shape[1] : 1) * 2;
}

/* Every tensor of one decoder layer, named as transformers writes them. */
static enum qb_status plan_layer(struct synth_plan *p, const struct qb_config *c, int i,
                                 struct qb_err *err)
{
    static const char *const attn[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t rows[4] = {q, kv, kv, c->hidden}, cols[4] = {c->hidden, c->hidden, c->hidden, q};
    char name[96];
    enum qb_status st = QB_OK;
#define ADD(d0, d1, fill, ...)                                                                \
    do {                                                                                      \
        snprintf(name, sizeof name, __VA_ARGS__);                                             \
        if (!st)                                                                              \
            st = plan_add(p, name, d0, d1, fill, err);                                        \
    } while (0)
    ADD(c->hidden, 0, FILL_ONES, "model.layers.%d.input_layernorm.weight", i);
    ADD(c->hidden, 0, FILL_ONES, "model.layers.%d.post_attention_layernorm.weight", i);
    for (int s = 0; s < 4; s++) {
        ADD(rows[s], cols[s], FILL_RANDOM, "model.layers.%d.self_attn.%s.weight", i, attn[s]);
        if ((s < 3 && c->attn_bias) || (s == 3 && c->o_bias))
            ADD(rows[s], 0, FILL_ZEROS, "model.layers.%d.self_attn.%s.bias", i, attn[s]);
    }
    if (c->qk_norm) {
        ADD(c->head_dim, 0, FILL_ONES, "model.layers.%d.self_attn.q_norm.weight", i);
        ADD(c->head_dim, 0, FILL_ONES, "model.layers.%d.self_attn.k_norm.weight", i);
    }
    ADD(c->intermediate, c->hidden, FILL_RANDOM, "model.layers.%d.mlp.gate_proj.weight", i);
    ADD(c->intermediate, c->hidden, FILL_RANDOM, "model.layers.%d.mlp.up_proj.weight", i);
    ADD(c->hidden, c->intermediate, FILL_RANDOM, "model.layers.%d.mlp.down_proj.weight", i);
    if (c->mlp_bias) {
        ADD(c->intermediate, 0, FILL_ZEROS, "model.layers.%d.mlp.gate_proj.bias", i);
        ADD(c->intermediate, 0, FILL_ZEROS, "model.layers.%d.mlp.up_proj.bias", i);
        ADD(c->hidden, 0, FILL_ZEROS, "model.layers.%d.mlp.down_proj.bias", i);
    }
#undef ADD
    return st;
}

/* All tensors, then shards: consecutive tensors packed up to SYNTH_SHARD_BYTES. */
static enum qb_status plan_checkpoint(const struct qb_config *c, struct synth_plan *p,
                                      struct qb_err *err)
{
    enum qb_status st = plan_add(p, "model.embed_tokens.weight", c->vocab, c->hidden,
                                 FILL_RANDOM, err);
    size_t in_shard = 0;
    for (int i = 0; i < c->n_layers && !st; i++)
        st = plan_layer(p, c, i, err);
    if (!st)
        st = plan_add(p, "model.norm.weight", c->hidden, 0, FILL_ONES, err);
    if (!st && !c->tie_embeddings)
        st = plan_add(p, "lm_head.weight", c->vocab, c->hidden, FILL_RANDOM, err);
    if (st)
        return st;
    p->n_shards = 1;
    for (int i = 0; i < p->n; i++) {
        size_t b = tensor_bytes(&p->t[i]);
        if (in_shard > 0 && in_shard + b > SYNTH_SHARD_BYTES) {
            p->n_shards++;
            in_shard = 0;
        }
        p->t[i].shard = p->n_shards - 1;
        p->t[i].begin = in_shard;
        in_shard += b;
        p->total_bytes += b;
    }
    return QB_OK;
}

static char *shard_name(int shard, int n_shards)
{
    return qb_asprintf("model-%05d-of-%05d.safetensors", shard + 1, n_shards);
}

/* The safetensors JSON header of one shard, padded with spaces to 8 bytes. */
static char *shard_header(const struct synth_plan *p, int shard, size_t *len)
{
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "__metadata__");
    char *json, *padded = NULL;
    cJSON_AddStringToObject(meta, "format", "pt");
    for (int i = 0; i < p->n; i++) {
        const struct synth_tensor *t = &p->t[i];
        if (t->shard != shard)
            continue;
        cJSON *o = cJSON_AddObjectToObject(root, t->name), *shape = cJSON_CreateArray();
        cJSON *offs = cJSON_CreateArray();
        for (int d = 0; d < t->n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)t->begin));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(t->begin + tensor_bytes(t))));
        cJSON_AddStringToObject(o, "dtype", "BF16");
        cJSON_AddItemToObject(o, "shape", shape);
        cJSON_AddItemToObject(o, "data_offsets", offs);
    }
    json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (json) {
        size_t n = strlen(json), padded_len = (n + 7) & ~(size_t)7;
        padded = malloc(padded_len + 1);
        if (padded) {
            memcpy(padded, json, n);
            memset(padded + n, ' ', padded_len - n);
            padded[padded_len] = '\0';
            *len = padded_len;
        }
    }
    free(json);
    return padded;
}

/* Fill n bf16 values of one tensor (xorshift64*, 4 values per draw). */
static void fill_values(uint16_t *v, size_t n, int fill, uint64_t *state)
{
    const float a = (float)(SYNTH_INIT_STD * sqrt(3.0));
    uint16_t constant = fill == FILL_ONES ? qb_f32_to_bf16(1.0f) : 0;
    if (fill != FILL_RANDOM) {
        for (size_t i = 0; i < n; i++)
            v[i] = constant;
        return;
    }
    for (size_t i = 0; i < n; i += 4) {
        uint64_t x = *state;
        x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
        *state = x;
        x *= 0x2545f4914f6cdd1dull;
        for (size_t j = 0; j < 4 && i + j < n; j++) {
            float u = (float)((x >> (16 * j)) & 0xffffu) * (2.0f / 65535.0f) - 1.0f;
            v[i + j] = qb_f32_to_bf16(u * a);
        }
    }
}

static enum qb_status write_tensor(FILE *f, const struct synth_tensor *t, uint16_t *buf,
                                   uint64_t *state, const char *path, struct qb_err *err)
{
    size_t left = tensor_bytes(t) / 2, chunk = SYNTH_IO_BYTES / 2;
    while (left > 0) {
        size_t n = left < chunk ? left : chunk;
        fill_values(buf, n, t->fill, state);
        if (fwrite(buf, 2, n, f) != n)
            return qb_err_set(err, QB_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        left -= n;
    }
    return QB_OK;
}

static enum qb_status write_shard(const struct synth_plan *p, int shard, const char *dir,
                                  uint64_t seed, uint16_t *buf, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char *name = shard_name(shard, p->n_shards), *path = NULL, *tmp = NULL, *hdr = NULL;
    size_t hlen = 0;
    uint8_t le[8];
    FILE *f = NULL;
    path = name ? qb_asprintf("%s/%s", dir, name) : NULL;
    tmp = path ? qb_asprintf("%s.tmp", path) : NULL;
    hdr = shard_header(p, shard, &hlen);
    if (!tmp || !hdr) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory writing shard %d", shard + 1);
        goto out;
    }
    f = fopen(tmp, "wb");
    if (!f) {
        st = qb_err_set(err, QB_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    if (fwrite(le, 1, 8, f) != 8 || fwrite(hdr, 1, hlen, f) != hlen) {
        st = qb_err_set(err, QB_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    for (int i = 0; i < p->n && !st; i++) {
        uint64_t state = (seed + (uint64_t)i + 1) * 0x9e3779b97f4a7c15ull | 1;
        if (p->t[i].shard == shard)
            st = write_tensor(f, &p->t[i], buf, &state, tmp, err);
    }
    if (!st && fclose(f) != 0)
        st = qb_err_set(err, QB_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    f = NULL;
    if (!st && rename(tmp, path) != 0)
        st = qb_err_set(err, QB_ERR_IO, "cannot rename %s: %s", tmp, strerror(errno));
    if (!st)
        fprintf(stderr, "quantbench synth: wrote %s\n", name);
out:
    if (f)
        fclose(f);
    if (st && tmp)
        remove(tmp);
    free(name), free(path), free(tmp), free(hdr);
    return st;
}

static enum qb_status write_index(const struct synth_plan *p, const char *dir,
                                  struct qb_err *err)
{
    enum qb_status st;
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "metadata");
    cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
    char *json, *path = qb_asprintf("%s/model.safetensors.index.json", dir);
    cJSON_AddNumberToObject(meta, "total_size", (double)p->total_bytes);
    for (int i = 0; i < p->n; i++) {
        char *name = shard_name(p->t[i].shard, p->n_shards);
        cJSON_AddStringToObject(map, p->t[i].name, name ? name : "");
        free(name);
    }
    json = cJSON_Print(root);
    cJSON_Delete(root);
    if (!json || !path)
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory writing the index");
    else
        st = qb_file_write_atomic(path, json, strlen(json), err);
    free(json);
    free(path);
    return st;
}

static enum qb_status copy_file(const char *from, const char *dir, const char *name,
                                struct qb_err *err)
{
    char *data = NULL, *to = qb_asprintf("%s/%s", dir, name);
    size_t len = 0;
    enum qb_status st = to ? qb_file_read_all(from, (size_t)1 << 30, &data, &len, err)
                           : qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    if (!st)
        st = qb_file_write_atomic(to, data, len, err);
    free(data);
    free(to);
    return st;
}

/* config.json and tokenizer.json of the --like source (file or directory);
 * tok_opt (--tokenizer) wins when given. */
static enum qb_status synth_sources(const char *like, const char *tok_opt, char **config,
                                    char **tokenizer, struct qb_err *err)
{
    *tokenizer = NULL;
    if (tok_opt) {
        *config = qb_path_is_dir(like) ? qb_asprintf("%s/config.json", like) : qb_strdup(like);
        *tokenizer = qb_strdup(tok_opt);
    } else if (qb_path_is_dir(like)) {
        *config = qb_asprintf("%s/config.json", like);
        *tokenizer = qb_asprintf("%s/tokenizer.json", like);
    } else {
        const char *slash = strrchr(like, '/');
        *config = qb_strdup(like);
        *tokenizer = slash ? qb_asprintf("%.*s/tokenizer.json", (int)(slash - like), like)
                           : qb_strdup("tokenizer.json");
    }
    if (!*config || !*tokenizer)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    if (!tok_opt && !qb_path_exists(*tokenizer)) {
        free(*tokenizer);
        *tokenizer = qb_strdup(DEMO_TOKENIZER);
        if (!*tokenizer)
            return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        fprintf(stderr, "quantbench synth: no tokenizer.json beside the config; "
                        "copying the demo model's\n");
    }
    if (!qb_path_exists(*tokenizer))
        return qb_err_set(err, QB_ERR_IO, "tokenizer %s not found; pass --tokenizer FILE",
                          *tokenizer);
    return QB_OK;
}

static enum qb_status synth_run(const char *like, const char *tok_opt, const char *out,
                                uint64_t seed, struct qb_err *err)
{
    struct qb_config cfg;
    struct synth_plan plan = {0};
    char *config = NULL, *tokenizer = NULL;
    uint16_t *buf = NULL;
    enum qb_status st = synth_sources(like, tok_opt, &config, &tokenizer, err);
    if (!st)
        st = qb_config_load(config, &cfg, err);
    if (!st && mkdir(out, 0755) != 0 && errno != EEXIST)
        st = qb_err_set(err, QB_ERR_IO, "cannot create %s: %s", out, strerror(errno));
    if (!st)
        st = plan_checkpoint(&cfg, &plan, err);
    if (!st && !(buf = malloc(SYNTH_IO_BYTES)))
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory for the write buffer");
    if (!st)
        fprintf(stderr, "quantbench synth: %d tensors, %.2f GB in %d shards -> %s\n", plan.n,
                plan.total_bytes / 1e9, plan.n_shards, out);
    for (int s = 0; !st && s < plan.n_shards; s++)
        st = write_shard(&plan, s, out, seed, buf, err);
    if (!st)
        st = write_index(&plan, out, err);
    if (!st)
        st = copy_file(config, out, "config.json", err);
    if (!st)
        st = copy_file(tokenizer, out, "tokenizer.json", err);
    free(plan.t);
    free(config);
    free(tokenizer);
    free(buf);
    return st;
}

int qb_cmd_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"like", required_argument, NULL, 'l'}, {"out", required_argument, NULL, 'o'},
        {"seed", required_argument, NULL, 's'}, {"tokenizer", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *like = NULL, *out = NULL, *tok = NULL;
    long seed = 1;
    struct qb_err err = {0};
    enum qb_status st;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': like = optarg; break;
        case 'o': out = optarg; break;
        case 't': tok = optarg; break;
        case 's':
            if (qb_cli_parse_int(optarg, 0, 0x7fffffff, &seed) != 0)
                return qb_cli_usage_error("synth", "--seed needs a non-negative integer");
            break;
        case 'h': synth_usage(); return 0;
        default: return qb_cli_usage_error("synth", "unknown option");
        }
    }
    if (!like || !out || optind != argc)
        return qb_cli_usage_error("synth", "needs --like CONFIG_JSON|DIR and --out DIR");
    st = synth_run(like, tok, out, (uint64_t)seed, &err);
    if (st) {
        qb_err_print(&err);
        return qb_status_exit_code(st);
    }
    fprintf(stderr, "quantbench synth: wrote %s\n", out);
    return 0;
}
