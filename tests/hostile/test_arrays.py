"""Attack 5: a probe output that unpacks to more than the host can hold.

A 2 MB .npz of deflated zeros can declare 2 GiB, a member can lie about its size, a header about its
shape, and an object array carries a pickle. `autograder.arrays` checks every array from its header
(dtype allow-list, shape, unpacked size per array and per file, the zip's declared size) before a byte
of data is unpacked, so each of these is refused with a reason while the host's memory stays bounded.
"""

from __future__ import annotations

import io
import os
import random
import resource
import shutil
import struct
import time
import tracemalloc
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from numpy.lib import format as npy

from autograder import arrays
from autograder.arrays import ArrayRefused, array_from_bytes, check_header, load_npy, load_npz
from autograder.labs.lab import load_lab
from autograder.labs.release import _arrays
from autograder.publish.feedback import Feedback, confusion, read_history, to_html
from autograder.results import SubmissionResult

GiB = 1024**3
MiB = 1024**2
BOMB_BYTES = 2 * GiB
HOST_BUDGET = 100 * MiB  # what reading any of these may cost the host, far below what they unpack to


def npy_header(dtype, shape, fortran: bool = False, version: tuple[int, int] = (1, 0)) -> bytes:
    """The .npy magic and header of an array, without its data."""
    f = io.BytesIO()
    d = {"descr": npy.dtype_to_descr(np.dtype(dtype)), "fortran_order": fortran, "shape": tuple(shape)}
    (npy.write_array_header_1_0 if version == (1, 0) else npy.write_array_header_2_0)(f, d)
    return f.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    f = io.BytesIO()
    np.save(f, array, allow_pickle=True)
    return f.getvalue()


