/*
 * dashboard_method.c - the Method & precision pane's data: every scheme the
 * build knows (qb_scheme_names), its bits per weight (from the format's
 * packed size for a hidden x hidden linear, scales and zeros included), the
 * expected size of the selected model in it, the hardware-support line, and
 * the options (group size, act-order, calibration samples, eval chunks).
 */
#include <stdlib.h>
#include <string.h>

#include "tui/dashboard_impl.h"

static const int group_choices[] = {0, 32, 64, 128};
static const int calib_choices[] = {128, 32, 512};
static const int chunk_choices[] = {4, 1, 16, 0};

int dash_group_size(const struct qb_dash *d)
{
    return group_choices[d->group_idx % (int)QB_ARRAY_LEN(group_choices)];
}

int dash_calib_samples(const struct qb_dash *d)
{
    return calib_choices[d->calib_idx % (int)QB_ARRAY_LEN(calib_choices)];
}

int dash_eval_chunks(const struct qb_dash *d)
{
    if (d->opt.chunks >= 0 && d->chunks_idx == 0)
        return d->opt.chunks;
    return chunk_choices[d->chunks_idx % (int)QB_ARRAY_LEN(chunk_choices)];
}

void dash_calib_path(const struct qb_dash *d, char *buf, size_t size)
{
    const char *env = getenv("QB_SOURCE_DIR");
    if (d->opt.calib_path[0])
        snprintf(buf, size, "%s", d->opt.calib_path);
    else
        snprintf(buf, size, "%s/tests/data/calib-gutenberg.txt",
                 env && env[0] ? env : QB_SOURCE_DIR);
}

void dash_calib_name(const struct qb_dash *d, char *buf, size_t size)
{
    char path[1024];
    dash_calib_path(d, path, sizeof path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strcspn(base, ".");
    snprintf(buf, size, "%.*s", (int)QB_MIN(n, 24), base);
}

static double scheme_bpw(const struct qb_scheme *s, int64_t dim)
{
    if (dim <= 0)
        dim = 4096;
    return qb_wfmt_bits_per_weight(s->fmt, dim, dim, &s->qp);
}

void dash_schemes_init(struct qb_dash *d)
{
    const char *names = qb_scheme_names();
    const struct dash_model *m = dash_model_selected(d);
    int64_t dim = m && m->hidden > 0 ? m->hidden : 4096;
    d->n_schemes = 0;
    const char *p = names;
    while (*p && d->n_schemes < DASH_MAX_SCHEMES) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t n = strcspn(p, ", ");
        if (n == 0)
            break;
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)QB_MIN(n, sizeof name - 1), p);
        p += n;
        struct dash_scheme *s = &d->schemes[d->n_schemes];
        memset(s, 0, sizeof *s);
        if (qb_scheme_parse(name, 0, &s->s, NULL) != QB_OK)
            continue;
        s->bpw = scheme_bpw(&s->s, dim);
        d->n_schemes++;
    }
    if (d->scheme_sel >= d->n_schemes)
        d->scheme_sel = 0;
}

double dash_expected_bytes(const struct dash_model *m, const struct dash_scheme *s)
{
    if (!m || m->params <= 0 || m->decoder_params < 0)
        return -1;
    double base_bits = strcmp(m->dtype, "f32") == 0 ? 32.0 : 16.0;
    double rest = (double)(m->params - m->decoder_params) * base_bits / 8.0;
    return rest + (double)m->decoder_params * s->bpw / 8.0;
}

/* Compute capability of the GPU at hand as major*10+minor, 0 when none. */
static int gpu_sm(const struct qb_dash *d)
{
    return d->gpu.n_gpus > 0 ? d->gpu.cc_major * 10 + d->gpu.cc_minor : 0;
}

static const char *here(int native)
{
    return native ? "native here" : "emulated here";
}

void dash_hw_support(const struct qb_dash *d, const struct dash_scheme *s, char *buf,
                     size_t size)
{
    int sm = gpu_sm(d);
    const char *name = s->s.name;
    const char *gpu = sm ? "" : " (no GPU: CPU reference)";
    switch (s->s.fmt) {
    case QB_WFMT_F32:
    case QB_WFMT_F16:
    case QB_WFMT_BF16:
        snprintf(buf, size, "%s: native on every GPU and the CPU", name);
        return;
    case QB_WFMT_FP8_E4M3:
    case QB_WFMT_FP8_E5M2:
        snprintf(buf, size, "%s: native on Ada/Hopper/Blackwell (sm_89+), %s%s", name,
                 here(sm >= 89), gpu);
        return;
    case QB_WFMT_NVFP4:
    case QB_WFMT_MXFP4:
        snprintf(buf, size, "%s: native on Blackwell (sm_100+), %s%s", name, here(sm >= 100),
                 gpu);
        return;
    case QB_WFMT_INT8:
        snprintf(buf, size, "%s: int8 weights dequantized in the matmul%s", name, gpu);
        return;
    case QB_WFMT_INT4:
    case QB_WFMT_INT4_SYM:
    case QB_WFMT_UINT_G:
    case QB_WFMT_NF4:
    case QB_WFMT_NF4_DQ:
        snprintf(buf, size, "%s: weight-only, dequantized on the fly%s", name, gpu);
        return;
    case QB_WFMT_GGML:
        snprintf(buf, size, "%s: GGUF blocks, llama.cpp-compatible kernels%s", name, gpu);
        return;
    case QB_WFMT_COUNT:
        break;
    }
    snprintf(buf, size, "%s", name);
}
