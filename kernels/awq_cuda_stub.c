/*
 * awq_cuda_stub.c - the GPU AWQ search entries (qb_cuda_awq.h) when quantbench
 * is built without CUDA: every request answers "no device", so the AWQ driver
 * needs no #ifdef (it never asks: qb_qpipe_awq_on_gpu says no first).
 */
#ifndef QB_HAVE_CUDA
#include "kernels/qb_cuda_awq.h"

static enum qb_status no_cuda(struct qb_err *err)
{
    return qb_err_set(err, QB_ERR_NO_DEVICE, "this quantbench was built without CUDA "
                      "(-DQUANTBENCH_CUDA=OFF); use --backend cpu");
}

enum qb_status qb_cuda_awq_create(struct qb_cuda_awq **out, struct qb_err *err)
{
    *out = NULL;
    return no_cuda(err);
}

void qb_cuda_awq_free(struct qb_cuda_awq *a)
{
    (void)a;
}

const char *qb_cuda_awq_device_name(const struct qb_cuda_awq *a)
{
    (void)a;
    return "none";
}

size_t qb_cuda_awq_peak_bytes(const struct qb_cuda_awq *a)
{
    (void)a;
    return 0;
}

enum qb_status qb_cuda_awq_scaled_trial(struct qb_cuda_awq *a, const float *w, int64_t rows,
                                        int64_t cols, int bits, int group, const float *s,
                                        float *out, struct qb_err *err)
{
    (void)a, (void)w, (void)rows, (void)cols, (void)bits, (void)group, (void)s, (void)out;
    return no_cuda(err);
}

enum qb_status qb_cuda_awq_set_inputs(struct qb_cuda_awq *a, const float *x, int64_t n,
                                      int64_t cols, const float *target, int64_t out,
                                      struct qb_err *err)
{
    (void)a, (void)x, (void)n, (void)cols, (void)target, (void)out;
    return no_cuda(err);
}

enum qb_status qb_cuda_awq_set_weight(struct qb_cuda_awq *a, int k, const float *w,
                                      int64_t rows, int64_t cols, struct qb_err *err)
{
    (void)a, (void)k, (void)w, (void)rows, (void)cols;
    return no_cuda(err);
}

enum qb_status qb_cuda_awq_loss(struct qb_cuda_awq *a, enum qb_cuda_awq_loss_kind kind,
                                const float *s, int bits, int group, double *loss,
                                struct qb_err *err)
{
    (void)a, (void)kind, (void)s, (void)bits, (void)group;
    *loss = 0;
    return no_cuda(err);
}

enum qb_status qb_cuda_awq_range_search(struct qb_cuda_awq *a, const float *w, int64_t rows,
                                        int64_t cols, int bits, int group, const double *h,
                                        const float *s, const struct qb_awq_range_opts *o,
                                        float *lo, float *hi, struct qb_err *err)
{
    (void)a, (void)w, (void)rows, (void)cols, (void)bits, (void)group, (void)h, (void)s, (void)o;
    (void)lo, (void)hi;
    return no_cuda(err);
}
#else
typedef int qb_awq_cuda_stub_unused;
#endif
