"""The `docker` backend: one fresh, hardened container per stage per submission.

Each container sees only its own work dir (bind-mounted at /work) and the runner (read-only);
it has no network, a read-only root with a tmpfs /tmp, an unprivileged user, no capabilities,
no-new-privileges, and limits on memory (swap included), CPUs, processes, /dev/shm, open files
and file size. Why a run stopped is read from the engine's own state: its OOM flag, the pids
counter against the limit, our own kill at the deadline. The report comes back on the
container's stdout, which only the runner holds (see runner.py), and output is drained under a
cap with the engine's log driver off, so a flood fills neither memory nor the host's disk.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import psutil

from autograder.errors import UserError
from autograder.labs.environment import Environment
from autograder.labs.spec import human_size
from autograder.results import SandboxStatus
from autograder.sandbox.base import (
    CANCEL,
    DISK_CHECK_S,
    GPU_SAMPLE_S,
    JOB_FILE,
    REPORT_CAP,
    RUNNER,
    STREAM_CAP,
    BackendSettings,
    CappedBuffer,
    SandboxBackend,
    SandboxJob,
    SandboxRun,
    over_disk_limit,
    read_report,
    sandbox_env,
    taken,
    write_job_file,
)
from autograder.sandbox.engine import DEFAULT_IMAGE, LABEL, SANDBOX_UID
from autograder.sandbox.gpus import memory_used as gpu_memory_used
from autograder.sandbox.warm import Spare, WarmPool, clean, give_back, move_in, run_with_spare, spare_dir
from autograder.workspace import remove_tree

WORKDIR = "/work"
RUNNER_PATH = "/opt/autograder/runner.py"
VENV_PATH = "/opt/sandbox/bin:/usr/local/bin:/usr/bin:/bin"
OPEN_FILES = 4096
STATS_S = 0.5  # how often memory and processes are sampled from the engine
POLL_S = 0.05  # how soon the end of a run, the deadline or Ctrl-C is noticed
CGROUP_S = 0.1  # how often cgroup files are read, where the engine's cgroups are visible
PING_TIMEOUT_S = 3
WARM_WAIT_EXTRA_S = 600  # beyond twice the run's time limit, a spare waiting for its job gives up
# Who started a container: leftovers whose owner is gone are removed at the next start.
OWNER = f"{socket.gethostname()}:{os.getpid()}:{int(psutil.Process().create_time())}"


def engine(timeout: float = PING_TIMEOUT_S):
    """A client for the engine the environment names (DOCKER_HOST or the local socket), or None.
    Its pool has room for every concurrent run's attach, wait and stats connections."""
    from autograder.sandbox.engine import engine as connect

    try:
        client = connect(timeout, max_pool_size=64)
    except UserError:
        return None
    client.api.timeout = 60  # pings are quick; creating and removing containers under load is not
    return client


