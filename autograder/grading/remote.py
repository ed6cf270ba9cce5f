"""The host's end of the probe stage: the student's objects, reached only through data.

The probes run here, on the host, in trusted code. Each exported object lives in a sandboxed
process of its own (the runner's `probe` stage) and is seen here as a `Remote`: calling it,
reading an attribute or an item sends a message, and what comes back is plain data (numbers,
strings, arrays whose header was checked before they were read) or another `Remote`. Nothing
of the judge's (probe code, inputs not yet sent, the report) is ever in reach of the student's
process, which can only answer what it is asked.

A sandbox that was sent a hidden split's inputs is *tainted*: from then on, the text of an
exception its code raises is for staff only, and the student sees the exception's type.
"""

from __future__ import annotations

import builtins
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from autograder.arrays import ArrayRefused, check_header
from autograder.labs.spec import Limits
from autograder.sandbox import SandboxBackend, SandboxJob, SandboxRun
from autograder.sandbox.runner import ARRAY_KINDS, ProbeJob, WireError, recv_message, send_message

CHANNEL = ".channel"
MAX_ARRAY_BYTES = 256 * 1024**2  # one array the student's process may send back
MAX_MESSAGE_BYTES = 512 * 1024**2  # all arrays of one answer
ACCEPT_GRACE_S = 60  # beyond the run's own time limit, for a slow engine to start the container
MAX_ITERATION = 10_000  # items of a remote sequence a probe may step through, one message each
BUILTIN_ERRORS = {name for name, obj in vars(builtins).items()
                  if isinstance(obj, type) and issubclass(obj, BaseException)}


class StudentCodeError(Exception):
    """The student's code raised `type_name` while the probes used it. `str()` is what the student
    may see: with the message, unless hidden material was in reach (then the type only); `detail`
    always holds the whole text, for staff."""

    def __init__(self, type_name: str, text: str, hidden: bool) -> None:
        self.type_name = type_name if type_name in BUILTIN_ERRORS else "an exception of its own class"
        self.raw_type = type_name
        self.detail = f"{type_name}: {text}" if text else type_name
        self.hidden = hidden
        super().__init__(self.public())

    def public(self) -> str:
        if self.hidden:
            return f"your code raised {self.type_name}"
        return f"{self.type_name}: {self.detail.partition(': ')[2]}" if ": " in self.detail else self.type_name

    def __str__(self) -> str:
        return self.public()


class SandboxLost(Exception):
    """The student's process stopped answering (it exited, was killed at a limit, or broke the protocol)."""


class Session:
    """One sandbox holding the student's objects, and the channel to it."""

    def __init__(self, backend: SandboxBackend, workdir: Path, request: ProbeJob, limits: Limits,
                 gpu_ids: list[str], packages: list[str] | None = None, preload: list[str] | None = None) -> None:
        self.limits = limits
        self.tainted = False
        self.run_result: SandboxRun | None = None
        self.ready: dict = {}
        self._released: list[int] = []
        self._lock = threading.Lock()
        self._conn: socket.socket | None = None
        self._path = workdir / CHANNEL
        self._listener = _listen(self._path)
        job = SandboxJob(workdir=workdir, request=request, limits=limits, gpu_ids=gpu_ids, packages=packages or [],
                         preload=preload or [])
        self._thread = threading.Thread(target=self._run, args=(backend, job), daemon=True)
        self._thread.start()

    def _run(self, backend: SandboxBackend, job: SandboxJob) -> None:
        try:
            self.run_result = backend.run(job)
        except Exception as exc:  # noqa: BLE001 - reported as the harness's failure
            self.run_result = SandboxRun(status="harness-error", message=f"{type(exc).__name__}: {exc}")

    def connect(self) -> dict:
        """Wait for the sandbox to connect and say which exports loaded; raises SandboxLost."""
        deadline = time.monotonic() + self.limits.timeout + ACCEPT_GRACE_S
        self._listener.settimeout(0.1)
        while self._conn is None:
            try:
                self._conn, _ = self._listener.accept()
            except TimeoutError:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise SandboxLost("the sandbox ended before it connected") from None
        self._listener.close()  # one connection only: nothing else in the sandbox gets in later
        _unlink(self._path)
        self._conn.settimeout(self.limits.timeout + ACCEPT_GRACE_S)
        tree, _ = self._receive()
        if not isinstance(tree, dict) or tree.get("op") != "ready":
            raise SandboxLost("the sandbox did not say it was ready")
        self.ready = tree
        return tree

    def _receive(self) -> tuple[Any, list[np.ndarray]]:
        try:
            return recv_message(self._conn, MAX_ARRAY_BYTES, MAX_MESSAGE_BYTES, check=_host_check)
        except (EOFError, OSError) as exc:
            raise SandboxLost(f"the sandbox stopped answering ({exc})") from None
        except WireError as exc:
            raise SandboxLost(f"the sandbox broke the protocol: {exc}") from None

    def request(self, op: str, **fields: Any) -> Any:
        """Send one operation and return its decoded answer; raises StudentCodeError or SandboxLost."""
        if self._conn is None:
            raise SandboxLost("the sandbox is not connected")
        blobs: list[np.ndarray] = []
        message = {"op": op, **{k: _encode(v, blobs, self) for k, v in fields.items()}}
        with self._lock:
            message["release"], self._released = self._released, []
            try:
                send_message(self._conn, message, blobs)
            except OSError as exc:
                raise SandboxLost(f"the sandbox stopped answering ({exc})") from None
            tree, arrays = self._receive()
        if not isinstance(tree, dict):
            raise SandboxLost("the sandbox answered with something that is not a reply")
        if "error" in tree:
            error = tree["error"] if isinstance(tree["error"], dict) else {}
            raise StudentCodeError(str(error.get("type", "Exception"))[:100], str(error.get("text", ""))[:2000],
                                   hidden=self.tainted)
        try:
            return _decode(tree.get("value"), arrays, self)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise SandboxLost(f"the sandbox answered with a malformed value ({exc})") from None

    def release(self, ref: int) -> None:
        self._released.append(ref)

    def close(self) -> SandboxRun:
        """Say goodbye, wait for the sandbox to end, and return how its run ended."""
        if self._conn is not None:
            try:
                send_message(self._conn, {"op": "bye"})
            except OSError:
                pass
            self._conn.close()
        else:
            self._listener.close()
            _unlink(self._path)
        self._thread.join()
        return self.run_result or SandboxRun(status="harness-error", message="the sandbox run did not finish")