def npz_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    f = io.BytesIO()
    with zipfile.ZipFile(f, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return f.getvalue()


def savez(**arrays_) -> bytes:
    f = io.BytesIO()
    np.savez(f, **arrays_)
    return f.getvalue()


def deflated(path: Path, name: str, head: bytes, zeros: int) -> Path:
    """An .npz whose one member is `head` and `zeros` zero bytes, streamed through the deflate writer a
    chunk at a time: the member truthfully declares its full size, the file is a few MB."""
    chunk = bytes(16 * MiB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open(name, "w", force_zip64=True) as m:
            m.write(head)
            for _ in range(zeros // len(chunk)):
                m.write(chunk)
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """2 GiB of float64 zeros, deflated: the attack as reported."""
    path = deflated(tmp_path_factory.mktemp("bomb") / "scores.npz", "val.npy",
                    npy_header("<f8", (BOMB_BYTES // 8,)), BOMB_BYTES)
    assert path.stat().st_size < 16 * MiB
    with zipfile.ZipFile(path) as z:
        assert z.getinfo("val.npy").file_size > BOMB_BYTES
    return path


def lying(shape=(2**45,), data: bytes = b"\0" * 64) -> bytes:
    """An .npz whose header claims `shape` float64 while the member holds only `data` after it."""
    return npz_bytes({"val.npy": npy_header("<f8", shape) + data})


@contextmanager
def host_memory():
    """{'traced': peak bytes allocated (tracemalloc sees numpy's buffers and zlib's output),
    'rss': growth of the process's peak resident size}, filled in when the block ends."""
    seen: dict[str, int] = {}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    try:
        yield seen
    finally:
        seen["traced"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        seen["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss


# --- the bomb and the lies --------------------------------------------------------------------------------------


def test_a_deflated_bomb_is_refused_from_its_header_quickly_and_in_bounded_memory(bomb):
    start = time.monotonic()
    with host_memory() as used, pytest.raises(ArrayRefused) as refused:
        load_npz(bomb)
    assert time.monotonic() - start < 5
    assert used["traced"] < 10 * MiB and used["rss"] < HOST_BUDGET, used
    assert str(refused.value) == ("array 'val' (float64 of shape (268435456,)) would unpack to 2 GiB, more than "
                                  "the 256 MiB allowed for one array")
    with host_memory() as used, pytest.raises(ArrayRefused, match="to 2 GiB, more than the 1 GiB allowed for one file"):
        load_npz(bomb, max_array_bytes=8 * GiB, max_total_bytes=GiB)  # the cap per file holds on its own
    assert used["traced"] < 10 * MiB, used


def test_the_total_of_a_file_is_capped_before_the_array_that_would_pass_it_is_read():
    data = savez(a=np.zeros(500_000), b=np.zeros(500_000), c=np.zeros(2_500_000))  # 4, 4 and 20 MB
    caps = {"max_array_bytes": 32 * MiB}
    assert sorted(load_npz(data, max_total_bytes=32 * MiB, **caps)) == ["a", "b", "c"]
    with host_memory() as used, pytest.raises(ArrayRefused) as refused:
        load_npz(data, max_total_bytes=16 * MiB, **caps)
    assert str(refused.value) == ("array 'c' (19.1 MiB) would bring the arrays of the file to 26.7 MiB, more than "
                                  "the 16 MiB allowed for one file")
    assert used["traced"] < 8 * MiB + 4 * MiB, used  # a, b and a few chunks in flight: c was never allocated
    assert sorted(load_npz(data, keys=["a", "b"], max_total_bytes=16 * MiB, **caps)) == ["a", "b"]


@pytest.mark.parametrize("shape, data, why", [
    ((2**45,), b"\0" * 64, "would unpack to 256 TiB, more than the 256 MiB allowed"),  # header huge, member tiny
    ((10**200, 10**200), b"", "would unpack to more than a PiB"),  # no float holds its size
    ((1000,), b"\0" * 800, "needs 8,128 bytes with its header .*but the file gives it 928"),  # header big, member small
    ((10,), b"\0" * 80 + b"\0" * 5000, "needs 208 bytes with its header .*but the file gives it 5,208"),  # junk after
])
def test_a_member_whose_header_and_size_disagree_is_refused_before_its_data_is_read(shape, data, why):
    with host_memory() as used, pytest.raises(ArrayRefused, match=why):
        load_npz(lying(shape, data))
    assert used["traced"] < MiB


def test_a_zip_directory_that_understates_a_member_is_refused():
    """The member really holds its 80,000 bytes, but the zip's directory says 5,000: the reader would stop
    there (ZipExtFile reads what the directory declares), so it is refused from the header. (A member
    declared shorter than one read, 4 kB, ends in that read and fails its CRC instead.)"""
    data = bytearray(savez(val=np.arange(10_000.0)))
    central = data.rindex(b"PK\x01\x02")
    assert struct.unpack_from("<I", data, central + 24)[0] == 80_128
    struct.pack_into("<I", data, central + 24, 5000)  # the uncompressed size, as ZipFile reads it
    with pytest.raises(ArrayRefused, match="needs 80,128 bytes with its header .* but the file gives it 5,000"):
        load_npz(bytes(data))
    struct.pack_into("<I", data, central + 24, 200)
    with pytest.raises(ArrayRefused, match="Bad CRC-32 for file 'val.npy'"):
        load_npz(bytes(data))


def test_a_header_that_declares_a_huge_length_is_refused_before_it_is_read(tmp_path):
    """numpy reads the whole length an .npy 2.0 header declares before checking it (up to 4 GiB)."""
    path = deflated(tmp_path / "h.npz", "x.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 256 * MiB), 256 * MiB)
    with host_memory() as used, pytest.raises(ArrayRefused, match="has a header of 268,435,456 bytes"):
        load_npz(path)
    assert used["traced"] < MiB


def test_a_central_directory_bomb_is_refused_before_zipfile_parses_it():
    """200,000 directory entries in 10 MB: ZipFile would build a ZipInfo for each (~100 MB)."""
    name = b"a.npy"
    entry = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0)
    directory = (entry + name) * 200_000
    data = directory + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(directory), 0, 0)
    with host_memory() as used, pytest.raises(ArrayRefused, match="takes 9.73 MiB, more than 1,000 arrays need"):
        load_npz(data)
    assert used["traced"] < MiB


def test_too_many_arrays_are_refused():
    many = npz_bytes({f"a{i}.npy": npy_bytes(np.zeros(1)) for i in range(arrays.MAX_ARRAYS + 1)})
    with pytest.raises(ArrayRefused, match="holds 1,001 entries, more than the 1,000 arrays allowed"):
        load_npz(many)
    assert len(load_npz(many, max_arrays=2000)) == 1001
    with pytest.raises(ArrayRefused, match="holds 5 entries, more than the 4 arrays allowed"):
        load_npz(savez(a=1, b=2, c=3, d=4, e=5), max_arrays=4)


@pytest.mark.parametrize("members, why", [
    ({"a.npy": npy_bytes(np.zeros(2)), "notes.txt": b"hi"}, "holds 'notes.txt', which is not an array"),
    ({"evil.pkl": b"cos\nsystem\n"}, "holds 'evil.pkl', which is not an array"),
    ({"a.npy": b"not an array at all"}, "array 'a' is not an .npy array"),
    ({"a.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'"}, "array 'a' is cut short in its header"),
    ({"a.npy": npy_header("<f8", (3,), version=(1, 0)).replace(b"(3,)", b"(-3,)")}, "no valid shape"),
])
def test_what_is_not_an_array_is_refused(members, why):
    with pytest.raises(ArrayRefused, match=why):
        load_npz(npz_bytes(members))


def test_packing_that_decompresses_without_a_bound_is_refused():
    """bzip2 and lzma members unpack a whole chunk at once (no max_length in ZipExtFile), so only stored
    and deflated members are read."""
    for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        with pytest.raises(ArrayRefused, match=f"packed with zip method {method}"):
            load_npz(npz_bytes({"a.npy": npy_bytes(np.zeros(3))}, method))
    assert load_npz(npz_bytes({"a.npy": npy_bytes(np.ones(3))}, zipfile.ZIP_DEFLATED))["a"].tolist() == [1, 1, 1]


def test_a_corrupt_member_fails_its_crc_because_every_member_is_read_to_its_end():
    data = bytearray(savez(a=np.arange(5.0)))
    at = bytes(data).index(np.arange(5.0).tobytes())
    data[at + 8] ^= 0xFF
    with pytest.raises(ArrayRefused, match="not a readable .npz: Bad CRC-32 for file 'a.npy'"):
        load_npz(bytes(data))
    with pytest.raises(ArrayRefused, match="not an .npz"):
        load_npz(savez(a=np.arange(5.0))[:-30])
    with pytest.raises(ArrayRefused, match="no zip directory"):
        load_npz(b"PK\x03\x04 and nothing else")


def test_any_corruption_is_refused_or_read_never_another_error():
    """Bytes changed at random, in headers half the time: the caller only ever has ArrayRefused to catch."""
    rng = random.Random(5)
    f = io.BytesIO()
    np.savez_compressed(f, a=np.arange(1000), b=np.zeros((4, 4), dtype=np.float16))
    bases = [savez(a=np.arange(10.0), b=np.array(["x", "yz"]), c=np.asfortranarray(np.ones((3, 2)))), f.getvalue()]
    headers = [i for i in range(len(bases[0])) if bases[0][i:i + 6] == b"\x93NUMPY"]
    outcomes = {"read": 0, "refused": 0}
    for _ in range(2000):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 4)):
            at = rng.choice(headers) + rng.randrange(128) if rng.random() < 0.5 else rng.randrange(len(data))
            data[at % len(data)] = rng.choice([rng.randrange(256), 0, 0xFF, ord("("), ord("-"), ord("9")])
        try:
            load_npz(bytes(data))
            outcomes["read"] += 1
        except ArrayRefused:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 1000 and outcomes["read"] > 10, outcomes


# --- what an array may hold ----------------------------------------------------------------------------------


class Payload:
    """Unpickling it creates a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_an_object_array_is_refused_without_unpickling_it(tmp_path):
    marker = tmp_path / "ran"
    data = npy_bytes(np.array([Payload(marker), 1], dtype=object))
    for attempt in (lambda: load_npz(npz_bytes({"val.npy": data})), lambda: load_npy(data),
                    lambda: load_npz(npz_bytes({"val.npy": npy_bytes(np.zeros(2, dtype=[("a", "O")]))}))):
        with pytest.raises(ArrayRefused, match="has dtype"):
            attempt()
        assert not marker.exists()
    with pytest.raises(ArrayRefused, match="array 'val' has dtype object: Python objects, which only unpickling "
                                           "reads, and unpickling runs code"):
        load_npz(npz_bytes({"val.npy": data}))
    np.load(io.BytesIO(data), allow_pickle=True)  # the payload is live: loading it as numpy would, runs it
    assert marker.exists()


@pytest.mark.parametrize("array, why", [
    (np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")]), "records or raw bytes"),
    (np.zeros(3, dtype="V8"), "records or raw bytes"),
    (np.zeros(3, dtype=np.complex128), "complex numbers"),
    (np.zeros(3, dtype="datetime64[s]"), "dates"),
    (np.zeros(3, dtype="timedelta64[s]"), "time spans"),
    (np.zeros(3, dtype=np.longdouble), "long double"),
])
def test_only_plain_numbers_and_strings_are_read(array, why):
    if array.dtype == np.longdouble and array.dtype.itemsize == 8:
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(ArrayRefused, match=why):
        load_npz(savez(x=array))
    with pytest.raises(ArrayRefused, match=why):
        check_header(array.dtype.str if array.dtype.fields is None else array.dtype, array.shape)


def test_strings_have_a_smaller_cap_of_their_own():
    texts = np.array(["x" * 100] * 50_000)  # 19 MiB of UTF-32
    with pytest.raises(ArrayRefused, match="more than the 16 MiB allowed for one string array"):
        load_npz(savez(pred=texts))
    assert load_npz(savez(pred=texts[:1000]))["pred"][0] == "x" * 100
    assert check_header("<f4", [10_000_000]) == 40_000_000  # the same size in numbers is fine


# --- what is fine is read as numpy would ------------------------------------------------------------------------


def test_a_normal_npz_round_trips():
    saved = {"scores": np.random.default_rng(0).random((50, 3)).astype(np.float32), "labels": np.arange(50),
             "u8": np.arange(256, dtype=np.uint8), "half": np.ones(4, dtype=np.float16), "flags": np.array([True]),
             "big_endian": np.arange(3, dtype=">i8"), "texts": np.array(["héllo", "", "åäö"]),
             "bytes": np.array([b"a"]), "scalar": np.float64(2.5)}
    for write in (np.savez, np.savez_compressed):
        f = io.BytesIO()
        write(f, **saved)
        loaded = load_npz(f.getvalue())
        assert list(loaded) == list(saved)
        for k, v in saved.items():
            assert loaded[k].dtype == np.asarray(v).dtype and np.array_equal(loaded[k], v), k
            assert loaded[k].flags.writeable
    assert list(load_npz(savez(**saved), keys=["texts", "absent"])) == list(load_npz(savez(**saved), keys="texts"))


def test_fortran_order_empty_and_zero_dimensional_arrays_are_fine(tmp_path):
    f = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    empty = {"e0": np.zeros(0), "e2": np.zeros((0, 5), dtype=np.int32), "et": np.array([], dtype="<U3"),
             "ef": np.asfortranarray(np.zeros((3, 0)))}
    (tmp_path / "a.npz").write_bytes(savez(f=f, s=np.int8(-3), **empty))
    loaded = load_npz(tmp_path / "a.npz")
    assert loaded["f"].flags.f_contiguous and np.array_equal(loaded["f"], f)
    assert loaded["s"].shape == () and loaded["s"] == -3
    for k, v in empty.items():
        assert loaded[k].shape == v.shape and loaded[k].dtype == v.dtype
    np.save(tmp_path / "f.npy", f)
    assert np.array_equal(load_npy(tmp_path / "f.npy"), f) and load_npy(str(tmp_path / "f.npy")).flags.f_contiguous


def test_load_npy_checks_the_file_as_load_npz_checks_a_member(tmp_path):
    data = npy_bytes(np.arange(10))
    assert load_npy(data).tolist() == list(range(10))
    with pytest.raises(ArrayRefused, match="needs 208 bytes .* gives it 200"):
        load_npy(data[:-8])
    with pytest.raises(ArrayRefused, match="would unpack to 2 GiB"):
        load_npy(npy_header("<f8", (2**28,)))
    with pytest.raises(ArrayRefused, match="more than the 16 B allowed for one array"):
        load_npy(data, max_array_bytes=16)


def test_a_path_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.npz")  # opening a FIFO for reading would wait for a writer
    with pytest.raises(ArrayRefused, match="pipe.npz is not a regular file"):
        load_npz(tmp_path / "pipe.npz")
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz")


# --- arrays sent as raw bytes with a JSON header ------------------------------------------------------------


def test_a_header_sent_as_json_is_checked_before_the_bytes_are_taken():
    assert check_header("<f4", [2, 3]) == 24
    assert check_header(np.dtype(">u2"), (5,)) == 10
    assert check_header("|b1", []) == 1
    for dtype, shape, why in [("O", [1], "Python objects"), ("<f8", [2**40], "would unpack to"),
                              ("<f8", [-1], "no valid shape"), ("<f8", [True], "no valid shape"),
                              ("<f8", [1.5], "no valid shape"), ("<f8", "12", "no valid shape"),
                              ("<f8", [1] * 65, "no valid shape"), (["<f8"], [1], "no valid dtype"),
                              ({"names": ["a"], "formats": ["O"]}, [1], "no valid dtype"),
                              ("f8," * 40, [1], "no valid dtype"), ("nope", [1], "unknown dtype 'nope'"),
                              ("<U0", [1], "zero-width strings"), ("(2,)f8", [1], "records or raw bytes")]:
        with pytest.raises(ArrayRefused, match=why):
            check_header(dtype, shape, name="array 'x'")


def test_array_from_bytes_takes_exactly_what_the_header_says():
    values = np.arange(6, dtype="<f4").reshape(2, 3)
    got = array_from_bytes("<f4", [2, 3], bytearray(values.tobytes()))
    assert np.array_equal(got, values) and got.flags.writeable
    assert not array_from_bytes("<f4", [2, 3], values.tobytes()).flags.writeable  # shares the bytes given
    fortran = array_from_bytes("<f4", [2, 3], values.tobytes(order="F"), fortran_order=True)
    assert np.array_equal(fortran, values) and fortran.flags.f_contiguous
    assert array_from_bytes("<i8", [0, 4], b"").shape == (0, 4)
    with pytest.raises(ArrayRefused, match="holds 20 bytes, but its dtype float32 and shape \\(2, 3\\) need 24"):
        array_from_bytes("<f4", [2, 3], values.tobytes()[:20])
    with pytest.raises(ArrayRefused, match="more than the 16 B allowed"):
        array_from_bytes("<f4", [2, 3], values.tobytes(), max_array_bytes=16)


def test_the_release_leak_scan_reads_arrays_through_the_same_loader():
    """A kit's files are scanned for hidden rows: arrays are read, anything else is passed over."""
    found = _arrays(Path("data.npz"), savez(X=np.arange(3)))
    assert [(k, v.tolist()) for k, v in found] == [("X", [0, 1, 2])]
    assert _arrays(Path("x.npy"), npy_bytes(np.arange(2)))[0][1].tolist() == [0, 1]
    assert [k for k, _ in _arrays(Path("kit.zip"), npz_bytes({"data/split.npz": savez(X=np.zeros(2))}))] == ["X"]
    docx = npz_bytes({"[Content_Types].xml": b"<xml/>", "word/document.xml": b"<doc/>"})
    assert _arrays(Path("report.docx"), docx) == []  # np.load gave its xml back as bytes, and the scan failed on them
    assert _arrays(Path("scores.npz"), lying()) == []  # np.load raised MemoryError


# --- the feedback page reads through the same loader ------------------------------------------------------------


def test_feedback_draws_a_normal_artifact_and_leaves_a_bomb_out(tmp_path, bomb):
    lab = load_lab("lab1-mlp", REPO)
    labels = lab.split("val")[1]
    result = SubmissionResult(lab=lab.name, student="ana", submission_hash="abc", lab_version="1",
                              rubric_hash="r", verdict="G", criteria=[])
    normal, hostile = tmp_path / "normal", tmp_path / "hostile"
    for folder in (normal, hostile):
        (folder / "outputs").mkdir(parents=True)
    np.savez(normal / "outputs" / "history.npz", train_loss=np.linspace(1, 0.1, 20),
             val_accuracy=np.linspace(0.5, 0.9, 20))
    np.savez(normal / "outputs" / "scores.npz", val=np.eye(int(labels.max()) + 1)[labels])
    (hostile / "outputs" / "history.npz").write_bytes(lying())  # claims 256 TiB in 64 bytes
    shutil.copyfile(bomb, hostile / "outputs" / "scores.npz")  # 2 GiB deflated into a few MB

    fb = Feedback(lab=lab, result=result, history=read_history(normal), confusion=confusion(lab, result, normal))
    html = to_html(fb)
    assert "val_accuracy: 20 epochs" in html and '<img src="data:image/png;base64,' in html
    assert "Confusion matrix" in html and "Accuracy 1.000 on the val set" in html

    with host_memory() as used:
        fb = Feedback(lab=lab, result=result, history=read_history(hostile),
                      confusion=confusion(lab, result, hostile))
        html = to_html(fb)
    assert used["traced"] < 50 * MiB and used["rss"] < HOST_BUDGET, used
    assert fb.history == {} and fb.confusion is None
    assert "Not available: the grader has no training history" in html and "Confusion matrix" not in html
