/*
 * test_quant_peer.c - MXFP4 against an independent implementation: gguf-py's
 * gguf.quants.MXFP4 (the llama.cpp reference in numpy). Random blocks are
 * quantized and dequantized by both; the dequantized values must be identical
 * (E8M0 scale and nearest E2M1 value are fully specified; an exact tie, where
 * the two may pick different neighbours, has probability ~0 on random data and
 * is reported by position if it happens). Skips when QB_PYTHON lacks gguf.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quant.h"

#define PEER_ROWS 16
#define PEER_COLS 512

#define PEER_SCRIPT                                                                        \
    "import sys, numpy as np\n"                                                             \
    "from gguf import quants, GGMLQuantizationType as T\n"                                  \
    "w = np.fromfile(sys.argv[1], dtype=np.float32).reshape(%d, %d)\n"                     \
    "q = quants.quantize(w, T.MXFP4)\n"                                                     \
    "quants.dequantize(q, T.MXFP4).astype(np.float32).tofile(sys.argv[2])\n"

static int have_gguf(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import gguf.quants' >/dev/null 2>&1", QB_PYTHON);
    return system(cmd) == 0;
}

Test(peer, mxfp4_matches_gguf_py)
{
    if (!have_gguf()) {
        cr_skip_test("%s has no gguf package", QB_PYTHON);
        return;
    }
    char in[] = "/tmp/qb-peer-in-XXXXXX", out[] = "/tmp/qb-peer-out-XXXXXX";
    char py[] = "/tmp/qb-peer-py-XXXXXX";
    int fi = mkstemp(in), fo = mkstemp(out), fp = mkstemp(py);
    cr_assert(fi >= 0 && fo >= 0 && fp >= 0);
    static float w[PEER_ROWS * PEER_COLS], d[PEER_ROWS * PEER_COLS], peer[PEER_ROWS * PEER_COLS];
    uint64_t s = 42;
    for (int i = 0; i < PEER_ROWS * PEER_COLS; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 11) / 9007199254740992.0;
        /* wide dynamic range across blocks: exponents from 2^-20 to 2^20 */
        w[i] = (float)((u * 2 - 1) * ldexp(1.0, (int)((i / 32) % 41) - 20));
    }
    cr_assert_eq(write(fi, w, sizeof w), (ssize_t)sizeof w);
    dprintf(fp, PEER_SCRIPT, PEER_ROWS, PEER_COLS);
    close(fi);
    close(fp);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s %s %s", QB_PYTHON, py, in, out);
    cr_assert_eq(system(cmd), 0, "peer script failed: %s", cmd);
    cr_assert_eq(read(fo, peer, sizeof peer), (ssize_t)sizeof peer);
    close(fo);
    unlink(in);
    unlink(out);
    unlink(py);

    struct qb_linear l;
    struct qb_err err = {0};
    cr_assert_eq(qb_linear_quantize(w, PEER_ROWS, PEER_COLS, QB_WFMT_MXFP4, NULL, "peer", &l,
                                    &err), QB_OK, "%s", err.msg);
    qb_wfmt_get(QB_WFMT_MXFP4)->dequant_rows(&l, 0, PEER_ROWS, d);
    for (int i = 0; i < PEER_ROWS * PEER_COLS; i++)
        cr_assert_eq(d[i], peer[i], "element %d: w %a ours %a gguf %a", i, (double)w[i],
                     (double)d[i], (double)peer[i]);
    qb_linear_release(&l);
}
