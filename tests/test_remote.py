"""The wire between the probes and the student's objects, and what a student may read of a failure.

Fast, no sandbox: a socketpair stands in for the channel, and the peer is played by the test.
"""

from __future__ import annotations

import json
import socket
import threading

import numpy as np
import pytest

from autograder.grading.remote import MAX_ARRAY_BYTES, Inputs, StudentCodeError, _host_check
from autograder.labs.lab import probe_names
from autograder.probing import ProbeFailure, check_codes, steps
from autograder.sandbox.runner import WireError, recv_message, send_message


def pair():
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    return a, b


def raw(sock, header: dict, payload: bytes = b"") -> None:
    data = json.dumps(header).encode()
    sock.sendall(len(data).to_bytes(4, "big") + data + payload)


def test_arrays_round_trip_with_their_dtype_and_shape():
    a, b = pair()
    arrays = [np.arange(12, dtype=np.float32).reshape(3, 4), np.array([True, False]), np.zeros((0, 5), np.int64)]
    send_message(a, {"value": [{"$a": 0}, {"$a": 1}, {"$a": 2}]}, arrays)
    tree, got = recv_message(b, MAX_ARRAY_BYTES, MAX_ARRAY_BYTES, check=_host_check)
    assert tree == {"value": [{"$a": 0}, {"$a": 1}, {"$a": 2}]}
    for want, have in zip(arrays, got):
        assert have.dtype == want.dtype and have.shape == want.shape and np.array_equal(have, want)
        assert have.flags.writeable


@pytest.mark.parametrize("dtype, shape, why", [
    ("|O", [3], "object"),
    ("|V8", [3], "void"),
    ("<c16", [3], "complex"),
    ("<M8[s]", [3], "datetime"),
    ("<U4", [3], "text"),
    ("<f8", [2**20, 2**20], "too large"),
    ("<f8", [-1], "negative"),
    ("<f8", "3", "not a list"),
])
def test_a_header_the_host_refuses_costs_it_no_read_of_the_payload(dtype, shape, why):
    """The payload is never sent: a reader that tried to read it would time out instead of refusing."""
    a, b = pair()
    raw(a, {"msg": {"value": {"$a": 0}}, "blobs": [[dtype, shape]]})
    with pytest.raises(WireError):
        recv_message(b, MAX_ARRAY_BYTES, MAX_ARRAY_BYTES, check=_host_check)


def test_a_header_over_its_cap_and_a_message_over_its_total_are_refused():
    a, b = pair()
    a.sendall((64 * 1024**2).to_bytes(4, "big"))
    with pytest.raises(WireError, match="over the"):
        recv_message(b, MAX_ARRAY_BYTES, MAX_ARRAY_BYTES, check=_host_check)
    a, b = pair()
    raw(a, {"msg": None, "blobs": [["<f8", [1024, 1024]]] * 3})  # 3 x 8 MiB against a 16 MiB total
    with pytest.raises(WireError, match="more than"):
        recv_message(b, 16 * 1024**2, 16 * 1024**2, check=_host_check)


def test_a_peer_that_hangs_up_mid_message_is_an_end_not_a_hang():
    a, b = pair()
    data = json.dumps({"msg": None, "blobs": [["<f8", [100]]]}).encode()
    a.sendall(len(data).to_bytes(4, "big") + data + b"\0" * 10)
    a.close()
    with pytest.raises(EOFError):
        recv_message(b, MAX_ARRAY_BYTES, MAX_ARRAY_BYTES, check=_host_check)


def test_what_a_student_reads_of_their_codes_exception():
    before = StudentCodeError("RuntimeError", "shapes (3, 2) and (4, 5)", hidden=False)
    assert str(before) == "RuntimeError: shapes (3, 2) and (4, 5)"
    after = StudentCodeError("RuntimeError", "SECRET [0.12, 0.5]", hidden=True)
    assert str(after) == "your code raised RuntimeError"
    assert "SECRET" in after.detail
    own = StudentCodeError("Secret_4_2_9", "x", hidden=True)  # a class name can carry data as well
    assert str(own) == "your code raised an exception of its own class" and "Secret_4_2_9" in own.detail