class DockerBackend(SandboxBackend):
    name = "docker"
    isolates = True

    def __init__(self, settings: BackendSettings | None = None) -> None:
        super().__init__(settings)
        self.image = self.settings.image or DEFAULT_IMAGE
        self.runtime = self.settings.runtime
        self._client = None
        self.pool = WarmPool(self._start_spare, enabled=self.settings.warm)

    def close(self) -> None:
        self.pool.close()

    def image_for(self, packages: Sequence[str]) -> str:
        """The image a lab's runs use: the TA's --image, else the one built for the lab's packages (the base
        image plus them), else the base image."""
        if self.settings.image or not packages:
            return self.image
        return Environment.of(packages).image

    def prepare(self, packages: Sequence[str]) -> None:
        image = self.image_for(packages)
        if image == self.image:
            return  # the base (or the TA's image): `unavailable` has checked it
        import docker.errors

        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            raise UserError(f"the lab's image {image} (the sandbox image with {', '.join(packages)}) is missing",
                            "build it with `autograder sandbox build` (`autograder grade` builds it itself)") from None

    @property
    def client(self):
        if self._client is None:
            self._client = engine()
            if self._client is None:
                raise UserError("no Docker engine answers", "start one (as root: dockerd &), or pass --backend local")
        return self._client

    def unavailable(self) -> str | None:
        client = engine()
        if client is None:
            return ("no Docker engine answers (start one: `dockerd &` as root, or install Debian's docker.io); "
                    "--backend local runs without isolation")
        self._client = client
        import docker.errors

        try:
            client.images.get(self.image)
        except docker.errors.ImageNotFound:
            return f"the sandbox image {self.image} is missing; build it with `autograder sandbox build`"
        except docker.errors.APIError as exc:
            return f"the engine could not look up the image {self.image}: {exc.explanation or exc}"
        if self.runtime:
            runtimes = client.info().get("Runtimes", {})
            if self.runtime not in runtimes:
                return (f"the engine offers no runtime {self.runtime!r} (it has: {', '.join(sorted(runtimes))}); "
                        "install it and register it in /etc/docker/daemon.json")
        remove_leftovers(client)
        return None

    # --- one run ---------------------------------------------------------------------------

    def container_config(self, job: SandboxJob, warm: bool = False) -> dict[str, Any]:
        """Everything the container is created with: the hardening lives here, in one place. `warm`:
        its runner starts before the job exists and waits for the job file (sandbox.warm)."""
        from docker.types import DeviceRequest, LogConfig, Mount, Ulimit

        limits = job.limits
        visible = ",".join(str(i) for i in range(len(job.gpu_ids)))  # the engine renumbers from 0
        if warm:
            # A spare outlives a killed grader until the next start's remove_leftovers; past this it stops
            # waiting on its own. Twice the run's time limit: a spare waits at most for the runs before its own.
            args = ["--warm", job.stage, *(arg for name in job.preload for arg in ("--preload", name)),
                    "--wait-limit", str(int(2 * limits.timeout + WARM_WAIT_EXTRA_S))]
        else:
            args = [write_job_file(job)]
        config: dict[str, Any] = dict(
            image=self.image_for(job.packages),
            command=["python", "-I", "-B", RUNNER_PATH, *args, "--report-stdout"],
            working_dir=WORKDIR,
            user=self._user(),
            environment=sandbox_env("/tmp/home", "/tmp", limits.cpus, visible, VENV_PATH),
            labels={LABEL: "1", f"{LABEL}.owner": OWNER, f"{LABEL}.stage": job.stage},
            hostname="sandbox",
            network_mode="none",
            ipc_mode="private",  # its own /dev/shm, shared with no other container
            read_only=True,
            # tmpfs pages count against the memory limit, so this size is a ceiling, not extra memory.
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={int(limits.memory)},mode=1777"},
            mounts=[Mount(WORKDIR, str(job.workdir), type="bind", read_only=False),
                    Mount(RUNNER_PATH, str(RUNNER), type="bind", read_only=True)],
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=limits.pids,
            mem_limit=int(limits.memory),
            memswap_limit=int(limits.memory),  # no swap beyond the memory limit
            nano_cpus=int(limits.cpus * 1e9),
            shm_size=int(limits.shm),
            ulimits=[Ulimit(name="nofile", soft=OPEN_FILES, hard=OPEN_FILES), Ulimit(name="core", soft=0, hard=0),
                     Ulimit(name="fsize", soft=int(limits.disk), hard=int(limits.disk))],
            log_config=LogConfig(type=LogConfig.types.NONE),
            stdin_open=False,
            tty=False,
            detach=True,
        )
        if job.gpu_ids:
            config["device_requests"] = [DeviceRequest(device_ids=list(job.gpu_ids), capabilities=[["gpu"]])]
        if self.runtime:
            config["runtime"] = self.runtime
        return config

    @staticmethod
    def _user() -> str:
        """Root on the host maps to the image's unprivileged user; anyone else runs as themselves,
        so the files a run leaves are theirs to remove."""
        if os.geteuid() == 0:
            return f"{SANDBOX_UID}:{SANDBOX_UID}"
        return f"{os.geteuid()}:{os.getegid()}"

    @staticmethod
    def _hand_over(workdir) -> None:
        """Give the work dir to the sandbox user (root hosts only; others run as themselves)."""
        if os.geteuid() != 0:
            return
        for folder, dirs, files in os.walk(workdir):
            os.chown(folder, SANDBOX_UID, SANDBOX_UID)
            for name in dirs + files:
                os.chown(os.path.join(folder, name), SANDBOX_UID, SANDBOX_UID, follow_symlinks=False)

    def run(self, job: SandboxJob) -> SandboxRun:
        return run_with_spare(self.pool, job, self._run_warm, self._run_cold)

    def _run_cold(self, job: SandboxJob) -> SandboxRun:
        import docker.errors

        started = time.monotonic()
        try:
            config = self.container_config(job)
            self._hand_over(job.workdir)
            container = self.client.containers.create(**config)
        except (docker.errors.DockerException, OSError) as exc:
            return SandboxRun(status="harness-error", message=f"could not create the container: {exc}")
        try:
            streams = _Streams(self, container)
            run = self._run(streams, job, job.workdir, started)
        except docker.errors.DockerException as exc:
            _remove(container)  # now: it may still be running
            return SandboxRun(status="harness-error", message=f"the engine failed during the run: {exc}",
                              duration_s=round(time.monotonic() - started, 3))
        except BaseException:
            _remove(container)
            raise
        self.pool.later(lambda: _remove(container))  # it has exited; removing it is not on the run's path
        assert run is not None
        return run

    def _start_spare(self, job: SandboxJob) -> _DockerSpare:
        """A container started on a fresh dir with what this job's kind fixes, its runner waiting."""
        workdir = spare_dir(job)
        try:
            self._hand_over(workdir)
            config = self.container_config(job.model_copy(update={"workdir": workdir}), warm=True)
            container = self.client.containers.create(**config)
        except Exception:
            remove_tree(workdir)
            raise
        try:
            return _DockerSpare(workdir, container, _Streams(self, container))
        except Exception:
            _remove(container)
            remove_tree(workdir)
            raise

    def _run_warm(self, spare: _DockerSpare, job: SandboxJob) -> SandboxRun | None:
        """The job in a spare; None when the spare could not take it (the caller starts it cold)."""
        import docker.errors

        if not clean(spare.workdir, ()):  # nothing else can reach its dir, but a spare that isn't empty is not used
            spare.destroy()
            return None
        self._hand_over(job.workdir)
        move_in(job.workdir, spare.workdir)
        started = time.monotonic()
        try:
            self._hand_over_file(write_job_file(job, folder=spare.workdir), spare.workdir)
            run = self._run(spare.streams, job, spare.workdir, started, warm=True)
        except (docker.errors.DockerException, OSError) as exc:
            spare.stop()  # now: it may still be running
            run = SandboxRun(status="harness-error", message=f"the engine failed during the run: {exc}",
                             duration_s=round(time.monotonic() - started, 3))
        else:
            self.pool.later(spare.stop)  # it has exited; removing it takes the engine a while: not on the run's path
        give_back(spare.workdir, job.workdir)
        (job.workdir / JOB_FILE).unlink(missing_ok=True)  # a cold retry writes its own
        return run

    def _hand_over_file(self, name: str, workdir) -> None:
        if os.geteuid() == 0:
            os.chown(os.path.join(workdir, name), SANDBOX_UID, SANDBOX_UID)

    def _run(self, streams: _Streams, job: SandboxJob, workdir, started: float,
             warm: bool = False) -> SandboxRun | None:
        """Watch a started container to its end; None when a warm one ended without taking its job."""
        limits = job.limits
        container, report, err, reader, waiter, exit_code = (streams.container, streams.report, streams.err,
                                                             streams.reader, streams.waiter, streams.exit_code)
        sampler = _Sampler(self, container, job, limits.pids)
        sampler.start()
        deadline = time.monotonic() + limits.timeout
        next_disk_check = time.monotonic() + DISK_CHECK_S
        killed: tuple[SandboxStatus, str] | None = None  # (status, why) when we stopped it
        while waiter.is_alive():
            if CANCEL.is_set():
                killed = ("cancelled", "grading was interrupted")
            elif time.monotonic() > deadline:
                killed = ("timeout", f"ran longer than the {limits.timeout:g} s time limit")
            elif time.monotonic() >= next_disk_check:
                why = over_disk_limit(workdir, int(limits.disk))
                killed = ("disk", why) if why else None
                next_disk_check = time.monotonic() + DISK_CHECK_S
            if killed:
                _kill(container)
                if killed[0] == "cancelled":
                    self.pool.drain()
                break
            waiter.join(timeout=POLL_S)
        waiter.join(timeout=30)
        reader.join(timeout=30)
        sampler.stop.set()
        sampler.join(timeout=0.2)  # it reads what it has; a stats call in flight is not waited for
        if warm and not taken(report) and not (killed and killed[0] == "cancelled"):
            return None
        container.reload()
        state = container.attrs.get("State", {})
        run = SandboxRun(status="ok", exit_code=state.get("ExitCode", exit_code[0] if exit_code else None),
                         duration_s=round(time.monotonic() - started, 3), peak_memory_bytes=sampler.memory,
                         cpu_s=sampler.cpu_used(warm), gpu_ids=job.gpu_ids,
                         peak_gpu_memory_bytes=sampler.gpu_memory, stderr=err.text())
        if not killed:
            read_report(run, report)
        self._explain(run, state, killed, sampler.pids, limits)
        return run

    @staticmethod
    def _explain(run: SandboxRun, state: dict, killed: tuple[SandboxStatus, str] | None, pids_peak: int,
                 limits) -> None:
        """Why the run stopped, from the engine's state: a limit the engine enforced outranks how
        the runner saw its consequence (a dead kernel, an error from fork) and our own kill."""
        reported = (run.report or {}).get("status", "ok")
        trouble = killed or run.status != "ok" or reported != "ok"
        if (run.report or {}).get("forks_refused"):
            pids_peak = max(pids_peak, limits.pids)
        if state.get("OOMKilled") and trouble:
            run.status = "memory"
            run.message = f"the engine killed it for using more than the {human_size(limits.memory)} memory limit"
        elif pids_peak >= limits.pids and trouble:
            run.status = "pids"
            run.message = f"it reached the limit of {limits.pids} processes and threads (a fork bomb?)"
        elif killed:
            run.status, run.message = killed


