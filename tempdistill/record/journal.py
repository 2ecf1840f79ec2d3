"""An append-only log of records, each a small JSON entry and some numpy arrays, that a
process killed at any instant leaves readable up to its last complete record.

A record is one ``write`` at the end of the file: a fixed header (magic, payload length,
CRC-32 of the payload), then the payload (the JSON entry with each array's dtype and shape,
then the arrays' bytes). Appending costs the record's own bytes, whatever the log already
holds. A record cut short (the writer killed mid-write, a full disk) fails its length or CRC
check and ends the log for readers; a writer that sees its own write fail truncates the log
back to where the record began, so the next record follows the last complete one.

Data a process has written survives that process's death (it is in the operating system's
page cache); it is not forced to the disk (no ``fsync``), so a power cut may lose the last
records, as it may lose any recently written file.

Only numeric and boolean arrays are stored, and entries are JSON: reading a log never runs
code from it (no pickle).
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

_MAGIC = b"TDJ1"
_HEADER = struct.Struct("<4sII")  # magic, payload length, CRC-32 of the payload
_ENTRY_LENGTH = struct.Struct("<I")

Record = Tuple[Dict[str, Any], List[np.ndarray]]


class Journal:
    """The writing end of one log at ``path`` (created by the first ``append``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.end = 0  # bytes of complete records written by this object

    def append(self, entry: Mapping[str, Any], arrays: Sequence[np.ndarray] = ()) -> None:
        """Write one record after the last complete one; on any failure cut the log back."""
        record = encode(entry, arrays)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        try:
            os.lseek(fd, self.end, os.SEEK_SET)
            view = memoryview(record)
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            try:
                os.ftruncate(fd, self.end)
            except OSError:
                pass  # the torn record still ends the log for readers, as a crash would
            raise
        finally:
            os.close(fd)
        self.end += len(record)


def encode(entry: Mapping[str, Any], arrays: Sequence[np.ndarray] = ()) -> bytes:
    """One record: header, then the JSON entry (with the arrays' dtypes and shapes) and bytes."""
    arrays = [np.ascontiguousarray(a) for a in arrays]
    for array in arrays:
        if array.dtype.kind not in "biuf":
            raise TypeError(f"journal arrays must be numeric or boolean, got dtype {array.dtype}")
    meta = {"entry": dict(entry), "arrays": [[a.dtype.str, list(a.shape)] for a in arrays]}
    meta = json.dumps(meta, separators=(",", ":")).encode()
    payload = b"".join([_ENTRY_LENGTH.pack(len(meta)), meta, *(a.tobytes() for a in arrays)])
    return _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


def read(path: Path) -> List[Record]:
    """Every complete record of the log at ``path``, in order (none if there is no log).

    Reading stops at the first record that is cut short or fails its CRC: the write that a
    crash interrupted. A complete record that does not decode is an error, not a crash.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records: List[Record] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        magic, length, crc = _HEADER.unpack_from(data, offset)
        start, stop = offset + _HEADER.size, offset + _HEADER.size + length
        if magic != _MAGIC or stop > len(data) or zlib.crc32(data[start:stop]) != crc:
            break
        records.append(_decode(memoryview(data)[start:stop], path))
        offset = stop
    return records


def _decode(payload: memoryview, path: Path) -> Record:
    (meta_length,) = _ENTRY_LENGTH.unpack_from(payload)
    at = _ENTRY_LENGTH.size + meta_length
    try:
        meta = json.loads(bytes(payload[_ENTRY_LENGTH.size : at]))
        arrays = []
        for dtype_text, shape in meta["arrays"]:
            dtype = np.dtype(dtype_text)
            if dtype.kind not in "biuf":
                raise TypeError(f"dtype {dtype}")
            count = math.prod(shape)
            arrays.append(np.frombuffer(payload, dtype=dtype, count=count, offset=at).reshape(shape))
            at += count * dtype.itemsize
        if at != len(payload):
            raise ValueError(f"{len(payload) - at} bytes left over")
        return meta["entry"], arrays
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: a complete journal record does not decode ({exc})") from None
