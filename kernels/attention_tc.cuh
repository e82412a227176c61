/*
 * attention_tc.cuh - the tensor-core prefill attention of attention_tc.cu,
 * launched by qb_cuda_attention (attention.cu) for n > 1 and head_dim 64/128.
 * Same contract as qb_cuda_attention; returns the launch error.
 */
#ifndef QB_ATTENTION_TC_CUH
#define QB_ATTENTION_TC_CUH

#include "qb_cuda_common.cuh"

cudaError_t qb_attention_tc_launch(const float *qkv, int ldq, int n, int n_heads, int n_kv,
                                   int head_dim, int max_ctx, const int32_t *d_pos,
                                   const uint16_t *k_cache, const uint16_t *v_cache,
                                   uint16_t *out, cudaStream_t s);

#endif /* QB_ATTENTION_TC_CUH */
