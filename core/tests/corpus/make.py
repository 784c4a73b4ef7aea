#!/usr/bin/env python3
"""Writes the regression corpus of core/tests/fuzz.rs: crafted nasty inputs with the outcome
each must have (`<file>.expect`: `ok`, `ok N` or `error: <substring>`). The files are checked
in; this script documents how they were made and re-creates them (python3, no packages):

    python3 core/tests/corpus/make.py
"""

import json
import os
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))


def put(kind, name, data, expect):
    folder = os.path.join(ROOT, kind)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)
    with open(os.path.join(folder, name + ".expect"), "w") as f:
        f.write(expect + "\n")


# --- interaction files (read_interactions, format detected) ---
I = "interactions"
put(I, "latin1.data", b"1\t10\t5\t100\n1\tcaf\xe9\t3\t101\n", "error: :2: not valid UTF-8 (byte 0xE9 at column 6)")
put(I, "utf16le.data", "1 2 3 4\n".encode("utf-16"), "error: :1: not valid UTF-8 (byte 0xFF at column 1)")
put(I, "overlong-utf8.data", b"1 \xc0\xaf 3 4\n", "error: not valid UTF-8 (byte 0xC0 at column 3)")
put(I, "surrogate-utf8.data", b"1 2 3 4\n2 \xed\xa0\x80 3 4\n", "error: :2: not valid UTF-8 (byte 0xED")
put(I, "bom.data", "\ufeff1\t10\t5\t100\n1\t11\t5\t101\n2\t10\t3\t50\n", "ok 3")
put(I, "crlf.data", "1 10 5 100\r\n1 11 5 101\r\n2 10 3 50\r\n", "ok 3")
put(I, "cr-only.data", "1 10 5 100\r1 11 5 101\r", "error: cannot detect the format from 8 fields")
put(I, "nul-in-id.data", b"1\x002 3 4 5\n", "ok 1")
put(I, "header.data", "user item rating timestamp\n1 2 5 100\n", "error: :1: rating 'rating' is not a number")
put(I, "comments-only.data", "# exported\n#\n\n", "error: no interactions found")
put(I, "empty.data", "", "error: no interactions found")
put(I, "whitespace-only.data", " \t \n\t\n   \n", "error: no interactions found")
put(I, "five-fields.data", "1 2 3 4 5\n", "error: cannot detect the format from 5 fields")
put(I, "mixed-field-counts.data", "1 2 3 4\n1 3\n", "error: :2: expected 4 fields for the movielens format, found 2")
put(I, "inline-hash.data", "1 2 3 4 # a comment\n", "error: cannot detect the format from 7 fields")
put(I, "timestamp-overflow.data", "1 2 3 99999999999999999999\n", "error: timestamp '99999999999999999999' is not an integer")
put(I, "timestamp-fraction.data", "1 2 3 4.0\n", "error: timestamp '4.0' is not an integer")
put(I, "negative-timestamps.data", "1 2 3 -5\n1 3 3 -9223372036854775808\n", "ok 2")
put(I, "rating-nan-inf.data", "1 2 NaN 4\n1 3 -inf 5\n1 4 1e999 6\n", "ok 3")
put(I, "numeric-spellings.data", "7 1 1 1\n07 1 1 2\n+7 1 1 3\n007 2 1 4\n", "ok 4")
put(I, "nbsp-separated.data", "1\u00a02\u00a03\u00a04\n", "ok 1")
put(I, "ideographic-space.data", "用户\u3000物品\u30005\u30001\n", "ok 1")
put(I, "emoji-ids.data", "\U0001F600 \U0001F4A9 1\n\U0001F600 x 2\n", "ok 2")
put(I, "long-id.data", "u" * 10000 + " 2 3 4\n", "ok 1")
put(I, "trailing-blanks.data", "1\t2\t3\t4\t \t\n\n\n1 3 3 5   \n", "ok 2")
put(I, "sasrec.data", "a b\nb c\n", "ok 2")
put(I, "caser.data", "1 2 1.0\n1 3 0.5\n", "ok 2")
put(I, "no-final-newline.data", "1 2 3 4\n1 3 3 5", "ok 2")
put(I, "one-field.data", "12345\n", "error: cannot detect the format from 1 fields")

