/*
 * calib_cuda.cuh - the body of struct qb_cuda_calib (qb_cuda_calib.h), shared by
 * calib_cuda.cu (context, layer forward, Hessians) and gptq_cuda.cu (GPTQ).
 */
#ifndef QB_CALIB_CUDA_CUH
#define QB_CALIB_CUDA_CUH

#include <cusolverDn.h>
#include <stdio.h>

#include "qb_cuda_common.cuh"

extern "C" {
#include "qb_cuda_calib.h"
}

#define CUSOLVER_CHECK(expr)                                                                  \
    do {                                                                                      \
        cusolverStatus_t s_ = (expr);                                                         \
        if (s_ != CUSOLVER_STATUS_SUCCESS) {                                                  \
            char why_[32];                                                                    \
            snprintf(why_, sizeof why_, "cuSOLVER status %d", (int)s_);                       \
            st = qb_cuda_error(err, #expr, why_, __func__, __FILE__, __LINE__);               \
            goto out;                                                                         \
        }                                                                                     \
    } while (0)

/* The decoder layer on the device. */
struct calib_layer {
    int index;                            /* -1: none loaded */
    struct qb_cuda_weight lin[QB_LIN_COUNT];
    float *attn_norm, *ffn_norm, *q_norm, *k_norm;
};

/* The Hessian-inverse factor of the current Hessian under some options. */
struct calib_factor {
    int valid;
    uint64_t hess_gen;                    /* the Hessian it was made from */
    double damp;                          /* requested fraction (before any retry) */
    int act_order;
    int64_t cols;
    float *u;                             /* device [cols][cols] upper factor (permuted order) */
    int32_t *perm;                        /* device [cols] position -> original column, or NULL */
    int64_t *perm_host;                   /* host copy, or NULL */
    uint8_t *dead_host;                   /* host [cols]: H_ii == 0 */
    uint8_t *dead;                        /* device copy */
};

struct qb_cuda_calib {
    struct qb_cuda_ctx *ctx;
    cusolverDnHandle_t solver;
    char device[256];
    size_t peak_bytes;
    const struct qb_model *m;
    int S, L, H, q_dim, kv_dim, inter;
    struct qb_cuda_attn_shape shape;
    float eps;
    /* activations and forward scratch (m != NULL) */
    float *x;                             /* [S][L][H] */
    float *work;                          /* [L][H] */
    float *qkv, *gu;                      /* [L][q_dim + 2 kv_dim], [L][2 inter] */
    uint16_t *a, *a2;                     /* bf16 [L][max(H, q_dim)], [L][inter] */
    uint16_t *k_cache, *v_cache;          /* f16 [n_kv][L][head_dim] */
    float *inv_freq;
    int32_t *d_pos;                       /* one 0 */
    float *embed_row;                     /* host [L][H] staging */
    size_t dequant_elems;
    struct calib_layer layer;
    /* Hessian */
    int64_t h_cols, h_cap;                /* current width, allocated width */
    int64_t h_n;                          /* tokens accumulated */
    int h_finished;
    uint64_t h_gen;                       /* bumped by begin/set */
    double *h;                            /* device [cols][cols] sum, then H */
    float *gram;                          /* device [cols][cols] one call's X^T X */
    uint16_t *h_stage;                    /* device bf16 staging for hessian_add_bf16 */
    size_t h_stage_elems;
    struct calib_factor fac;
};

/* Record the device memory in use now as a candidate peak. */
void qb_calib_note_mem(struct qb_cuda_calib *c);
void qb_calib_factor_free(struct calib_factor *f);

#endif /* QB_CALIB_CUDA_CUH */
