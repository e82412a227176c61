#!/usr/bin/env python3
"""gguf_export_peer.py GGUF MODEL_DIR FTYPE OURS_DIR

Checks a GGUF file quantbench exported from the HF checkpoint MODEL_DIR with the
PyPI `gguf` package (GGUFReader, gguf.quants), independently of our reader:
  - llama metadata from config.json, general.file_type, alignment 32;
  - tokenizer arrays equal tokenizer.json (tokens by id, token types, merges),
    pre "llama-bpe", BOS/EOS ids, add_bos_token;
  - tensor names, shapes and the llama-quantize b4748 types of the demo model
    (8 layers, GQA 2, untied) for FTYPE;
  - gguf.quants.dequantize of every tensor equals our dequantization
    (OURS_DIR/NAME.f32, raw little-endian float32, written by the C test);
  - the values are the HF weights rounded to F16 and, for attn_q/attn_k,
    permuted as convert_hf_to_gguf does, within the type's error bound;
  - for F16, Q8_0 and Q4_0 the tensor bytes equal gguf.quants.quantize of those
    F16-rounded weights (gguf-py's numpy port of ggml's reference quantizers).
Exits non-zero with a message on the first mismatch.
"""
import json
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T


def fail(msg):
    print("gguf_export_peer: " + msg, file=sys.stderr)
    sys.exit(1)


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        fail(f"missing key {key}")
    return f.contents()


def load_hf(model_dir):
    """All tensors of the safetensors shards as float32 (bf16/f16/f32)."""
    out = {}
    for fn in sorted(os.listdir(model_dir)):
        if not fn.endswith(".safetensors"):
            continue
        with open(os.path.join(model_dir, fn), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            hdr = json.loads(f.read(n))
            base = 8 + n
            data = f.read()
        for name, info in hdr.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            raw = np.frombuffer(data[a:b], dtype=np.uint8)
            if info["dtype"] == "BF16":
                v = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif info["dtype"] == "F16":
                v = raw.view(np.float16).astype(np.float32)
            else:
                v = raw.view(np.float32)
            out[name] = v.reshape(info["shape"])
    return out


def permute(w, n_head):
    # convert_hf_to_gguf LlamaModel.permute
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def use_more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def expected_type(ftype, name, n_layer, n_gqa):
    if name.endswith("_norm.weight"):
        return T.F32
    if ftype == "f16":
        return T.F16
    if ftype == "q8_0":
        return T.Q8_0
    base = {"q6_k": T.Q6_K, "q4_k_m": T.Q4_K, "q4_0": T.Q4_0, "q2_k": T.Q2_K,
            "q3_k_s": T.Q3_K, "q5_k_m": T.Q5_K}[ftype]
    if name == "output.weight":
        return T.Q6_K
    layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
    if ".attn_v." in name:
        if ftype == "q2_k":
            return T.Q4_K if n_gqa >= 4 else T.Q3_K
        if ftype in ("q4_k_m", "q5_k_m") and use_more_bits(layer, n_layer):
            return T.Q6_K
    if ".ffn_down." in name:
        if ftype == "q2_k":
            return T.Q3_K
        if ftype in ("q4_k_m", "q5_k_m") and use_more_bits(layer, n_layer):
            return T.Q6_K
    if ".attn_output." in name and ftype == "q2_k":
        return T.Q3_K
    return base


# relative RMS error bound of the quantized values against the F16 weights
REL_RMS = {T.F32: 0.0, T.F16: 0.0, T.Q8_0: 0.01, T.Q6_K: 0.03, T.Q5_K: 0.06, T.Q4_K: 0.12,
           T.Q4_0: 0.15, T.Q3_K: 0.25, T.Q2_K: 0.5}

HF_OF = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
         "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
         "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm",
         "ffn_norm": "post_attention_layernorm"}


def hf_name(name):
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if name == "output.weight":
        return "lm_head.weight"
    if name == "output_norm.weight":
        return "model.norm.weight"
    _, n, kind, _ = name.split(".")
    return f"model.layers.{n}.{HF_OF[kind]}.weight"


def check_metadata(r, cfg, ftype_name):
    exp = {
        "general.architecture": "llama",
        "llama.block_count": cfg["num_hidden_layers"],
        "llama.context_length": cfg["max_position_embeddings"],
        "llama.embedding_length": cfg["hidden_size"],
        "llama.feed_forward_length": cfg["intermediate_size"],
        "llama.attention.head_count": cfg["num_attention_heads"],
        "llama.attention.head_count_kv": cfg["num_key_value_heads"],
        "general.quantization_version": 2,
    }
    for k, v in exp.items():
        if field(r, k) != v:
            fail(f"{k} = {field(r, k)!r}, expected {v!r}")
    eps = field(r, "llama.attention.layer_norm_rms_epsilon")
    if abs(eps - cfg["rms_norm_eps"]) > 1e-12:
        fail(f"rms eps {eps}")
    theta = cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"]
    if field(r, "llama.rope.freq_base") != theta:
        fail("rope.freq_base")
    ftypes = {"f16": 1, "q8_0": 7, "q4_0": 2, "q2_k": 10, "q3_k_s": 11, "q4_k_m": 15,
              "q5_k_m": 17, "q6_k": 18}
    if field(r, "general.file_type") != ftypes[ftype_name]:
        fail(f"general.file_type {field(r, 'general.file_type')}")
    if r.alignment != 32:
        fail(f"alignment {r.alignment}")