def _listen(path: Path) -> socket.socket:
    """A Unix socket at `path`, however long the path: bound through /proc/self/fd, since a socket
    path may not exceed 107 bytes and work dirs under pytest's or a TA's temp folders do."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        short = f"/proc/self/fd/{folder}/{path.name}"
        sock.bind(short if len(str(path)) > 100 and os.path.isdir(f"/proc/self/fd/{folder}") else str(path))
    finally:
        os.close(folder)
    sock.listen(1)
    return sock


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _host_check(dtype_str: Any, shape: Any, max_bytes: int) -> tuple[np.dtype, int]:
    """The host's one array check (arrays.check_header), and the wire's own: numbers only, no text."""
    try:
        nbytes = check_header(dtype_str, shape, max_array_bytes=max_bytes)
    except ArrayRefused as exc:
        raise WireError(str(exc)) from None
    dtype = np.dtype(dtype_str)
    if dtype.kind not in ARRAY_KINDS:
        raise WireError(f"an array of dtype {dtype} is not plain numbers")
    return dtype, nbytes


class Remote:
    """An object that lives in the student's sandbox. Attribute reads, calls, items and len() go
    there as messages; what comes back is data or another Remote."""

    __slots__ = ("_session", "_ref", "_type")

    def __init__(self, session: Session, ref: int, type_name: str) -> None:
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_ref", ref)
        object.__setattr__(self, "_type", type_name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Method(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a probe does not change the student's objects")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.request("call", ref=self, args=list(args), kwargs=kwargs)

    def __getitem__(self, key: Any) -> Any:
        return self._session.request("getitem", ref=self, key=key)

    def __len__(self) -> int:
        n = self._session.request("len", ref=self)
        if type(n) is not int or n < 0:
            raise StudentCodeError("TypeError", "len() did not return a count", self._session.tainted)
        return n

    def __iter__(self) -> Iterator[Any]:
        n = len(self)
        if n > MAX_ITERATION:
            raise StudentCodeError("ValueError", f"it has {n:,} items, too many to go through one by one",
                                   self._session.tainted)
        for i in range(n):
            yield self[i]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(f"the student's {self._type} is an object, not an array of numbers")

    def __repr__(self) -> str:
        return f"<the student's {self._type}>"

    def __del__(self) -> None:
        try:
            self._session.release(self._ref)
        except Exception:  # noqa: BLE001 - at interpreter exit the session may be gone
            pass


class _Method:
    """`remote.name`, resolved lazily: called, it is one message (`call` with `attr`); used any other
    way, it is fetched first. So `model.encode(x)` costs one round trip, not two."""

    __slots__ = ("_owner", "_name", "_value")

    def __init__(self, owner: Remote, name: str) -> None:
        self._owner, self._name = owner, name
        self._value: Any = _UNSET

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner._session.request("call", ref=self._owner, attr=self._name, args=list(args), kwargs=kwargs)

    def resolve(self) -> Any:
        if self._value is _UNSET:
            self._value = self._owner._session.request("getattr", ref=self._owner, name=self._name)
        return self._value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    def __getitem__(self, key: Any) -> Any:
        return self.resolve()[key]

    def __len__(self) -> int:
        return len(self.resolve())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.resolve())

    def __contains__(self, item: Any) -> bool:
        return item in self.resolve()

    def __float__(self) -> float:
        return float(self.resolve())

    def __int__(self) -> int:
        return int(self.resolve())

    def __bool__(self) -> bool:
        return bool(self.resolve())

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.resolve(), dtype=dtype)

    def __repr__(self) -> str:
        return f"<the student's {self._owner._type}.{self._name}>"


_UNSET = object()


def is_instance(obj: Any, qualified_name: str) -> bool:
    """Whether a remote object's class is (a subclass of) `qualified_name`, e.g. "torch.nn.Module",
    as the student's process answers: enough to choose how to call it, never to judge it."""
    if isinstance(obj, _Method):
        obj = obj.resolve()
    if not isinstance(obj, Remote):
        return False
    return obj._session.request("isinstance", ref=obj, cls=qualified_name) is True


