"""Minimal GGUF (version 3, little-endian) writer and reader.

Only what the probe model needs: scalar/string/array metadata and F32/F16 tensors.
Layout (ggml's gguf.md): header, metadata KVs, tensor infos, padding to general.alignment,
then the tensor data, each tensor starting at an aligned offset relative to the data start.
Tensor shapes are written in ggml order: ne[0] is the contiguous (fastest-varying) dimension,
so a row-major numpy array of shape (rows, cols) is written as ne = [cols, rows].
"""
import struct

import numpy as np

GGUF_MAGIC = b"GGUF"
# Metadata value types.
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
_SCALAR = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i",
           T_F32: "<f", T_BOOL: "<?", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}
# ggml tensor types we use.
GGML_F32, GGML_F16 = 0, 1
_GGML_NP = {GGML_F32: np.float32, GGML_F16: np.float16}


def _str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


class Writer:
    """Collects typed metadata and tensors, then writes one GGUF v3 file."""

    def __init__(self, alignment=32):
        self.alignment = alignment
        self.kv = []  # (key, type, value, elem_type)
        self.tensors = []  # (name, np.ndarray in row-major, ggml type)

    def add(self, key, vtype, value, elem_type=None):
        self.kv.append((key, vtype, value, elem_type))

    def add_tensor(self, name, array, ggml_type):
        self.tensors.append((name, np.ascontiguousarray(array, dtype=_GGML_NP[ggml_type]), ggml_type))

    @staticmethod
    def _value(vtype, value, elem_type):
        if vtype == T_STR:
            return _str(value)
        if vtype == T_ARR:
            out = struct.pack("<IQ", elem_type, len(value))
            if elem_type == T_STR:
                return out + b"".join(_str(v) for v in value)
            return out + np.asarray(value, dtype=np.dtype(_SCALAR[elem_type])).tobytes()
        return struct.pack(_SCALAR[vtype], value)

    def write(self, path):
        a = self.alignment
        out = bytearray()
        out += GGUF_MAGIC + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))
        for key, vtype, value, elem_type in self.kv:
            out += _str(key) + struct.pack("<I", vtype) + self._value(vtype, value, elem_type)
        offset = 0
        offsets = []
        for name, arr, gtype in self.tensors:
            ne = list(reversed(arr.shape))  # ggml order: contiguous dimension first
            out += _str(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
            out += struct.pack("<IQ", gtype, offset)
            offsets.append(offset)
            offset += arr.nbytes
            offset += (-offset) % a
        out += b"\0" * ((-len(out)) % a)
        data_start = len(out)
        for (name, arr, gtype), off in zip(self.tensors, offsets):
            out += b"\0" * (data_start + off - len(out))
            out += arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        with open(path, "wb") as f:
            f.write(out)
        return len(out)


class Reader:
    """Parses a GGUF v2/v3 file: .version, .kv {key: value}, .kv_types, .tensors {name: array}.

    Tensor arrays come back row-major with numpy shape = reversed(ne), i.e. a ggml tensor
    with ne = [in, out] is returned as an (out, in) array.
    """

    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        if self.buf[:4] != GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file (magic {self.buf[:4]!r})")
        self.pos = 4
        self.version = self._u("<I")
        if self.version not in (2, 3):
            raise ValueError(f"{path}: unsupported GGUF version {self.version}")
        n_tensors, n_kv = self._u("<Q"), self._u("<Q")
        self.kv, self.kv_types = {}, {}
        for _ in range(n_kv):
            key = self._s()
            vtype = self._u("<I")
            val, etype = self._val(vtype)
            self.kv[key] = val
            self.kv_types[key] = (vtype, etype)
        self.infos = []
        for _ in range(n_tensors):
            name = self._s()
            nd = self._u("<I")
            ne = [self._u("<Q") for _ in range(nd)]
            gtype, off = self._u("<I"), self._u("<Q")
            self.infos.append((name, ne, gtype, off))
        align = self.kv.get("general.alignment", 32)
        self.data_start = self.pos + ((-self.pos) % align)
        self.tensors, self.tensor_types = {}, {}
        for name, ne, gtype, off in self.infos:
            if gtype not in _GGML_NP:
                raise ValueError(f"{path}: tensor {name} has ggml type {gtype}; only F32/F16 read here")
            dt = np.dtype(_GGML_NP[gtype]).newbyteorder("<")
            count = int(np.prod(ne))
            start = self.data_start + off
            arr = np.frombuffer(self.buf, dtype=dt, count=count, offset=start)
            self.tensors[name] = arr.reshape(list(reversed(ne)))
            self.tensor_types[name] = gtype

    def _u(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def _s(self):
        n = self._u("<Q")
        s = self.buf[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def _val(self, vtype):
        if vtype == T_STR:
            return self._s(), None
        if vtype == T_ARR:
            etype, n = self._u("<I"), self._u("<Q")
            if etype == T_STR:
                return [self._s() for _ in range(n)], etype
            dt = np.dtype(_SCALAR[etype])
            arr = np.frombuffer(self.buf, dtype=dt, count=n, offset=self.pos)
            self.pos += n * dt.itemsize
            return arr.tolist(), etype
        return self._u(_SCALAR[vtype]), None
