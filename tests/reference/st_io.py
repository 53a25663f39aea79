"""Minimal safetensors reader/writer with numpy (the `safetensors` package is not installed).

Format: 8-byte little-endian header length n, n bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the raw little-endian data; offsets are relative to the end of the header.
"""
import json
import struct

import numpy as np

DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I32": np.dtype("<i4"),
          "I64": np.dtype("<i8"), "U8": np.dtype("u1"), "BOOL": np.dtype("u1"),
          "F16": np.dtype("<f2"), "I8": np.dtype("i1"), "I16": np.dtype("<i2")}
NAMES = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i4"): "I32",
         np.dtype("<i8"): "I64", np.dtype("u1"): "U8"}


class SafetensorsError(Exception):
    pass


def read_safetensors(path):
    """Returns (tensors {name: np.ndarray}, metadata {str: str}). Validates the layout."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise SafetensorsError(f"{path}: file too short ({len(blob)} bytes) for a header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise SafetensorsError(f"{path}: header length {n} exceeds file size {len(blob)}")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not valid JSON: {e}")
    data = memoryview(blob)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, ent in header.items():
        dt = ent.get("dtype")
        if dt not in DTYPES:
            raise SafetensorsError(f"{path}: tensor {name!r} has unsupported dtype {dt!r}")
        shape = tuple(int(s) for s in ent["shape"])
        b, e = ent["data_offsets"]
        if not (0 <= b <= e <= len(data)):
            raise SafetensorsError(f"{path}: tensor {name!r} offsets {b}..{e} outside data ({len(data)} bytes)")
        count = int(np.prod(shape)) if shape else 1
        if e - b != count * DTYPES[dt].itemsize:
            raise SafetensorsError(f"{path}: tensor {name!r} has {e - b} bytes, shape {shape} {dt} needs "
                                   f"{count * DTYPES[dt].itemsize}")
        arr = np.frombuffer(data[b:e], dtype=DTYPES[dt]).reshape(shape).copy()
        tensors[name] = arr
    return tensors, meta


def write_safetensors(path, tensors, metadata=None):
    header = {}
    off = 0
    chunks = []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if a.dtype == np.bool_:
            a = a.astype(np.uint8)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        dt = NAMES.get(np.dtype(a.dtype.str))
        if dt is None:
            raise SafetensorsError(f"cannot write dtype {a.dtype} for {name}")
        raw = a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        chunks.append(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)