class _Streams:
    """A container attached to (its stdout is the report channel) and started, with a thread draining
    its streams and one waiting for it to exit."""

    def __init__(self, backend: DockerBackend, container) -> None:
        self.container = container
        self.report, self.err = CappedBuffer(REPORT_CAP + 1), CappedBuffer(STREAM_CAP)
        frames = backend.client.api.attach(container.id, stdout=True, stderr=True, stream=True, demux=True)
        self.reader = threading.Thread(target=_drain, args=(frames, self.report, self.err), daemon=True)
        self.reader.start()
        container.start()
        self.exit_code: list[int] = []
        self.waiter = threading.Thread(target=_wait, args=(container, self.exit_code), daemon=True)
        self.waiter.start()


class _DockerSpare(Spare):
    """A started container whose runner waits for the job file in its work dir."""

    def __init__(self, workdir, container, streams: _Streams) -> None:
        super().__init__(workdir)
        self.streams = streams

    def alive(self) -> bool:
        return self.streams.waiter.is_alive()

    def stop(self) -> None:
        _remove(self.streams.container)


def _remove(container) -> None:
    try:
        container.remove(force=True)
    except Exception:  # noqa: BLE001 - found and removed at the next start (remove_leftovers)
        pass


class _Sampler(threading.Thread):
    """Samples a running container apart from the main loop, whose reaction to the end of a run
    must not wait on the engine: a stats call can take half a second to answer."""

    def __init__(self, backend: DockerBackend, container, job: SandboxJob, pids_limit: int) -> None:
        super().__init__(daemon=True)
        self.client, self.container, self.job, self.pids_limit = backend.client, container, job, pids_limit
        self.stop = threading.Event()
        self.memory: int | None = None  # peak where the engine keeps one (cgroup v1), else sampled
        self.pids = 0
        self.gpu_memory: int | None = None
        self.cpu_s: float | None = None  # CPU seconds so far: the cgroup's usage, or the engine's stats
        self.cpu_first: float | None = None  # at the first sample: a warm spare's imports before its job
        self.cgroup: dict[str, str] | None = None  # its cgroup files, {} where they are not visible

    def run(self) -> None:
        next_gpu = time.monotonic()
        while not self.stop.is_set():
            self._sample()
            if self.job.gpu_ids and time.monotonic() >= next_gpu:
                used = gpu_memory_used(self._host_pids())
                if used is not None:
                    self.gpu_memory = max(self.gpu_memory or 0, used)
                next_gpu = time.monotonic() + GPU_SAMPLE_S
            self.stop.wait(STATS_S if self.cgroup is None else CGROUP_S)

    def _sample(self) -> None:
        """From the container's cgroup files where the engine is local (exact and cheap: the
        kernel's own peak and refused-fork counter), else from the engine's stats."""
        if self.cgroup is None:
            self.cgroup = _cgroup_files(self.container.id)
        if self.cgroup:
            memory = _read_int(self.cgroup["memory"])
            if memory:
                self.memory = max(self.memory or 0, memory)
            self.pids = max(self.pids, _read_int(self.cgroup["pids"]) or 0)
            if _fork_refused(self.cgroup["events"]):
                self.pids = max(self.pids, self.pids_limit)
            cpu = _cpu_seconds(self.cgroup["cpu"])
            if cpu is not None:  # the cgroup goes with the container: the last sample is what it used
                self.cpu_s = max(self.cpu_s or 0.0, cpu)
                self.cpu_first = cpu if self.cpu_first is None else self.cpu_first
            return
        try:
            raw = self.client.api.stats(self.container.id, stream=False, one_shot=True)
        except Exception:  # noqa: BLE001 - a container that just exited has no stats
            return
        mem = raw.get("memory_stats") or {}
        used = int(mem.get("max_usage") or mem.get("usage") or 0)
        if used:
            self.memory = max(self.memory or 0, used)
        self.pids = max(self.pids, int((raw.get("pids_stats") or {}).get("current") or 0))
        used_ns = ((raw.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        if used_ns:
            self.cpu_s = max(self.cpu_s or 0.0, int(used_ns) / 1e9)
            self.cpu_first = self.cpu_s if self.cpu_first is None else self.cpu_first

    def cpu_used(self, warm: bool) -> float | None:
        """The run's CPU seconds; a warm spare's time before its job (its imports) is not the run's."""
        if self.cpu_s is None:
            return None
        return round(self.cpu_s - ((self.cpu_first or 0.0) if warm else 0.0), 3)

    def _host_pids(self) -> set[int]:
        try:
            top = self.container.top(ps_args="-o pid")
        except Exception:  # noqa: BLE001
            return set()
        return {int(row[0]) for row in top.get("Processes") or [] if row and str(row[0]).isdigit()}


# Where a local engine keeps a container's cgroup: (memory peak, pids now, pids events) per layout.
_CGROUPS = (
    ("/sys/fs/cgroup/memory/docker/{id}/memory.max_usage_in_bytes",  # v1, cgroupfs driver
     "/sys/fs/cgroup/pids/docker/{id}/pids.current", "/sys/fs/cgroup/pids/docker/{id}/pids.events"),
    ("/sys/fs/cgroup/memory/system.slice/docker-{id}.scope/memory.max_usage_in_bytes",  # v1, systemd
     "/sys/fs/cgroup/pids/system.slice/docker-{id}.scope/pids.current",
     "/sys/fs/cgroup/pids/system.slice/docker-{id}.scope/pids.events"),
    ("/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.peak",  # v2, systemd driver
     "/sys/fs/cgroup/system.slice/docker-{id}.scope/pids.current",
     "/sys/fs/cgroup/system.slice/docker-{id}.scope/pids.events"),
    ("/sys/fs/cgroup/docker/{id}/memory.peak",  # v2, cgroupfs driver
     "/sys/fs/cgroup/docker/{id}/pids.current", "/sys/fs/cgroup/docker/{id}/pids.events"),
)


# Its CPU usage, in the same order: cpuacct.usage (ns) in v1, cpu.stat's usage_usec in v2.
_CPU = ("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage",
        "/sys/fs/cgroup/cpuacct/system.slice/docker-{id}.scope/cpuacct.usage",
        "/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat",
        "/sys/fs/cgroup/docker/{id}/cpu.stat")


def _cgroup_files(container_id: str) -> dict[str, str]:
    for (memory, pids, events), cpu in zip(_CGROUPS, _CPU, strict=True):
        paths = {"memory": memory, "pids": pids, "events": events, "cpu": cpu}
        paths = {k: v.format(id=container_id) for k, v in paths.items()}
        if os.path.exists(paths["pids"]):
            return paths
    return {}


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cpu_seconds(path: str) -> float | None:
    """User + system CPU seconds a cgroup's processes used, from its cpuacct.usage or cpu.stat."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    if path.endswith("cpu.stat"):
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec" and value.strip().isdigit():
                return int(value) / 1e6
        return None
    return int(text.split()[0]) / 1e9 if text.split() and text.split()[0].isdigit() else None


def _fork_refused(events_path: str) -> bool:
    """Whether the kernel refused a fork for the pids limit ("max N" in the cgroup's pids.events)."""
    try:
        with open(events_path) as f:
            return any(line.split()[:1] == ["max"] and line.split()[1] != "0" for line in f)
    except (OSError, IndexError):
        return False


def _drain(frames, report: CappedBuffer, err: CappedBuffer) -> None:
    """Read the attach stream to its end: stdout is the runner's report, stderr everything else."""
    try:
        for out, error in frames:
            if out:
                report.add(out)
            if error:
                err.add(error)
    except Exception:  # noqa: BLE001 - the stream ends with the container, however it ends
        pass


def _wait(container, exit_code: list[int]) -> None:
    try:
        exit_code.append(int(container.wait()["StatusCode"]))
    except Exception:  # noqa: BLE001
        pass


def _kill(container) -> None:
    try:
        container.kill()
    except Exception:  # noqa: BLE001 - it may have exited on its own meanwhile
        pass


def remove_leftovers(client) -> list[str]:
    """Remove our containers whose owner process on this host is gone (a killed grading run)."""
    host = socket.gethostname()
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        owner = container.labels.get(f"{LABEL}.owner", "")
        parts = owner.split(":")
        if len(parts) != 3 or parts[0] != host or owner == OWNER:
            continue
        if _alive(int(parts[1]), int(parts[2])):
            continue
        try:
            container.remove(force=True)
            removed.append(container.name)
        except Exception:  # noqa: BLE001
            continue
    return removed


def _alive(pid: int, created: int) -> bool:
    try:
        return int(psutil.Process(pid).create_time()) == created
    except psutil.Error:
        return False
