"""A strict reader of IDX files (LeCun's MNIST format, also Fashion-MNIST's), gzip-compressed or not.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the values in row-major order, big-endian. The dtype byte is one of
0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.

The reader checks the magic number, the dtype and the dimensions against the file's size
before reading any value: the body must hold exactly prod(dims)·itemsize bytes, no more and
no fewer (for a ``.gz`` file, the decompressed stream is read up to that size and one byte
further, so a header that claims gigabytes is refused after reading what the file holds, and
never allocates what it claims). Every fault is one ``IdxError`` line naming the file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import BinaryIO, Optional, Tuple

import numpy as np

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# Far above any IDX data set (Fashion-MNIST's training images are 47 MB); a header claiming more
# is damaged, and is refused before anything is allocated.
MAX_IDX_BYTES = 1 << 31


class IdxError(ValueError):
    """A file that is not a well-formed IDX file; the message is one line naming the file."""


def read_idx(path: str | Path, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """The array an IDX file holds, in native byte order (``.gz`` read through gzip)."""
    path = Path(path)
    try:
        raw: BinaryIO = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
        with raw:
            return _read(raw, path, max_bytes, None if path.suffix == ".gz" else path.stat().st_size)
    except (OSError, EOFError, zlib.error) as exc:  # gzip: BadGzipFile, CRC, truncated stream
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IdxError(f"{path}: not a readable IDX file ({reason})") from None


def _read(stream: BinaryIO, path: Path, max_bytes: int, file_size: Optional[int]) -> np.ndarray:
    magic = stream.read(4)
    if len(magic) < 4 or magic[:2] != b"\x00\x00":
        raise IdxError(f"{path}: not an IDX file (magic number {magic.hex() or 'missing'}, expected 0000 then "
                       "dtype and rank bytes)")
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise IdxError(f"{path}: unknown IDX dtype byte 0x{code:02x}; known: "
                       f"{', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}")
    if ndim == 0:
        raise IdxError(f"{path}: IDX header declares 0 dimensions")
    header = stream.read(4 * ndim)
    if len(header) < 4 * ndim:
        raise IdxError(f"{path}: truncated IDX header ({ndim} dimensions declared)")
    shape: Tuple[int, ...] = tuple(int(d) for d in np.frombuffer(header, dtype=">u4"))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if expected > max_bytes:
        raise IdxError(f"{path}: IDX header declares shape {shape} ({expected} bytes), more than the "
                       f"{max_bytes} bytes allowed")
    if file_size is not None and file_size != 4 + 4 * ndim + expected:
        what = "truncated" if file_size < 4 + 4 * ndim + expected else "holds more bytes than its header declares"
        raise IdxError(f"{path}: {what}: IDX header declares shape {shape} ({4 + 4 * ndim + expected} bytes with "
                       f"the header), the file has {file_size} bytes")
    body = stream.read(expected)
    if len(body) != expected:
        raise IdxError(f"{path}: truncated: IDX header declares shape {shape} ({expected} bytes of values), "
                       f"the file holds {len(body)}")
    if stream.read(1):
        raise IdxError(f"{path}: holds more bytes than its header declares (shape {shape})")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``); for tests
    and for users who make their own files in the format."""
    path = Path(path)
    codes = {np.dtype(v).newbyteorder("=").str: k for k, v in IDX_DTYPES.items()}
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=").str
    if native not in codes:
        raise ValueError(f"IDX has no dtype for {array.dtype}")
    code = codes[native]
    data = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data += np.ascontiguousarray(array).astype(IDX_DTYPES[code]).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(data)
    return path
