"""The one reader of arrays on the host: .npz and .npy files, and raw buffers with a dtype and shape.

Probe outputs pass through student code, so every array is checked from its header before a byte
of it is unpacked: `np.load` trusts the header, and a 2 MB .npz of deflated zeros that declares
2 GiB is read whole. Here the dtype must be on an allow-list (no pickles), the unpacked size fits a
cap per array and per file, and a zip member's declared size must agree with its header, so the
host never holds more than the caps. Whatever fails raises `ArrayRefused`, with a reason a student
or a TA can act on.

Accepted dtypes, either byte order: bool, signed and unsigned integers, float16/32/64, and
fixed-width strings (`U`, `S`: texts a model predicts for the character error rate, short
messages) under a smaller cap of their own. Refused: object (read by unpickling, which runs code),
void and structured (fields may hide objects, and no probe returns records), complex, datetime and
timedelta, long double (its layout depends on the platform), zero-width strings: plain numbers and
texts are all a rubric measures, so anything else is a mistake or an attack.

Why ZipExtFile can be read in bounded chunks (checked in CPython 3.11.7, zipfile.py): `ZipExtFile`
starts with `_left = zipinfo.file_size` (the size declared in the central directory) and `_read1`
cuts each decompressed piece to `data[:self._left]`, so no read returns more than the declared
size; for ZIP_DEFLATED, `_read1` calls `decompress(data, max(n, MIN_READ_SIZE))` and keeps the
unconsumed tail, so `read(n)` unpacks at most about n bytes at a time. That bound does not hold for
ZIP_BZIP2 and ZIP_LZMA (`decompress(data)` without a maximum), so only stored and deflated members
are read, and `read()` without a size is never called (it unpacks the whole declared size).
The CRC is checked only when a member is read to its end, so every member is read to its end.
numpy's `read_array_header_*` reads the whole header its length field declares (up to 4 GiB in
format 2.0) before comparing it with `max_header_size`, so the length is checked here first.
ZipFile parses its whole central directory into ZipInfo objects (several times its size in
memory), so the directory's size is capped before ZipFile opens the file.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np
from numpy.lib import format as npy

from autograder.labs.spec import human_size

MAX_ARRAY_BYTES = 256 * 1024**2  # one array, unpacked
MAX_TOTAL_BYTES = 256 * 1024**2  # all arrays read from one file, unpacked (as probe.MAX_OUTPUT_BYTES packed)
MAX_TEXT_BYTES = 16 * 1024**2  # one string array: 4 bytes a character, so 4 M characters
MAX_ARRAYS = 1000  # members of one .npz
MAX_HEADER_BYTES = 10_000  # of an .npy header; numpy's own default (format._MAX_HEADER_SIZE)
MAX_NDIM = 64  # numpy 2's NPY_MAXDIMS
MAX_DTYPE_CHARS = 64  # a dtype given as text, e.g. '<f4' in a JSON header
DIRECTORY_BYTES_PER_ARRAY = 1024  # central directory bytes allowed per member (an entry of savez is ~70)
TRAILING_SLACK = 4096  # bytes a file or member may hold after its array's data (np.save writes none)
CHUNK_BYTES = 1024**2  # read at a time, so the host holds the array plus one chunk

TEXT_KINDS = "US"
NUMBER_KINDS = "biuf"
FLOAT_SIZES = (2, 4, 8)
REFUSED_KINDS = {
    "O": "Python objects, which only unpickling reads, and unpickling runs code",
    "V": "records or raw bytes (a structured or void dtype)",
    "c": "complex numbers",
    "M": "dates",
    "m": "time spans",
    "T": "variable-width strings",
}
ACCEPTED = "numbers, booleans and fixed-width strings"


class ArrayRefused(ValueError):
    """An array, or the file holding it, that the host will not read: the message says which, what was
    found and which limit it broke."""


def check_header(dtype: np.dtype | str, shape: Iterable[int], *, max_array_bytes: int = MAX_ARRAY_BYTES,
                 max_text_bytes: int = MAX_TEXT_BYTES, name: str = "the array") -> int:
    """The unpacked size in bytes of an array with this dtype and shape, before anything is allocated;
    ArrayRefused when the dtype is not allowed or the size is over its cap. `dtype` may be a numpy
    dtype or its string ('<f4', '|u1', '<U12'), `shape` a tuple or a JSON list of whole numbers."""
    return _checked(dtype, shape, max_array_bytes, max_text_bytes, name)[2]


def array_from_bytes(dtype: np.dtype | str, shape: Iterable[int], data: bytes | bytearray | memoryview, *,
                     fortran_order: bool = False, max_array_bytes: int = MAX_ARRAY_BYTES,
                     max_text_bytes: int = MAX_TEXT_BYTES, name: str = "the array") -> np.ndarray:
    """The array of raw bytes sent with a header (dtype string and shape list), checked as `check_header`
    does and against the length of `data`. No copy: it shares `data`'s memory, so it is writable only
    when `data` is (a bytearray)."""
    dt, dims, nbytes = _checked(dtype, shape, max_array_bytes, max_text_bytes, name)
    got = memoryview(data).nbytes
    if got != nbytes:
        raise ArrayRefused(f"{name} holds {got:,} bytes, but its dtype {dt} and shape {dims} need {nbytes:,}")
    if nbytes == 0:
        return np.empty(dims, dtype=dt, order="F" if fortran_order else "C")
    flat = np.frombuffer(data, dtype=dt)
    return flat.reshape(dims[::-1]).T if fortran_order else flat.reshape(dims)


def load_npz(source: Path | str | bytes, *, keys: Iterable[str] | str | None = None,
             max_array_bytes: int = MAX_ARRAY_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES,
             max_text_bytes: int = MAX_TEXT_BYTES, max_arrays: int = MAX_ARRAYS) -> dict[str, np.ndarray]:
    """name -> array of an .npz (a path or its bytes), every member checked from its header first; only
    the named `keys` are read when given (those missing are left out). ArrayRefused for anything the
    host will not read, a broken zip included; OSError when the file cannot be opened."""
    with _open(source) as f:
        try:
            # What ZipFile itself reads first (private, but the very same record; typeshed leaves it out).
            end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
            if not end:
                raise ArrayRefused("the file is not an .npz (no zip directory at its end)")
            directory_bytes = end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
            if directory_bytes > max_arrays * DIRECTORY_BYTES_PER_ARRAY:
                raise ArrayRefused(f"the file's zip directory takes {_size(directory_bytes)}, "
                                   f"more than {max_arrays:,} arrays need")
            with zipfile.ZipFile(f) as z:
                wanted = None if keys is None else {keys} if isinstance(keys, str) else set(keys)
                return _members(z, wanted, max_array_bytes, max_total_bytes, max_text_bytes, max_arrays)
        except ArrayRefused:
            raise
        except (zipfile.BadZipFile, EOFError, zlib.error, RuntimeError, NotImplementedError, ValueError,
                struct.error, OverflowError, IndexError) as exc:  # what a malformed zip raises in zipfile
            raise ArrayRefused(f"the file is not a readable .npz: {exc}") from exc


def load_npy(source: Path | str | bytes, *, max_array_bytes: int = MAX_ARRAY_BYTES,
             max_text_bytes: int = MAX_TEXT_BYTES) -> np.ndarray:
    """The array of an .npy file (a path or its bytes), checked from its header first."""
    with _open(source) as f:
        size = f.seek(0, io.SEEK_END)
        f.seek(0)
        return _read_npy(f, size, "the array", max_array_bytes, max_text_bytes, max_array_bytes)


# --- the header, then the data --------------------------------------------------------------------------------


def _checked(dtype, shape, max_array_bytes: int, max_text_bytes: int, name: str) -> tuple[np.dtype, tuple, int]:
    dt = _dtype(dtype, name)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
        raise ArrayRefused(f"{name} has no valid shape ({_short(repr(shape))})")
    dims = tuple(shape)
    if len(dims) > MAX_NDIM or not all(isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_))
                                       and d >= 0 for d in dims):
        raise ArrayRefused(f"{name} has no valid shape ({_short(repr(dims))}): at most {MAX_NDIM} whole numbers, "
                           f"none negative")
    dims = tuple(int(d) for d in dims)
    nbytes = math.prod(dims) * dt.itemsize  # Python ints: a shape of 10**30 cannot overflow
    text = dt.kind in TEXT_KINDS
    cap = min(max_array_bytes, max_text_bytes) if text else max_array_bytes
    if nbytes > cap:
        raise ArrayRefused(f"{name} ({dt} of shape {_short(str(dims))}) would unpack to {_size(nbytes)}, "
                           f"more than the {_size(cap)} allowed for one {'string ' if text else ''}array")
    return dt, dims, nbytes


def _dtype(dtype, name: str) -> np.dtype:
    if isinstance(dtype, str) and len(dtype) <= MAX_DTYPE_CHARS:
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError, SyntaxError) as exc:
            raise ArrayRefused(f"{name} has an unknown dtype '{_short(dtype)}'") from exc
    elif isinstance(dtype, np.dtype):
        dt = dtype
    else:
        raise ArrayRefused(f"{name} has no valid dtype ({_short(repr(dtype))})")
    why = REFUSED_KINDS.get(dt.kind)
    if why is None and (dt.fields is not None or dt.subdtype is not None or dt.hasobject):
        why = REFUSED_KINDS["V"]
    elif why is None and dt.kind == "f" and dt.itemsize not in FLOAT_SIZES:
        why = f"{dt.itemsize * 8}-bit floats (long double), laid out differently on each platform"
    elif why is None and dt.kind not in NUMBER_KINDS + TEXT_KINDS:
        why = "values of an unknown kind"
    elif why is None and dt.itemsize == 0:
        why = "zero-width strings"
    if why:
        raise ArrayRefused(f"{name} has dtype {_short(str(dt))}: {why}; only {ACCEPTED} are accepted")
    return dt


def _members(z: zipfile.ZipFile, keys: set[str] | None, max_array_bytes: int, max_total_bytes: int,
             max_text_bytes: int, max_arrays: int) -> dict[str, np.ndarray]:
    infos = z.infolist()
    if len(infos) > max_arrays:
        raise ArrayRefused(f"the file holds {len(infos):,} entries, more than the {max_arrays:,} arrays allowed")
    names = [i.filename for i in infos]
    for n in names:
        if not n.endswith(".npy") or len(n) == 4:
            raise ArrayRefused(f"the file holds '{_short(n)}', which is not an array (.npy)")
    if len(set(names)) != len(names):
        raise ArrayRefused("the file holds two arrays of the same name")
    out: dict[str, np.ndarray] = {}
    used = 0
    for info in infos:
        name = info.filename[:-4]
        if keys is not None and name not in keys:
            continue
        label = f"array '{_short(name)}'"
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArrayRefused(f"{label} is packed with zip method {info.compress_type}; only stored and "
                               f"deflated arrays are read")
        if info.flag_bits & 0x1:
            raise ArrayRefused(f"{label} is encrypted")
        with z.open(info) as member:
            out[name] = _read_npy(member, info.file_size, label, max_array_bytes, max_text_bytes,
                                  max_total_bytes, used)
        used += out[name].nbytes
    return out


def _read_npy(f: IO[bytes], size: int, label: str, max_array_bytes: int, max_text_bytes: int,
              max_total_bytes: int, used: int = 0) -> np.ndarray:
    """The array `f` holds, `size` bytes in all by the zip's (or file system's) account: the header is
    read and checked, then the data, when the file already holds `used` bytes of arrays."""
    dt, dims, fortran, offset = _header(f, label)
    _, dims, nbytes = _checked(dt, dims, max_array_bytes, max_text_bytes, label)
    if used + nbytes > max_total_bytes:
        raise ArrayRefused(f"{label} ({_size(nbytes)}) would bring the arrays of the file to "
                           f"{_size(used + nbytes)}, more than the {_size(max_total_bytes)} "
                           f"allowed for one file")
    if not offset + nbytes <= size <= offset + nbytes + TRAILING_SLACK:
        raise ArrayRefused(f"{label} needs {offset + nbytes:,} bytes with its header ({dt} of shape "
                           f"{_short(str(dims))}), but the file gives it {size:,}")
    flat = np.empty(math.prod(dims), dtype=dt)
    raw = flat.view(np.uint8)
    done = 0
    while done < nbytes:
        chunk = f.read(min(CHUNK_BYTES, nbytes - done))
        if not chunk:
            raise ArrayRefused(f"{label} is cut short: {done:,} of its {nbytes:,} bytes are there")
        raw[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        done += len(chunk)
    f.read(TRAILING_SLACK + 1)  # to the end, where a zip member's CRC is checked; bounded by `size` above
    return flat.reshape(dims[::-1]).T if fortran else flat.reshape(dims)


def _header(f: IO[bytes], label: str) -> tuple[np.dtype, tuple, bool, int]:
    """(dtype, shape, fortran order, bytes before the data) of an .npy stream, reading at most
    MAX_HEADER_BYTES and a few more."""
    prefix = _exact(f, npy.MAGIC_LEN, label)
    try:
        version = npy.read_magic(io.BytesIO(prefix))
    except ValueError as exc:
        raise ArrayRefused(f"{label} is not an .npy array ({exc})") from exc
    readers = {(1, 0): ("<H", npy.read_array_header_1_0), (2, 0): ("<I", npy.read_array_header_2_0)}
    if version not in readers:
        raise ArrayRefused(f"{label} is in .npy format {version[0]}.{version[1]}, which is only needed for "
                           f"field names a structured dtype has; only formats 1.0 and 2.0 are read")
    length_format, read = readers[version]
    length_bytes = _exact(f, struct.calcsize(length_format), label)
    length = struct.unpack(length_format, length_bytes)[0]
    if length > MAX_HEADER_BYTES:
        raise ArrayRefused(f"{label} has a header of {length:,} bytes, more than the {MAX_HEADER_BYTES:,} allowed")
    header = _exact(f, length, label)
    try:
        shape, fortran, dt = read(io.BytesIO(length_bytes + header), max_header_size=MAX_HEADER_BYTES)
    except Exception as exc:  # noqa: BLE001 - numpy's parser raises ValueError, SyntaxError, tokenize.TokenError...
        raise ArrayRefused(f"{label} has a header numpy cannot read ({_short(str(exc))})") from exc
    return dt, shape, bool(fortran), len(prefix) + len(length_bytes) + length


def _exact(f: IO[bytes], n: int, label: str) -> bytes:
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data))
        if not chunk:
            raise ArrayRefused(f"{label} is cut short in its header")
        data += chunk
    return data


def _open(source: Path | str | bytes) -> BinaryIO:
    """A binary stream on the bytes, or on the path when it is a regular file (never a pipe or device,
    whose reads could block or never end)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source)
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArrayRefused(f"{Path(source).name} is not a regular file")
    return os.fdopen(fd, "rb")


def _size(n: int) -> str:
    """`human_size`, also for what no float holds: a header may claim any shape."""
    if n >= 1024**5:
        return "more than a PiB"
    return f"{n / 1024**4:.3g} TiB" if n >= 1024**4 else human_size(n)


def _short(text: str, limit: int = 60) -> str:
    """Text from a file, fit for a message: printable and short."""
    text = text if text.isprintable() else repr(text)[1:-1]
    return text if len(text) <= limit else text[:limit] + "..."
