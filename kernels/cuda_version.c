/*
 * cuda_version.c - the CUDA runtime version this binary runs with, for
 * `doctor` and results provenance; 0 when built without CUDA or when the
 * runtime cannot answer.
 */
#include "kernels/cuda_version.h"

#ifdef QB_HAVE_CUDA
#include <cuda_runtime_api.h>

int qb_cuda_runtime_version(void)
{
    int v = 0;
    if (cudaRuntimeGetVersion(&v) != cudaSuccess)
        return 0;
    return v;
}
#else
int qb_cuda_runtime_version(void)
{
    return 0;
}
#endif