# --- manifests (read_manifest) ---
M = "manifests"
base = {
    "format_version": 1,
    "model": {
        "kind": "caser", "dim": 2, "num_users": 1, "num_items": 2, "sequence_length": 2,
        "nv": 2, "nh": 1, "dropout": 0.5, "conv_activation": "identity", "fc_activation": "sigmoid",
    },
    "data": {"path": "corpus", "fingerprint": "fp"},
    "num_parameters": 0,
    "version": "0000000000000000",
    "training": None,
    "metrics": None,
    "items": ["a", "b"],
}


def manifest(name, expect, model=None, **top):
    m = json.loads(json.dumps(base))
    m["model"].update(model or {})
    m.update(top)
    put(M, name, json.dumps(m), expect)


manifest("valid.json", "ok")
manifest("dim-i64-max.json", "error: dim 9223372036854775807 is too large", {"dim": 2**63 - 1})
manifest("items-u32-max.json", "error: num_items 4294967295 is too large", {"num_items": 2**32 - 1}, items=[])
manifest("shape-overflow.json", "error: needs more than 68719476736 parameters", {"dim": 2**31, "nh": 2**31, "sequence_length": 4096})
manifest("shape-huge-but-no-overflow.json", "error: needs more than 68719476736 parameters", {"dim": 1 << 20, "num_items": 1 << 20}, items=[])
manifest("sequence-length-4097.json", "error: sequence_length 4097 is too large (at most 4096)", {"sequence_length": 4097})
manifest("negative-items.json", "error: dim, num_users and num_items must be positive", {"num_items": -2}, items=[])
manifest("nv-nh-zero.json", "error: at least one vertical or horizontal filter", {"nv": 0, "nh": 0})
manifest("nv-negative.json", "error: Caser needs L >= 1", {"nv": -1})
manifest("dropout-one.json", "error: dropout must be in [0, 1)", {"dropout": 1.0})
manifest("kind-uppercase.json", "error: unknown variant `MF`", {"kind": "MF"})
manifest("dim-string.json", "error: invalid type: string", {"dim": "2"})
manifest("dim-float.json", "error: invalid type: floating point", {"dim": 2.5})
manifest("format-version-0.json", "error: format version 0 is not supported", format_version=0)
manifest("format-version-negative.json", "error: not an artifact manifest", format_version=-1)
manifest("duplicate-items.json", "error: item map holds the id 'a' twice (dense 0 and 1)", items=["a", "a"])
manifest("duplicate-users.json", "error: user map holds the id 'u' twice", {"num_users": 2}, users=["u", "u"])
manifest("item-map-short.json", "error: item map has 1 ids but the model has 2 items", items=["a"])
manifest("mf-huge-users.json", "error: num_users 4294967296 is too large", {"kind": "mf", "num_users": 2**32})
deep = {"x": None}
for _ in range(300):
    deep = [deep]
manifest("deeply-nested.json", "error: recursion limit exceeded", training=deep)
put(M, "nan-literal.json", json.dumps(base).replace('"dropout": 0.5', '"dropout": NaN'), "error: not an artifact manifest")
put(M, "bom.json", "\ufeff" + json.dumps(base), "error: not an artifact manifest")
put(M, "empty.json", "", "error: EOF while parsing")
put(M, "truncated.json", json.dumps(base)[:60], "error: EOF while parsing")
put(M, "not-json.json", b"\x00\x01\x02PK\x03\x04", "error: not an artifact manifest")

