"""Reader of IDX files, the format of the MNIST distribution (idx3-ubyte images, idx1-ubyte labels).

Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64), the number of dimensions, one big-endian uint32 per dimension, then the data in
big-endian row-major order. Gzip-compressed files are recognised by their first two bytes.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import BinaryIO

import numpy as np

IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class IdxError(ValueError):
    """A file that is not a well-formed IDX file; the message names the file and what was expected."""


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """The array stored in the IDX file `path` (gzip or not); `ndim` checks its number of dimensions.

    Gzip data is decompressed as a stream and never beyond the size the header declares (plus one
    byte, to tell a file longer than its header), so a small file cannot expand without bound.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw_handle:
            compressed = raw_handle.read(2) == b"\x1f\x8b"
            raw_handle.seek(0)
            handle = gzip.GzipFile(fileobj=raw_handle) if compressed else raw_handle
            return _read_stream(handle, str(path), ndim)
    except OSError as error:
        if isinstance(error, gzip.BadGzipFile) or error.errno is None:
            raise IdxError(f"{str(path)!r}: corrupt or truncated gzip data ({error})") from None
        raise IdxError(f"cannot read IDX file {str(path)!r}: {error.strerror or error}") from None
    except EOFError as error:
        raise IdxError(f"{str(path)!r}: corrupt or truncated gzip data ({error})") from None


def _read_stream(handle: BinaryIO, name: str, ndim: int | None) -> np.ndarray:
    magic = handle.read(4)
    if len(magic) < 4:
        raise IdxError(f"{name!r}: {len(magic)} bytes, too short for the 4-byte IDX magic number")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_TYPES:
        raise IdxError(f"{name!r}: magic number {magic.hex()} is not IDX: expected 0000 followed by a "
                       f"type code ({', '.join(f'{c:02x}' for c in IDX_TYPES)}) and a dimension count")
    dtype, dims = IDX_TYPES[magic[2]], magic[3]
    if ndim is not None and dims != ndim:
        raise IdxError(f"{name!r}: an IDX file with {dims} dimension(s); expected {ndim} "
                       f"({'images (n, rows, cols)' if ndim == 3 else 'labels (n,)' if ndim == 1 else ''})")
    sizes = handle.read(4 * dims)
    if len(sizes) < 4 * dims:
        raise IdxError(f"{name!r}: truncated header: {dims} dimensions need {4 + 4 * dims} bytes, "
                       f"file has {4 + len(sizes)}")
    shape = tuple(int.from_bytes(sizes[4 * i: 4 * i + 4], "big") for i in range(dims))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = handle.read(expected + 1)   # one byte more: a longer file is refused, without reading it all
    if len(body) != expected:
        what = "truncated" if len(body) < expected else "longer than its header says"
        found = f"{len(body)}" if len(body) <= expected else f"more than {expected}"
        raise IdxError(f"{name!r}: {what}: shape {shape} of {dtype.name} needs {expected} data bytes, "
                       f"found {found}")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, compress: bool = False) -> None:
    """Write `array` as an IDX file (gzip-compressed if `compress`); the inverse of read_idx."""
    native = np.asarray(array)
    code = next((c for c, t in IDX_TYPES.items()
                 if t.kind == native.dtype.kind and t.itemsize == native.dtype.itemsize), None)
    if code is None:
        raise ValueError(f"array dtype {native.dtype}: IDX stores only "
                         f"{', '.join(t.name for t in IDX_TYPES.values())}")
    header = bytes([0, 0, code, native.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in native.shape)
    data = header + native.astype(IDX_TYPES[code]).tobytes()
    Path(path).write_bytes(gzip.compress(data) if compress else data)