def _encode(value: Any, blobs: list[np.ndarray], session: Session, depth: int = 0) -> Any:
    """A value the probe sends, as a wire tree: data, arrays, tensors, or a Remote of this session."""
    if depth > 32:
        raise TypeError("an argument is nested too deeply to send to the student's code")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, _Method):
        value = value.resolve()
    if isinstance(value, Remote):
        if value._session is not session:
            raise TypeError("an object of one sandbox cannot be passed to another; pass its data instead")
        return {"$r": value._ref}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, blobs, session, depth + 1) for v in value]
        return items if isinstance(value, list) else {"$t": items}
    if isinstance(value, dict):
        return {"$d": [[_encode(k, blobs, session, depth + 1), _encode(v, blobs, session, depth + 1)]
                       for k, v in value.items()]}
    if isinstance(value, slice):
        return {"$s": [value.start, value.stop, value.step]}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        blobs.append(np.ascontiguousarray(value))
        return {"$a": len(blobs) - 1}
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        blobs.append(np.ascontiguousarray(value.detach().cpu().numpy()))
        return {"$a": len(blobs) - 1, "torch": True}
    raise TypeError(f"a {type(value).__name__} can't be sent to the student's code; send numbers, strings or "
                    "arrays")


def _decode(tree: Any, arrays: list[np.ndarray], session: Session, depth: int = 0) -> Any:
    """An answer as host values; every container is rebuilt here from checked parts."""
    if depth > 40:
        raise ValueError("nested too deeply")
    if tree is None or type(tree) in (bool, int, float, str):
        return tree
    if isinstance(tree, list):
        return [_decode(v, arrays, session, depth + 1) for v in tree]
    if not isinstance(tree, dict):
        raise ValueError("not a value")
    if "$a" in tree:
        array = arrays[int(tree["$a"])]
        torch = _torch() if tree.get("torch") is True else None
        return torch.from_numpy(array) if torch is not None else array
    if "$r" in tree:
        return Remote(session, int(tree["$r"]), str(tree.get("type", "object"))[:200])
    if "$t" in tree:
        return tuple(_decode(v, arrays, session, depth + 1) for v in tree["$t"])
    if "$d" in tree:
        out = {}
        for pair in tree["$d"]:
            key, value = pair
            key = _decode(key, arrays, session, depth + 1)
            if not isinstance(key, (str, int, float, bool, tuple, type(None))):
                raise ValueError("a dict key that is not plain data")
            out[key] = _decode(value, arrays, session, depth + 1)
        return out
    raise ValueError("an unknown kind of value")


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


class Exports(Mapping[str, Any]):
    """What a probe gets as `exports`: each export of the notebook, as data (a dict of lists, say)
    or as a Remote; a missing one raises KeyError, which the stage reports with why it is missing.
    `module(name)` gives one of the lab's Python modules (the student's or a provided one)."""

    def __init__(self, session: Session, names: list[str]) -> None:
        self._session = session
        self._names = names
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if self._session.ready.get("exports", {}).get(name) != "ok":
            raise KeyError(name)
        if name not in self._cache:
            self._cache[name] = self._session.request("export", name=name)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter([n for n in self._names if self._session.ready.get("exports", {}).get(n) == "ok"])

    def __len__(self) -> int:
        return len(list(iter(self)))

    def module(self, name: str) -> Any:
        """The lab's module `name` (e.g. "cnn"), imported in the student's sandbox."""
        return self._session.request("module", name=name)


class Inputs(Mapping[str, np.ndarray]):
    """What a probe gets as `inputs`: split -> X. Reading a hidden split taints the sandboxes the
    probe talks to, since what the probe does next may send it there."""

    def __init__(self, arrays: dict[str, np.ndarray], hidden: set[str], on_hidden: Callable[[], None]) -> None:
        self._arrays = arrays
        self._hidden = hidden
        self._on_hidden = on_hidden

    def __getitem__(self, split: str) -> np.ndarray:
        array = self._arrays[split]
        if split in self._hidden:
            self._on_hidden()
        return array

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)