# --- safetensors weights (artifact::load with the manifest above, version = their hash) ---
S = "safetensors"
SHAPES = {
    "user_embeddings.weight": [1, 2], "item_embeddings.weight": [3, 2],
    "conv_v.weight": [2, 1, 2, 1], "conv_v.bias": [2],
    "conv_h.0.weight": [1, 1, 1, 2], "conv_h.0.bias": [1],
    "conv_h.1.weight": [1, 1, 2, 2], "conv_h.1.bias": [1],
    "fc1.weight": [2, 6], "fc1.bias": [2], "W2.weight": [3, 4], "b2.weight": [3, 1],
}


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def safetensors(tensors, header_edit=None, raw_header=None, metadata=None):
    """tensors: name -> (dtype, shape, bytes)."""
    header, data = {}, b""
    for name in sorted(tensors):
        dtype, shape, blob = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    if metadata is not None:
        header["__metadata__"] = metadata
    if header_edit:
        header_edit(header)
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def good(**override):
    t = {n: ("F32", s, f32([0.25] * numel(s))) for n, s in SHAPES.items()}
    t.update(override)
    return t


put(S, "valid.safetensors", safetensors(good()), "ok 12")
put(S, "with-metadata.safetensors", safetensors(good(), metadata={"format": "pt"}), "ok 12")
put(S, "nan.safetensors", safetensors(good(**{"W2.weight": ("F32", [3, 4], f32([0.0] * 5 + [float("nan")] + [0.0] * 6))})), "error: tensor 'W2.weight' holds NaN or infinite values (element 5 is NaN)")
put(S, "inf.safetensors", safetensors(good(**{"fc1.bias": ("F32", [2], f32([1.0, float("-inf")]))})), "error: tensor 'fc1.bias' holds NaN or infinite values (element 1 is -inf)")
put(S, "f64.safetensors", safetensors(good(**{"fc1.bias": ("F64", [2], struct.pack("<2d", 1.0, 2.0))})), "error: tensor 'fc1.bias' is F64, expected F32")
put(S, "scalar-shape.safetensors", safetensors(good(**{"conv_h.0.bias": ("F32", [], f32([1.0]))})), "error: tensor 'conv_h.0.bias' has shape []")
put(S, "transposed.safetensors", safetensors(good(**{"W2.weight": ("F32", [4, 3], f32([0.0] * 12))})), "error: tensor 'W2.weight' has shape [4, 3]")
t = good()
del t["b2.weight"]
put(S, "missing-tensor.safetensors", safetensors(t), "error: missing tensor 'b2.weight'")
put(S, "extra-tensor.safetensors", safetensors(good(**{"item_bias.weight": ("F32", [3, 1], f32([0.0] * 3))})), "error: unexpected tensor 'item_bias.weight'")
put(S, "empty.safetensors", b"", "error: not a safetensors file")
put(S, "header-length-huge.safetensors", struct.pack("<Q", 2**64 - 1) + b"{}", "error: not a safetensors file")
put(S, "header-length-past-end.safetensors", struct.pack("<Q", 4096) + b'{"a":1}', "error: not a safetensors file")
put(S, "header-not-json.safetensors", safetensors(good(), raw_header=b"this is not json"), "error: not a safetensors file")
put(S, "header-not-utf8.safetensors", safetensors(good(), raw_header=b'{"\xff": 1}'), "error: not a safetensors file")


def offsets_past_end(h):
    h["W2.weight"]["data_offsets"][1] += 1 << 20


def overlapping(h):
    h["fc1.bias"]["data_offsets"] = list(h["W2.weight"]["data_offsets"])


def shape_overflow(h):
    h["user_embeddings.weight"]["shape"] = [2**32, 2**32, 2**32]


def size_mismatch(h):
    h["b2.weight"]["shape"] = [3, 2]


put(S, "offsets-past-end.safetensors", safetensors(good(), header_edit=offsets_past_end), "error: not a safetensors file")
put(S, "overlapping-offsets.safetensors", safetensors(good(), header_edit=overlapping), "error: not a safetensors file")
put(S, "shape-overflow.safetensors", safetensors(good(), header_edit=shape_overflow), "error: not a safetensors file")
put(S, "shape-size-mismatch.safetensors", safetensors(good(), header_edit=size_mismatch), "error: not a safetensors file")
put(S, "truncated-data.safetensors", safetensors(good())[:-7], "error: not a safetensors file")
put(S, "metadata-not-strings.safetensors", safetensors(good(), metadata={"epochs": 3}), "error: not a safetensors file")
