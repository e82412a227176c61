/*
 * cuda_version.h - CUDA runtime version (13000 = 13.0), 0 without CUDA.
 */
#ifndef QB_CUDA_VERSION_H
#define QB_CUDA_VERSION_H

int qb_cuda_runtime_version(void);

#endif /* QB_CUDA_VERSION_H */
