#!/usr/bin/python3
"""Writes the safetensors fixtures of tests/checkpoint/test_safetensors.c.

Regenerate (Debian's python3 with torch + numpy; the `safetensors` package is not needed):
    /usr/bin/python3 tests/reference/make_safetensors_fixtures.py tests/fixtures/checkpoint/safetensors

The files are written by a small writer of the format made from its published description
(8-byte little-endian u64 header length, a JSON header {name: {dtype, shape, data_offsets}},
"__metadata__", then the data section), not by our C code. Expected values come from numpy/torch:
the float32 value of every element of every float tensor as its bit pattern (F16 -> F32 by numpy's
astype, BF16 -> F32 by torch's .float(), F64 -> F32 by numpy's round-to-nearest astype), and the
integer values of integer tensors. Corrupt variants are listed in expected.json with the status
and message fragments the reader must produce.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

# Tensors of the valid file: name -> (dtype name, numpy array or raw bf16 torch tensor).
rng = np.random.default_rng(20240601)


def special_halfs():
    # Normals, the extremes, ±0, subnormals (smallest 2^-24 and largest), ±inf and a NaN: every
    # branch of a half -> float conversion.
    bits = np.array([0x3c00, 0xbc00, 0x7bff, 0xfbff, 0x0000, 0x8000, 0x0001, 0x03ff, 0x8200,
                     0x7c00, 0xfc00, 0x7e00, 0x3555, 0x0400], dtype=np.uint16)
    return bits.view(np.float16).reshape(2, 7)


def bf16_tensor():
    values = torch.tensor(rng.standard_normal(9) * 3, dtype=torch.float32).to(torch.bfloat16)
    values[0] = float("inf")
    values[1] = -0.0
    values[2] = 1e-40  # a bf16 subnormal
    return values.reshape(3, 3)


TENSORS = [
    ("encoder.weight", "F32", rng.standard_normal((3, 4)).astype(np.float32)),
    ("encoder.bias", "F32", rng.standard_normal(4).astype(np.float32)),
    ("scalar", "F32", np.array(2.5, dtype=np.float32)),          # shape []
    ("empty", "F32", np.zeros((0, 3), dtype=np.float32)),        # no bytes at all
    ("double.weight", "F64", np.array([[1 / 3, -2.0e-5], [1e10 + 0.3, 1.0000000596046448]])),
    ("half.weight", "F16", special_halfs()),
    ("bf16.weight", "BF16", bf16_tensor()),
    ("text.position_ids", "I64", np.arange(7, dtype=np.int64).reshape(1, 7) - 3),
    ("int32.buffer", "I32", np.array([-2147483648, 0, 2147483647], dtype=np.int32)),
    ("int16.buffer", "I16", np.array([-32768, 1, 32767], dtype=np.int16)),
    ("int8.buffer", "I8", np.array([-128, 5, 127], dtype=np.int8)),
    ("uint8.buffer", "U8", np.array([0, 200, 255], dtype=np.uint8)),
    ("mask", "BOOL", np.array([True, False, True, True], dtype=np.bool_)),
]
METADATA = {"format": "pt", "note": "medvlp safetensors fixture"}
DTYPE_SIZE = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2, "I8": 1, "U8": 1,
              "BOOL": 1}


def raw_bytes(dtype, value):
    if dtype == "BF16":
        return value.contiguous().view(torch.int16).numpy().astype("<i2").tobytes()
    return np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes()


def shape_of(value):
    return [int(d) for d in value.shape]


def expected_entry(dtype, value):
    entry = {"dtype": dtype, "shape": shape_of(value)}
    if dtype == "BF16":
        entry["f32_bits"] = value.float().numpy().reshape(-1).view(np.uint32).tolist()
    elif dtype in ("F32", "F16", "F64"):
        entry["f32_bits"] = value.astype(np.float32).reshape(-1).view(np.uint32).tolist()
    else:
        entry["ints"] = value.reshape(-1).astype(np.int64).tolist()
    return entry


def pack(header, data, header_size=None):
    """header (dict) + data -> file bytes. The header is padded with spaces (as the reference writer
    does) to a multiple of 8 or to exactly header_size bytes."""
    text = json.dumps(header, separators=(",", ":")).encode()
    target = header_size if header_size is not None else (len(text) + 7) // 8 * 8
    assert target >= len(text), (target, len(text))
    text += b" " * (target - len(text))
    return struct.pack("<Q", len(text)) + text + data


def valid_layout():
    """The header dict and data section: tensors laid out by decreasing element size, as the
    reference writer does, so every tensor is aligned when the header length is a multiple of 8."""
    order = sorted(TENSORS, key=lambda t: (-DTYPE_SIZE[t[1]], t[0]))
    header, data = {"__metadata__": METADATA}, b""
    for name, dtype, value in order:
        blob = raw_bytes(dtype, value)
        header[name] = {"dtype": dtype, "shape": shape_of(value), "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    return header, data


def raw_header(text, data=b""):
    """A file whose header is exactly the given bytes (JSON the writer could not produce)."""
    return struct.pack("<Q", len(text)) + text + data


def tensor_file(entries, data=b"\0" * 64):
    """A small file from raw header entries (for corrupt headers)."""
    return pack(entries, data)


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    header, data = valid_layout()
    files = {}
    valid = pack(header, data)
    natural = struct.unpack("<Q", valid[:8])[0]
    files["valid.safetensors"] = valid
    # Header lengths 0x280..0x580 begin with the bytes of a pickle PROTO opcode (0x80, 2..5).
    lookalike = next(size for size in (0x280, 0x380, 0x480, 0x580) if size >= natural)
    files["pickle_lookalike.safetensors"] = pack(header, data, lookalike)
    files["unaligned.safetensors"] = pack(header, data, natural + 2)

    # name -> (file bytes, status name, fragments the message must contain besides the file name)
    corrupt = {}

    def bad(name, content, status, *fragments):
        corrupt[name] = (content, status, list(fragments))

    last = max((h for h in header.values() if "data_offsets" in h), key=lambda h: h["data_offsets"][1])
    cut = 2  # bytes removed from the end: only the last tensor loses data
    running_past = [n for n, h in header.items() if n != "__metadata__" and h["data_offsets"][1] > len(data) - cut]
    assert len(running_past) == 1 and header[running_past[0]] is last
    bad("truncated_data.safetensors", valid[:-cut], "corrupt_file", running_past[0], "past the data section")
    bad("truncated_header.safetensors", valid[:8 + natural // 2], "corrupt_file", "header length")
    bad("header_length_past_end.safetensors", struct.pack("<Q", len(valid) - 7) + valid[8:], "corrupt_file",
        "header length")
    bad("huge_header_length.safetensors", struct.pack("<Q", 2**64 - 16) + valid[8:], "corrupt_file",
        "header length 18446744073709551600")
    bad("empty.safetensors", b"", "corrupt_file", "not a checkpoint")
    bad("short.safetensors", b"\x02\0\0\0{", "corrupt_file", "not a checkpoint")
    bad("garbage.safetensors", b"GIF89a this is not a checkpoint at all\n" * 3, "corrupt_file", "not a checkpoint")
    bad("bad_json.safetensors", raw_header(b'{"w": {"dtype": "F32",   '), "corrupt_file", "not valid JSON")
    bad("header_not_object.safetensors", raw_header(b"[1, 2]  "), "corrupt_file")
    bad("deep_nesting.safetensors", raw_header(b'{"w":' + b"[" * 3000 + b"]" * 3000 + b"}"), "corrupt_file",
        "not valid JSON")
    bad("invalid_utf8.safetensors", raw_header(b'{"\xff":1}'), "corrupt_file", "not valid JSON")
    bad("duplicate_tensor.safetensors", raw_header(b'{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                                                   b'"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"\0\0"),
        "corrupt_file", "not valid JSON")

    def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
        return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}

    bad("entry_not_object.safetensors", tensor_file({"w": 5}), "corrupt_file", "tensor w", "not an object")
    bad("missing_data_offsets.safetensors", tensor_file({"w": {"dtype": "F32", "shape": [2]}}), "corrupt_file",
        "tensor w", "data_offsets")
    bad("missing_dtype.safetensors", tensor_file({"w": {"shape": [2], "data_offsets": [0, 8]}}), "corrupt_file",
        "tensor w", "dtype")
    bad("offsets_out_of_range.safetensors", tensor_file({"a": entry(), "w": entry(offsets=(8, 72))}),
        "corrupt_file", "tensor w", "past the data section")
    bad("offsets_huge.safetensors", tensor_file({"w": entry(shape=(2**61 - 1,), offsets=(0, 2**63 - 4))}),
        "corrupt_file", "tensor w", "past the data section")
    bad("offsets_not_pair.safetensors", tensor_file({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}),
        "corrupt_file", "tensor w", "data_offsets")
    bad("offsets_float.safetensors",
        tensor_file({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0.0, 8.0]}}), "corrupt_file",
        "tensor w", "data_offsets")
    bad("offsets_negative.safetensors", tensor_file({"w": entry(offsets=(-8, 0))}), "corrupt_file", "tensor w",
        "data_offsets")
    bad("overlapping.safetensors",
        tensor_file({"a": entry(shape=(4,), offsets=(0, 16)), "b": entry(shape=(4,), offsets=(32, 48)),
                     "c": entry(shape=(6,), offsets=(24, 48))}), "corrupt_file", "c", "b", "overlap")
    bad("overlap_contained.safetensors",
        tensor_file({"big": entry(shape=(8,), offsets=(0, 32)), "inner": entry(shape=(1,), offsets=(8, 12))}),
        "corrupt_file", "big", "inner", "overlap")
    bad("end_before_begin.safetensors", tensor_file({"w": entry(offsets=(16, 8))}), "corrupt_file", "tensor w",
        "before begin")
    bad("size_mismatch.safetensors", tensor_file({"w": entry(shape=(3,), offsets=(0, 8))}), "corrupt_file",
        "tensor w", "8 bytes", "12 bytes")
    bad("size_not_multiple.safetensors", tensor_file({"w": entry(dtype="F16", shape=(2,), offsets=(0, 5))}),
        "corrupt_file", "tensor w", "5 bytes")
    bad("unknown_dtype.safetensors", tensor_file({"w": entry(dtype="Q7")}), "corrupt_file", "tensor w",
        "unknown dtype", "Q7")
    bad("unsupported_dtype.safetensors", tensor_file({"w": entry(dtype="U32")}), "unsupported", "tensor w", "U32")
    bad("dtype_number.safetensors", tensor_file({"w": entry(dtype=0)}), "corrupt_file", "tensor w", "dtype")
    bad("negative_shape.safetensors", tensor_file({"w": entry(shape=(-1, 2))}), "corrupt_file", "tensor w",
        "shape[0]")
    bad("shape_not_array.safetensors", tensor_file({"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}}),
        "corrupt_file", "tensor w", "shape")
    bad("shape_overflow.safetensors", tensor_file({"w": entry(shape=(2**32, 2**32, 2**32), offsets=(0, 0))}),
        "corrupt_file", "tensor w", "overflows")
    bad("shape_zero_product_with_bytes.safetensors", tensor_file({"w": entry(shape=(0, 2**62), offsets=(0, 8))}),
        "corrupt_file", "tensor w", "8 bytes")
    bad("too_many_dims.safetensors", tensor_file({"w": entry(shape=(1,) * 9, offsets=(0, 4))}), "corrupt_file",
        "tensor w", "9 dimensions")
    bad("metadata_not_object.safetensors", tensor_file({"__metadata__": "x", "w": entry()}), "corrupt_file",
        "__metadata__")
    bad("metadata_not_string.safetensors", tensor_file({"__metadata__": {"epoch": 3}, "w": entry()}),
        "corrupt_file", "epoch")

    for name, content in files.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(content)
    for name, (content, _, _) in corrupt.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(content)

    expected = {
        "valid_files": sorted(files),
        "aligned_files": ["valid.safetensors", "pickle_lookalike.safetensors"],
        "metadata": METADATA,
        "tensors": {name: expected_entry(dtype, value) for name, dtype, value in TENSORS},
        "corrupt": [{"file": name, "status": status, "contains": fragments}
                    for name, (_, status, fragments) in sorted(corrupt.items())],
    }
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/checkpoint/safetensors")
