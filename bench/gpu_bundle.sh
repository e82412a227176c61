#!/usr/bin/env bash
# gpu_bundle.sh BUILD_DIR [BINARY...] - pack a CUDA build for the GPU machine.
#
# The GPU machine has the NVIDIA driver and CUDA 13 but none of our other
# runtime libraries, and what travels there is limited in size. This puts the
# stripped binaries (default: quantbench and the CUDA test suites) and every
# shared library they need, except glibc and the CUDA libraries, into
# .gpu/bundle.tar.xz. On the GPU machine:
#   mkdir -p /tmp/qb && tar -C /tmp/qb -xJf .gpu/bundle.tar.xz
#   export LD_LIBRARY_PATH=/tmp/qb/lib:$LD_LIBRARY_PATH
#   mkdir -p "$(dirname BUILD_DIR)" && ln -sfn "$PWD" <the source dir the build was made in>
# (the tests find their data through paths compiled in at build time).
set -euo pipefail
BUILD=${1:?usage: gpu_bundle.sh BUILD_DIR [BINARY...]}
shift
BINS=("$@")
if [ ${#BINS[@]} -eq 0 ]; then
    BINS=(quantbench test_cuda_kernels test_cuda_engine test_cuda_packed test_cuda_gptq test_cuda_w4a4 test_cuda_awq)
fi
STAGE=$(mktemp -d)
mkdir -p "$STAGE/bin" "$STAGE/lib" .gpu
for b in "${BINS[@]}"; do
    [ -x "$BUILD/$b" ] && cp "$BUILD/$b" "$STAGE/bin/"
done
for b in "$STAGE"/bin/*; do
    ldd "$b" | awk '/=>/ {print $3}'
done | sort -u | grep -v -E 'lib(c|m|dl|pthread|rt|stdc\+\+|gcc_s|cuda|cublas|cublasLt|cusolver|cusparse|nvJitLink|cudart)\.so|ld-linux' |
    while read -r lib; do cp -L "$lib" "$STAGE/lib/"; done
strip "$STAGE"/bin/* "$STAGE"/lib/* 2>/dev/null || true
tar -C "$STAGE" -cJf .gpu/bundle.tar.xz bin lib
rm -rf "$STAGE"
du -h .gpu/bundle.tar.xz
