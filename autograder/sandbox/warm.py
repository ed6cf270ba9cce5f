"""Warm sandboxes: the next run's sandbox starts while the current one runs.

Start-up is most of what a trivial submission costs (a container created and started, an
interpreter importing papermill, a kernel booting; in the probe stage, torch imported), and none
of it depends on the submission. So a backend keeps a spare per kind of run, started with its
runner in `--warm` mode: everything fixed when a sandbox is created (the stage, the lab's
packages, the limits, the GPUs, the modules to preload, where work dirs live) is the pool's key,
and `take` hands out a spare made for exactly that key, then starts its replacement at once.
At `--jobs N` there are at most N spares of a key: each run starts one replacement.

Each sandbox still serves one job. A spare's work dir is empty until its job arrives: the host
moves the job's files in (a rename on the same file system), then hands over the job; after the
run, the whole dir is renamed back to the job's own path, so callers read it where they wrote it.
A spare that died while it waited, or whose dir holds anything it should not (something another
run planted there), is destroyed and the job cold-started: never the student's fault.
"""

from __future__ import annotations

import atexit
import os
import stat
import threading
import weakref
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Collection, Hashable
from pathlib import Path
from typing import Any

from autograder.sandbox.base import CANCEL, SandboxJob, SandboxRun
from autograder.workspace import new_workdir, remove_tree

CLOSE_WAIT_S = 30  # how long close() waits for spares still being started
# Kinds of run a pool keeps spares for, the most recently asked for: a lab's batch asks for two or three
# (execute, probe, probe with torch preloaded); a kind not asked for lately is another batch's.
MAX_KEYS = 4


