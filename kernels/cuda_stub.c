/*
 * cuda_stub.c - the CUDA entry points when quantbench is built without CUDA
 * (-DQUANTBENCH_CUDA=OFF): every request for the GPU answers "no device".
 */
#ifndef QB_HAVE_CUDA
#include "engine.h"
#include <string.h>

#include "kernels/qb_cuda.h"
#include "kernels/qb_cuda_calib.h"

static enum qb_status no_cuda(struct qb_err *err)
{
    return qb_err_set(err, QB_ERR_NO_DEVICE,
                      "this quantbench was built without CUDA (-DQUANTBENCH_CUDA=OFF); "
                      "use --backend cpu or rebuild with the CUDA toolkit");
}

int qb_cuda_available(void)
{
    return 0;
}

enum qb_status qb_engine_create_cuda(const struct qb_model *m, const struct qb_engine_opts *o,
                                     struct qb_engine **out, struct qb_err *err)
{
    (void)m;
    (void)o;
    *out = NULL;
    return no_cuda(err);
}

int qb_cuda_supports(enum qb_wfmt fmt, enum qb_act_mode act)
{
    (void)fmt;
    (void)act;
    return 0;
}

enum qb_status qb_cuda_device_query(struct qb_cuda_device *out, struct qb_err *err)
{
    memset(out, 0, sizeof *out);
    return no_cuda(err);
}

enum qb_status qb_cuda_measure_bandwidth(double *gbs, struct qb_err *err)
{
    *gbs = 0;
    return no_cuda(err);
}

enum qb_status qb_cuda_calib_check(const struct qb_model *m, int seqlen, struct qb_err *err)
{
    (void)m;
    (void)seqlen;
    return no_cuda(err);
}
#else
typedef int qb_cuda_stub_unused;
#endif
