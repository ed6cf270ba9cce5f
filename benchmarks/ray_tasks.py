"""What running a sandbox stage as a Ray task costs over running it in the grading process.

Starts a two-node Ray cluster on this machine (a head and a second node, one declared CPU each, on
loopback; or uses --address), then runs the same stages of the tests' toy lab (NumPy only, so the
notebook itself is short and the difference shows) through the `local` executor and as Ray tasks,
alternating one by one so drift in the machine's load hits both alike. Each submission is a distinct
copy, so nothing is reused. Reports medians of the execute and probe stages both ways, their
difference (what Ray adds per task: scheduling, shipping the submission out and the stage's files
back), a no-op Ray task's round trip (Ray's floor), and the first task on each worker (which also
unpacks the lab and checks the backend) apart. Not a test: run on demand.

    python benchmarks/ray_tasks.py [-n 10] [--backend local|docker] [--address HOST:PORT] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from make_course import SOLUTION, notebook  # noqa: E402

from autograder.artifacts import ExecuteArtifacts  # noqa: E402
from autograder.grading.execute import modules  # noqa: E402
from autograder.grading.executors import ExecutorSettings, LocalExecutor, RayExecutor, lab_archive  # noqa: E402
from autograder.grading.intake import discover  # noqa: E402
from autograder.labs.lab import load_lab  # noqa: E402
from autograder.sandbox import get_backend  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(temp: Path) -> str:
    """A head and one more node on loopback, their files under `temp` (stop_cluster finds them by it)."""
    binary = Path(sys.executable).with_name("ray")
    port = _free_port()
    for extra in (["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}"],
                  [f"--address=127.0.0.1:{port}"]):
        proc = subprocess.run([str(binary), "start", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
                               "--num-cpus=1", "--object-store-memory=100000000", *extra],
                              capture_output=True, text=True, start_new_session=True, timeout=180)
        if proc.returncode != 0:
            raise SystemExit(f"ray start failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return f"127.0.0.1:{port}"


def stop_cluster(temp: Path) -> None:
    import psutil

    daemons = [p for p in psutil.process_iter(["cmdline"]) if str(temp) in " ".join(p.info["cmdline"] or [])]
    doomed = list(daemons)
    for p in daemons:
        try:
            doomed.extend(p.children(recursive=True))
        except psutil.Error:
            pass
    for p in doomed:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    shutil.rmtree(temp, ignore_errors=True)


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    value = fn()
    return time.perf_counter() - t, value


def run_stages(executor, lab, sub, root: Path) -> tuple[float, float]:
    """Seconds for one hand-in's execute stage, then its probe stage on the exports it made."""
    folder = root / sub.student
    t_exec, result = timed(lambda: executor.execute(lab, sub, lab.spec.limits, folder / "execute"))
    assert result.status == "ok", (sub.student, result)
    exports = ExecuteArtifacts(folder / "execute").exports
    t_probe, report = timed(lambda: executor.probe(lab, exports, lab.spec.probe_limits, folder / "probe",
                                                   modules(lab, sub)))
    assert report.status == "ok", (sub.student, report)
    return t_exec, t_probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10, help="submissions per executor (default 10)")
    parser.add_argument("--backend", default="local", help="sandbox backend on both sides (default local)")
    parser.add_argument("--address", help="an existing Ray cluster (default: start a two-node one on loopback)")
    parser.add_argument("--out", type=Path, help="append the table to this Markdown file too")
    args = parser.parse_args()

    temp = Path(tempfile.mkdtemp(prefix="rb", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    work = Path(tempfile.mkdtemp(prefix="autograder-bench-"))
    address = args.address
    try:
        if address is None:
            address = start_cluster(temp)
        course = work / "course"
        shutil.copytree(REPO / "tests" / "fixtures" / "course", course)
        lab = load_lab("toy", course)
        subs = work / "subs"
        subs.mkdir()
        for i in range(args.n + 1):  # +1: a first round that warms each side up, reported apart
            for name in ("local", "ray"):
                nbformat.write(notebook(f"# {name} copy {i}\n{SOLUTION}"), subs / f"{name}-{i:03d}.ipynb")
        backend = get_backend(args.backend)
        local = LocalExecutor(backend, ExecutorSettings(scratch=work))
        ray_ex = RayExecutor(backend, ExecutorSettings(address=address))
        t_put, _ = timed(lambda: ray_ex.prepare(lab, [lab.spec.limits, lab.spec.probe_limits]))
        archive_kib = len(lab_archive(lab)[1]) / 1024
        ray = ray_ex.ray
        noop = ray.remote(num_cpus=0.01)(lambda: None)
        ray.get(noop.remote())
        noop_s = statistics.median(timed(lambda: ray.get(noop.remote()))[0] for _ in range(20))

        times: dict[str, list[float]] = {k: [] for k in ("local execute", "ray execute", "local probe", "ray probe")}
        first: dict[str, float] = {}
        for sub in discover(subs):
            side = sub.student.split("-")[0]
            t_exec, t_probe = run_stages(local if side == "local" else ray_ex, lab, sub, work / "artifacts")
            if sub.student.endswith("-000"):
                first[f"{side} execute"], first[f"{side} probe"] = t_exec, t_probe
                continue
            times[f"{side} execute"].append(t_exec)
            times[f"{side} probe"].append(t_probe)
        ray_ex.close()
    finally:
        if args.address is None:
            stop_cluster(temp)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        f"Ray per-task cost ({platform.node()}, {os.cpu_count()} CPUs, {args.backend} backend, toy lab, "
        f"n={args.n} per side after a warm-up round, alternating; cluster: "
        f"{'two nodes on loopback, 1 CPU each' if args.address is None else args.address})",
        "",
        "| stage | local executor, s | Ray task, s | Ray adds, s | first Ray task (cold worker), s |",
        "|---|---|---|---|---|",
    ]
    for stage in ("execute", "probe"):
        lo, ra = med[f"local {stage}"], med[f"ray {stage}"]
        lines.append(f"| {stage} | {lo:.2f} | {ra:.2f} | {ra - lo:+.2f} | {first[f'ray {stage}']:.2f} |")
    lines += ["", f"A no-op Ray task's round trip: {noop_s * 1000:.1f} ms (median of 20). Putting the lab in the "
              f"object store once per batch: {t_put:.2f} s ({archive_kib:.0f} KiB tar, with the cluster checks)."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as f:
            f.write(text + "\n\n")


if __name__ == "__main__":
    main()
