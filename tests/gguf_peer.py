#!/usr/bin/env python3
"""Independent GGUF peer for tests/test_gguf_peer.c, built on the PyPI `gguf` package.

  gguf_peer.py dump IN.gguf OUT_DIR
      Read IN.gguf with gguf.GGUFReader. Write OUT_DIR/dump.json with the version,
      alignment, every metadata key (type name and value; arrays in full) and every
      tensor (name, ggml type id, shape in ggml order, byte size) and, for each tensor,
      OUT_DIR/deq-<index>.f32: gguf.quants.dequantize() of its data as float32.
  gguf_peer.py write OUT.gguf SRC.f32 ROWS COLS
      Write OUT.gguf with gguf.GGUFWriter: metadata of every value type and, for each
      type gguf.quants can quantize (F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0), a tensor
      "t.<type name>" quantized from the ROWS x COLS float32 matrix in SRC.f32.
  gguf_peer.py sizes
      Print {type id: [block size, type size]} from gguf.GGML_QUANT_SIZES as JSON.
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType, GGMLQuantizationType
from gguf.quants import dequantize, quantize

VTYPE_NAMES = {
    GGUFValueType.UINT8: "u8", GGUFValueType.INT8: "i8", GGUFValueType.UINT16: "u16",
    GGUFValueType.INT16: "i16", GGUFValueType.UINT32: "u32", GGUFValueType.INT32: "i32",
    GGUFValueType.FLOAT32: "f32", GGUFValueType.BOOL: "bool", GGUFValueType.STRING: "string",
    GGUFValueType.ARRAY: "array", GGUFValueType.UINT64: "u64", GGUFValueType.INT64: "i64",
    GGUFValueType.FLOAT64: "f64",
}


def plain(v):
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", errors="surrogateescape")
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, (np.integer, int, bool, np.bool_)):
        return int(v)
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def dump(path, out_dir):
    r = GGUFReader(path)
    meta = []
    for key, field in r.fields.items():
        if key.startswith("GGUF."):
            continue
        entry = {"key": key, "type": VTYPE_NAMES[field.types[0]]}
        if field.types[0] == GGUFValueType.ARRAY:
            entry["elem"] = VTYPE_NAMES[field.types[1]] if len(field.types) > 1 else "u8"
        entry["value"] = plain(field.contents())
        meta.append(entry)
    tensors = []
    for i, t in enumerate(r.tensors):
        shape = [int(x) for x in t.shape]  # ggml order (ne0 first)
        tensors.append({"name": t.name, "type": int(t.tensor_type), "shape": shape,
                        "bytes": int(t.n_bytes)})
        deq = dequantize(t.data, t.tensor_type).astype(np.float32)
        deq.tofile(os.path.join(out_dir, f"deq-{i}.f32"))
    version = int(r.fields["GGUF.version"].contents())
    doc = {"version": version, "alignment": int(r.alignment), "metadata": meta,
           "tensors": tensors}
    with open(os.path.join(out_dir, "dump.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)


QUANTIZABLE = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]


def write(path, src, rows, cols):
    x = np.fromfile(src, dtype=np.float32).reshape(rows, cols)
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 65000)
    w.add_int16("t.i16", -32000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.15625)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo wörld")
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", 2.718281828459045)
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_str", ["a", "", "ünï"])
    w.add_array("t.arr_f32", [0.5, -1.25])
    for name in QUANTIZABLE:
        qt = GGMLQuantizationType[name]
        data = quantize(x, qt)
        w.add_tensor(f"t.{name.lower()}", data, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def sizes():
    print(json.dumps({int(k): list(v) for k, v in gguf.GGML_QUANT_SIZES.items()}))


def main():
    cmd = sys.argv[1]
    if cmd == "dump":
        dump(sys.argv[2], sys.argv[3])
    elif cmd == "write":
        write(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "sizes":
        sizes()
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
