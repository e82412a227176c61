#!/usr/bin/env python3
"""hfq_peer.py - independent reader of quantized Hugging Face checkpoints for
tests/test_hfq.c.

Usage: hfq_peer.py CHECKPOINT_DIR OUT.f32

Reads CHECKPOINT_DIR/model.safetensors with the PyPI `safetensors` package's
own parser (safetensors.deserialize: numpy has no float8 dtype, so F8_E4M3
tensors come back as raw bytes and are decoded here), checks the quantization config keys each producer writes, unpacks
every decoder linear from the published format definitions (AutoGPTQ
qlinear pack / dequant, AutoAWQ packing_utils, compressed-tensors NVFP4 and
float-quantized, ModelOpt NVFP4, bitsandbytes QuantState), and writes the
dequantized weights, float32 [out][in] per linear, layers in order and within a
layer q, k, v, o, gate, up, down, to OUT.f32. Written from the format specs,
not from quantbench's C code.
"""
import json
import os
import sys

import numpy as np
import safetensors

SLOTS = [("self_attn", "q_proj"), ("self_attn", "k_proj"), ("self_attn", "v_proj"),
         ("self_attn", "o_proj"), ("mlp", "gate_proj"), ("mlp", "up_proj"),
         ("mlp", "down_proj")]

NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                0.07958029955625534, 0.16093020141124725, 0.24611230194568634,
                0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                0.7229568362236023, 1.0], dtype=np.float32)
E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6],
                dtype=np.float32)
AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]


NP_DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "U8": np.uint8,
             "F8_E4M3": np.uint8, "BF16": np.uint16, "I64": np.int64}


def load(path):
    out = {}
    for name, t in safetensors.deserialize(open(path, "rb").read()):
        a = np.frombuffer(bytes(t["data"]), dtype=NP_DTYPES[t["dtype"]])
        out[name] = a.reshape(t["shape"])
        out[name + "#dtype"] = t["dtype"]
    return out


def e4m3(u8):
    """float8_e4m3fn bytes -> float32 (OCP: bias 7, no inf, 0x7f/0xff NaN)."""
    u = u8.astype(np.int32)
    s = np.where(u & 0x80, -1.0, 1.0)
    e = (u >> 3) & 0xF
    m = u & 7
    v = np.where(e == 0, m / 8.0 * 2.0 ** -6, (1 + m / 8.0) * 2.0 ** (e - 7))
    v = np.where((u & 0x7F) == 0x7F, np.nan, v)
    return (s * v).astype(np.float32)


def unpack_stream(words, bits, count):
    """int32 words [W, M] holding a little-endian bit stream per column -> [count, M]."""
    w = words.view(np.uint32).T.copy()            # [M, W]
    raw = w.view(np.uint8).reshape(w.shape[0], -1)  # little-endian bytes
    b = np.unpackbits(raw, axis=1, bitorder="little")[:, :count * bits]
    b = b.reshape(w.shape[0], count, bits).astype(np.int64)
    vals = (b << np.arange(bits)).sum(axis=2)     # [M, count]
    return vals.T


def gptq(t, p, qc, K, N):
    bits = qc["bits"]
    q = unpack_stream(t[p + ".qweight"], bits, K)             # [K, N]
    zs = unpack_stream(t[p + ".qzeros"].T.copy(), bits, N)    # qzeros [G, N*b/32] packs along N
    zs = zs.T                                                  # [G, N]
    if qc.get("checkpoint_format", "gptq") == "gptq":
        zs = zs + 1                                            # v1: stored zero - 1
    scales = t[p + ".scales"].astype(np.float32)
    g = t[p + ".g_idx"].astype(np.int64)
    w = scales[g, :] * (q - zs[g, :]).astype(np.float32)       # [K, N]
    return w.T


def awq(t, p, qc, K, N):
    gs = qc["group_size"]

    def unpack(x):
        x = x.view(np.uint32)
        nib = np.stack([(x >> (4 * i)) & 0xF for i in range(8)], axis=-1)  # [.., N/8, 8]
        nib = nib[..., AWQ_REVERSE_ORDER]
        return nib.reshape(x.shape[0], -1).astype(np.int64)

    q = unpack(t[p + ".qweight"])                               # [K, N]
    z = unpack(t[p + ".qzeros"])                                # [G, N]
    s = t[p + ".scales"].astype(np.float32)
    g = np.arange(K) // gs
    return (s[g, :] * (q - z[g, :]).astype(np.float32)).T


def nvfp4(packed, scale):
    lo = packed & 0xF
    hi = packed >> 4
    codes = np.stack([lo, hi], axis=-1).reshape(packed.shape[0], -1)  # even element low
    vals = E2M1[codes]
    s = e4m3(scale)
    s = np.repeat(s, 16, axis=1)
    return vals * s