def check_tokenizer(r, model_dir, cfg):
    tj = json.load(open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8"))
    n = cfg["vocab_size"]
    tokens = [None] * n
    types = [1] * n
    for t, i in tj["model"]["vocab"].items():
        tokens[i] = t
    for a in tj["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = 3 if a["special"] else 4
    for i in range(n):
        if tokens[i] is None:
            tokens[i], types[i] = f"[PAD{i}]", 5
    if field(r, "tokenizer.ggml.model") != "gpt2":
        fail("tokenizer.ggml.model")
    if field(r, "tokenizer.ggml.pre") != "llama-bpe":
        fail(f"tokenizer.ggml.pre {field(r, 'tokenizer.ggml.pre')!r}")
    if field(r, "tokenizer.ggml.tokens") != tokens:
        fail("tokenizer.ggml.tokens differ from tokenizer.json")
    if list(field(r, "tokenizer.ggml.token_type")) != types:
        fail("tokenizer.ggml.token_type")
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    if field(r, "tokenizer.ggml.merges") != merges:
        fail("tokenizer.ggml.merges differ from tokenizer.json")
    if field(r, "tokenizer.ggml.bos_token_id") != cfg["bos_token_id"]:
        fail("bos id")
    if field(r, "tokenizer.ggml.eos_token_id") != cfg["eos_token_id"]:
        fail("eos id")
    if field(r, "tokenizer.ggml.add_bos_token") is not True:
        fail("add_bos_token")


def check_tensors(r, model_dir, cfg, ftype, ours_dir):
    hf = load_hf(model_dir)
    n_layer = cfg["num_hidden_layers"]
    n_gqa = cfg["num_attention_heads"] // cfg["num_key_value_heads"]
    names = ["token_embd.weight", "output_norm.weight", "output.weight"]
    for i in range(n_layer):
        names += [f"blk.{i}.{k}.weight" for k in HF_OF]
    got = {t.name: t for t in r.tensors}
    if sorted(got) != sorted(names):
        fail(f"tensor names {sorted(set(got) ^ set(names))}")
    for name in names:
        t = got[name]
        w = hf[hf_name(name)].astype(np.float16).astype(np.float32)
        if ".attn_q." in name:
            w = permute(w, cfg["num_attention_heads"])
        if ".attn_k." in name:
            w = permute(w, cfg["num_key_value_heads"])
        if list(t.shape) != list(reversed(w.shape)):
            fail(f"{name}: shape {list(t.shape)}, expected {list(reversed(w.shape))}")
        et = expected_type(ftype, name, n_layer, n_gqa)
        if t.tensor_type != et:
            fail(f"{name}: type {t.tensor_type.name}, expected {et.name}")
        deq = gguf.quants.dequantize(t.data, t.tensor_type).reshape(w.shape).astype(np.float32)
        ours = np.fromfile(os.path.join(ours_dir, name + ".f32"), dtype="<f4").reshape(w.shape)
        scale = max(float(np.abs(deq).max()), 1e-30)
        if not np.allclose(deq, ours, rtol=0, atol=1e-6 * scale):
            fail(f"{name}: gguf.quants.dequantize differs from ours by "
                 f"{float(np.abs(deq - ours).max())}")
        rel = float(np.sqrt(np.mean((deq - w) ** 2)) / max(np.sqrt(np.mean(w ** 2)), 1e-30))
        if rel > REL_RMS[et]:
            fail(f"{name}: relative RMS error {rel:.4f} against the F16 weights exceeds "
                 f"{REL_RMS[et]} for {et.name}")
        if et in (T.F16, T.Q8_0, T.Q4_0):
            ref = gguf.quants.quantize(w, et)
            mism = np.count_nonzero(ref.reshape(-1).view(np.uint8) !=
                                    np.asarray(t.data).reshape(-1).view(np.uint8))
            if mism:
                fail(f"{name}: {mism} bytes differ from gguf.quants.quantize({et.name})")


def main():
    path, model_dir, ftype, ours_dir = sys.argv[1:5]
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    r = gguf.GGUFReader(path)
    check_metadata(r, cfg, ftype)
    check_tokenizer(r, model_dir, cfg)
    check_tensors(r, model_dir, cfg, ftype, ours_dir)
    print(f"gguf_export_peer: {os.path.basename(path)} ok ({len(r.tensors)} tensors)")


if __name__ == "__main__":
    main()