def test_reading_a_hidden_split_taints_before_the_array_is_handed_over():
    seen = []
    inputs = Inputs({"train": np.zeros(2), "test": np.ones(2)}, {"test"}, lambda: seen.append("tainted"))
    assert list(inputs) == ["train", "test"] and not seen  # names are no secret
    inputs["train"]
    assert not seen
    for _split, _x in inputs.items():
        pass
    assert seen == ["tainted"]


def test_codes_between_steps_are_checked():
    assert check_codes(np.ones((4, 2, 2)), 4, 4).shape == (4, 4)
    assert check_codes(np.ones((4, 4)), 4, 4).dtype == np.float32
    with pytest.raises(ProbeFailure, match="at most 3"):
        check_codes(np.ones((4, 4)), 4, 3)
    with pytest.raises(ProbeFailure, match="NaN"):
        check_codes(np.full((4, 1), np.inf), 4, 3)
    with pytest.raises(ProbeFailure, match="one code per image"):
        check_codes(np.ones((3, 1)), 4, 3)
    with pytest.raises(ProbeFailure, match="not an array of numbers"):
        check_codes(np.array(["a"] * 4), 4, 3)


def test_steps_are_two_or_more_functions_and_count_as_probes(tmp_path):
    with pytest.raises(TypeError):
        steps(lambda e, i: {})
    path = tmp_path / "probes.py"
    path.write_text("from autograder.probing import steps\n"
                    "def a(e, i): return {}\n"
                    "def probe_plain(e, i): return {}\n"
                    "probe_chain = steps(a, a)\n")
    assert probe_names(path) == {"plain", "chain"}


def test_the_runner_serves_calls_and_keeps_objects_behind_references(tmp_path, monkeypatch):
    """The runner's serving loop, in this process, against a socketpair: data comes back as data,
    anything else as a reference, and an exception as its type and text."""
    import cloudpickle

    from autograder.grading.remote import Remote, Session
    from autograder.sandbox import runner

    exports = tmp_path / "exports"
    exports.mkdir()

    class Model:
        scale = 2.0

        def __call__(self, x):
            return np.asarray(x) * self.scale

        def fail(self):
            raise ValueError("bad input")

    with (exports / "model.pkl").open("wb") as f:
        cloudpickle.dump(Model(), f)
    with (exports / "history.pkl").open("wb") as f:
        cloudpickle.dump({"loss": [1.0, 0.5]}, f)
    host, sandbox = socket.socketpair()
    monkeypatch.setattr(socket.socket, "connect", lambda self, path: None)
    real_socket = socket.socket
    monkeypatch.setattr(socket, "socket", lambda *a, **k: sandbox if a else real_socket(*a, **k))
    job = {"channel": "x", "exports": ["model", "history", "absent"], "exports_dir": str(exports)}
    served = threading.Thread(target=runner.run_probe, args=(job,), daemon=True)
    served.start()

    session = Session.__new__(Session)  # the host's end without a sandbox run behind it
    session.tainted, session._released, session._lock, session._conn = False, [], threading.Lock(), host
    session.limits = None
    host.settimeout(10)
    ready, _ = recv_message(host, MAX_ARRAY_BYTES, MAX_ARRAY_BYTES, check=_host_check)
    assert ready["exports"] == {"model": "ok", "history": "ok", "absent": "not defined by the notebook"}
    model = session.request("export", name="model")
    assert isinstance(model, Remote)
    assert session.request("export", name="history") == {"loss": [1.0, 0.5]}
    assert np.array_equal(model(np.arange(3)), np.arange(3) * 2.0)
    assert model.scale.resolve() == 2.0
    with pytest.raises(StudentCodeError, match="ValueError: bad input"):
        model.fail()
    session.tainted = True
    with pytest.raises(StudentCodeError) as caught:
        model.fail()
    assert str(caught.value) == "your code raised ValueError"
    send_message(host, {"op": "bye"})
    served.join(timeout=10)
    assert not served.is_alive()