def bnb(t, p, K, N):
    state = json.loads(bytes(t[p + ".weight.quant_state.bitsandbytes__nf4"]).decode())
    assert state["quant_type"] == "nf4" and tuple(state["shape"]) == (N, K), state
    bs = state["blocksize"]
    packed = t[p + ".weight"].reshape(-1)
    codes = np.stack([packed >> 4, packed & 0xF], axis=-1).reshape(-1)[:N * K]  # even high
    qmap = t[p + ".weight.quant_map"]
    assert np.allclose(qmap, NF4, atol=1e-7)
    absmax = t[p + ".weight.absmax"]
    if "nested_blocksize" in state:
        nested = t[p + ".weight.nested_absmax"]
        nmap = t[p + ".weight.nested_quant_map"]
        nbs = state["nested_blocksize"]
        idx = np.arange(absmax.shape[0]) // nbs
        absmax = nmap[absmax.astype(np.int64)] * nested[idx] + np.float32(state["nested_offset"])
    vals = qmap[codes] * np.repeat(absmax.astype(np.float32), bs)[:N * K]
    return vals.reshape(N, K)


def main():
    d, out = sys.argv[1], sys.argv[2]
    cfg = json.load(open(os.path.join(d, "config.json")))
    qc = cfg["quantization_config"]
    t = load(os.path.join(d, "model.safetensors"))
    method = qc["quant_method"]
    if method == "gptq":
        for k in ("bits", "group_size", "desc_act", "sym", "checkpoint_format"):
            assert k in qc, k
        qf = json.load(open(os.path.join(d, "quantize_config.json")))
        assert qf["bits"] == qc["bits"] and qf["group_size"] == qc["group_size"]
    elif method == "awq":
        assert qc["version"] == "gemm" and qc["bits"] == 4 and qc["zero_point"] is True
    elif method == "compressed-tensors":
        wa = qc["config_groups"]["group_0"]["weights"]
        assert qc["format"] in ("nvfp4-pack-quantized", "float-quantized"), qc["format"]
        assert wa["type"] == "float"
    elif method == "modelopt":
        hq = json.load(open(os.path.join(d, "hf_quant_config.json")))
        assert hq["quantization"]["quant_algo"] == "NVFP4"
        assert hq["quantization"]["group_size"] == 16
    elif method == "bitsandbytes":
        assert qc["load_in_4bit"] is True and qc["bnb_4bit_quant_type"] == "nf4"
    H, I = cfg["hidden_size"], cfg["intermediate_size"]
    hd = cfg.get("head_dim") or H // cfg["num_attention_heads"]
    qd, kvd = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    shapes = {"q_proj": (qd, H), "k_proj": (kvd, H), "v_proj": (kvd, H), "o_proj": (H, qd),
              "gate_proj": (I, H), "up_proj": (I, H), "down_proj": (H, I)}
    with open(out, "wb") as f:
        for layer in range(cfg["num_hidden_layers"]):
            for blk, name in SLOTS:
                p = "model.layers.%d.%s.%s" % (layer, blk, name)
                N, K = shapes[name]
                if method == "gptq":
                    w = gptq(t, p, qc, K, N)
                elif method == "awq":
                    w = awq(t, p, qc, K, N)
                elif method == "compressed-tensors" and qc["format"] == "nvfp4-pack-quantized":
                    assert t[p + ".weight_packed#dtype"] == "U8"
                    assert t[p + ".weight_scale#dtype"] == "F8_E4M3"
                    # compressed-tensors: x = e2m1 * weight_scale / weight_global_scale
                    w = nvfp4(t[p + ".weight_packed"], t[p + ".weight_scale"]) / \
                        t[p + ".weight_global_scale"].reshape(-1)[0]
                elif method == "compressed-tensors":
                    assert t[p + ".weight#dtype"] == "F8_E4M3"
                    assert t[p + ".weight_scale"].shape == (N, 1)
                    w = e4m3(t[p + ".weight"]) * t[p + ".weight_scale"]
                elif method == "modelopt":
                    # ModelOpt: x = e2m1 * weight_scale * weight_scale_2
                    assert t[p + ".weight#dtype"] == "U8"
                    assert t[p + ".input_scale"].shape == () and t[p + ".input_scale"] > 0
                    w = nvfp4(t[p + ".weight"], t[p + ".weight_scale"]) * \
                        t[p + ".weight_scale_2"].reshape(-1)[0]
                else:
                    w = bnb(t, p, K, N)
                assert w.shape == (N, K), (p, w.shape)
                f.write(np.ascontiguousarray(w, dtype=np.float32).tobytes())
    print("ok")


if __name__ == "__main__":
    main()