class Spare(ABC):
    """A started sandbox whose runner waits for its job in `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    @abstractmethod
    def alive(self) -> bool:
        """Whether it is still waiting for its job."""

    @abstractmethod
    def stop(self) -> None:
        """Kill what runs; idempotent."""

    def destroy(self) -> None:
        self.stop()
        remove_tree(self.workdir)


def key(job: SandboxJob) -> Hashable:
    """What a sandbox is created with: a spare serves only a job that would have made the same one."""
    return (job.stage, tuple(job.packages), job.limits.model_dump_json(), tuple(job.gpu_ids), tuple(job.preload),
            str(job.workdir.parent))


def spare_dir(job: SandboxJob) -> Path:
    """A fresh, empty work dir beside the job's, so its files can be renamed in; named for this process,
    so the sweep after a killed grading run removes it too."""
    return new_workdir(f"warm_{job.stage}", job.workdir.parent)


class WarmPool:
    """Spares per key, started in the background by `start(job)` (the backend's own)."""

    def __init__(self, start: Callable[[SandboxJob], Spare], enabled: bool = True) -> None:
        self._start = start
        self.enabled = enabled
        self._lock = threading.Lock()
        self._spares: dict[Hashable, list[Spare]] = {}
        self._starting: set[threading.Thread] = set()  # spares being started, containers being removed
        self._recent: list[Hashable] = []  # keys asked for, the latest last
        self._active: Counter[Hashable] = Counter()  # runs of each key under way (take() to release())
        self._pending: Counter[Hashable] = Counter()  # spares of each key being started
        self._generation = 0  # bumped by close(): a spare that finishes starting after it is destroyed
        self.served = 0  # jobs handed to a spare (tests and benchmarks read it)
        atexit.register(_close_at_exit, weakref.ref(self))
        # A pool dropped without close() (or collected before exit) still destroys its spares.
        weakref.finalize(self, _destroy_all, self._spares, self._lock)

    def take(self, job: SandboxJob) -> Spare | None:
        """A spare for this job's key if one is ready (else None: start cold), and a replacement started
        unless as many are ready or starting as runs of the key are under way. Pair with release()."""
        if not self.enabled:
            return None
        k = key(job)
        with self._lock:
            self._active[k] += 1
            spares = self._spares.get(k, [])
            spare = spares.pop(0) if spares else None
            if k in self._recent:
                self._recent.remove(k)
            self._recent.append(k)
            stale = list(self._recent[:-MAX_KEYS])
            del self._recent[:-MAX_KEYS]
            evicted = [s for old in stale for s in self._spares.pop(old, [])]
        for old in evicted:
            old.destroy()
        self._replace(k, job)
        if spare is not None and not spare.alive():
            spare.destroy()  # died while it waited (an engine restart, a kill): the job starts cold
            return None
        if spare is not None:
            self.served += 1
        return spare

    def release(self, job: SandboxJob) -> None:
        """The run that take() was called for has ended."""
        if self.enabled:
            with self._lock:
                self._active[key(job)] -= 1

    def later(self, cleanup: Callable[[], None]) -> None:
        """Run `cleanup` (removing a finished container) off the run's critical path; close() waits for it."""
        def run() -> None:
            try:
                cleanup()
            finally:
                with self._lock:
                    self._starting.discard(threading.current_thread())

        thread = threading.Thread(target=run, daemon=True, name="autograder-cleanup")
        with self._lock:
            self._starting.add(thread)
        thread.start()

    def spares(self) -> list[Spare]:
        with self._lock:
            return [s for spares in self._spares.values() for s in spares]

    def _replace(self, k: Hashable, job: SandboxJob) -> None:
        if CANCEL.is_set():
            return
        with self._lock:
            if len(self._spares.get(k, [])) + self._pending[k] >= self._active[k]:
                return  # enough for the runs under way: at --jobs N, at most N spares of a key
            self._pending[k] += 1
            thread = threading.Thread(target=self._warm_one, args=(k, job, self._generation), daemon=True,
                                      name="autograder-warm")
            self._starting.add(thread)
        thread.start()

    def _warm_one(self, k: Hashable, job: SandboxJob, generation: int) -> None:
        try:
            spare = self._start(job)
        except Exception:  # noqa: BLE001 - no spare: the next run starts cold, as without a pool
            spare = None
        with self._lock:
            self._starting.discard(threading.current_thread())
            self._pending[k] -= 1
            keep = (spare is not None and generation == self._generation and k in self._recent
                    and not CANCEL.is_set())
            if keep:
                self._spares.setdefault(k, []).append(spare)  # type: ignore[arg-type]
        if spare is not None and not keep:
            spare.destroy()

    def drain(self) -> None:
        """Destroy every spare (Ctrl-C, close)."""
        _destroy_all(self._spares, self._lock)

    def close(self) -> None:
        """Destroy the spares, including those still starting. Idempotent; a later run warms anew."""
        with self._lock:
            self._generation += 1
            starting = list(self._starting)
        for thread in starting:
            thread.join(timeout=CLOSE_WAIT_S)
        self.drain()


def run_with_spare(pool: WarmPool, job: SandboxJob, warm: Callable[[Any, SandboxJob], SandboxRun | None],
                   cold: Callable[[SandboxJob], SandboxRun]) -> SandboxRun:
    """Every warming backend's `run`: a spare of the job's kind where one is ready and takes the job
    (`warm` returns None when it did not), else a cold start; the pool counts the run either way."""
    try:
        spare = pool.take(job)
        if spare is not None:
            run = warm(spare, job)
            if run is not None:
                return run
        return cold(job)
    finally:
        pool.release(job)


def _close_at_exit(ref: weakref.ref[WarmPool]) -> None:
    pool = ref()
    if pool is not None:
        pool.close()


def _destroy_all(spares: dict[Hashable, list[Spare]], lock: threading.Lock) -> None:
    with lock:
        doomed = [s for group in spares.values() for s in group]
        spares.clear()
    for spare in doomed:
        try:
            spare.destroy()
        except Exception:  # noqa: BLE001 - at exit, the engine may be gone: remove_leftovers finds it later
            continue


def clean(workdir: Path, allowed: Collection[str]) -> bool:
    """Whether a spare's dir holds nothing but what its own runner makes (`allowed` names)."""
    try:
        return all(name in allowed for name in os.listdir(workdir))
    except OSError:
        return False


def move_in(src: Path, dst: Path) -> None:
    """Rename every entry of `src` into `dst` (same file system). A folder made read-only
    (copy_read_only) is writable for the moment of its move: renaming a folder to another parent
    rewrites its `..`, which needs write permission on it for anyone but root."""
    for name in os.listdir(src):
        path = src / name
        mode = path.lstat().st_mode
        locked = stat.S_ISDIR(mode) and not mode & stat.S_IWUSR
        if locked:
            os.chmod(path, stat.S_IMODE(mode) | stat.S_IWUSR)
        os.rename(path, dst / name)
        if locked:
            os.chmod(dst / name, stat.S_IMODE(mode))


def give_back(spare_workdir: Path, workdir: Path) -> None:
    """After the run: the spare's dir becomes the job's own (whose entries were all moved out)."""
    try:
        os.rename(spare_workdir, workdir)  # same parent; replaces the job's dir, empty since move_in
    except OSError:
        move_in(spare_workdir, workdir)
        remove_tree(spare_workdir)
