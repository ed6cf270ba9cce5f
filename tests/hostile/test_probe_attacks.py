"""The probe stage attacked as a student's code would: each case exports hostile objects, the
probes run on the docker backend, and the judge decides. Every case must end in U (or in a
message that shows nothing hidden), never in G and never in the grader's own error.

Exports are pickled by a small script run as `__main__` (as a notebook's objects are), so their
classes travel by value exactly as a student's do. The table of cases is docs/security.md's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autograder.cli import main as cli
from autograder.grading.execute import modules as lab_modules
from autograder.grading.intake import take, take_folder
from autograder.grading.judge import judge
from autograder.grading.probe import load_outputs, probe
from autograder.labs.lab import find_root, load_lab
from autograder.results import ExecutionResult, SubmissionResult
from autograder.store import Store

ROOT = find_root(Path(__file__).parent)
pytestmark = pytest.mark.slow

PICKLE = """
import cloudpickle, os, sys
import numpy as np
import torch
from torch import nn
{body}
for name, value in EXPORTS.items():
    with open(os.path.join(sys.argv[1], name + ".pkl"), "wb") as f:
        cloudpickle.dump(value, f)
"""


def exports_of(folder: Path, body: str) -> Path:
    """Run `body` as __main__ (it defines EXPORTS, a dict) and pickle each export as the capture cell does."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder.parent / "make_exports.py"
    script.write_text(PICKLE.format(body=textwrap.dedent(body)))
    subprocess.run([sys.executable, str(script), str(folder)], check=True, cwd=folder.parent)
    return folder


def judged(lab_name: str, body: str, backend, tmp_path: Path, files: dict[str, str] | None = None,
           student: str = "attacker") -> SubmissionResult:
    """The verdict on hostile exports: probed on `backend`, judged on the host, recorded in a store."""
    lab = load_lab(lab_name, ROOT)
    hand_in = tmp_path / student
    hand_in.mkdir()
    (hand_in / lab.spec.notebook).write_bytes(lab.notebook_path.read_bytes())
    for name, text in (files or {}).items():
        (hand_in / name).write_text(textwrap.dedent(text))
    sub = take_folder(student, hand_in, lab.spec.files.student) if lab.spec.files.student else \
        take(student, hand_in / lab.spec.notebook)
    exports = exports_of(tmp_path / "exports", body)
    artifacts = tmp_path / "artifacts"
    report = probe(lab, exports, backend, lab.spec.probe_limits, artifacts, tmp_path, [], lab_modules(lab, sub))
    data = load_outputs(report, artifacts)
    execution = ExecutionResult(status="ok", exports=sorted(p.stem for p in exports.glob("*.pkl")))
    result = judge(lab, sub, execution, None, data, backend.name)
    store = Store(tmp_path / "grades.db")
    store.record(result, [])
    return result


def status(result: SubmissionResult, criterion: str) -> str:
    return next(c.status for c in result.criteria if c.id == criterion)


def message(result: SubmissionResult, criterion: str) -> str:
    return next(c.message for c in result.criteria if c.id == criterion)


# --- lab3: targets computed from the inputs --------------------------------------------------------

AUTOENCODER = """
class Cheat(nn.Module):
    def __init__(self):
        super().__init__()
        self.images = {{}}
        self.layer = nn.Linear(1, 1)
    def encode(self, x):
{encode}
    def decode(self, z):
{decode}
    def forward(self, x):
        return self.decode(self.encode(x))
history = {{"train_mse": [0.01, 0.005], "val_mse": [0.01, 0.006]}}
EXPORTS = {{"model": Cheat(), "history": history}}
"""


def autoencoder(encode: str, decode: str, prelude: str = "") -> str:
    pad = lambda s: textwrap.indent(textwrap.dedent(s).strip("\n"), " " * 8)  # noqa: E731
    return prelude + AUTOENCODER.format(encode=pad(encode), decode=pad(decode))


def test_attack1_reading_the_hidden_images_in_the_sandbox_gets_u(docker_backend, tmp_path):
    """Measured on 8e5a91a: the model read inputs/test.npy when unpickled, encoded each image as its row
    number and decoded by lookup: MSE 9e-17, G. Now no image file is in any sandbox, and the decoder's
    sandbox never saw the images."""
    body = autoencoder(
        encode="""
        import glob
        for path in glob.glob("inputs/*.npy") + glob.glob("/work/inputs/*.npy"):
            self.images[len(self.images)] = np.load(path)
        return torch.arange(len(x), dtype=torch.float32)[:, None]
        """,
        decode="""
        out = torch.zeros(len(z), 1, 28, 28)
        for k, i in enumerate(z[:, 0].long().tolist()):
            for images in self.images.values():
                if i < len(images):
                    out[k, 0] = torch.as_tensor(images[i], dtype=torch.float32) / 255
        return out
        """)
    result = judged("lab3-autoencoder", body, docker_backend, tmp_path)
    assert status(result, "test-reconstruction") == "fail", message(result, "test-reconstruction")
    assert result.verdict == "U"


def test_attack2_remembering_images_in_the_process_gets_u(docker_backend, tmp_path):
    """Measured on 8e5a91a: encode handed out serial numbers and kept each image in a dict; decode looked
    it up in the same process: G without training. Now decode runs in a fresh sandbox."""
    body = autoencoder(
        encode="""
        codes = []
        for image in x:
            self.images[len(self.images)] = image.clone()
            codes.append(len(self.images) - 1)
        return torch.tensor(codes, dtype=torch.float32)[:, None]
        """,
        decode="""
        out = torch.zeros(len(z), 1, 28, 28)
        for k, i in enumerate(z[:, 0].long().tolist()):
            if i in self.images:
                out[k] = self.images[i]
        return out
        """)
    result = judged("lab3-autoencoder", body, docker_backend, tmp_path)
    assert status(result, "test-reconstruction") == "fail", message(result, "test-reconstruction")
    assert result.verdict == "U"


def test_an_encoder_passing_more_numbers_than_the_latent_size_gets_u(docker_backend, tmp_path):
    """The whole image as its 'code': the decoder would be the identity. The codes are checked between
    the sandboxes (at most 32 numbers per image) and the probe fails, saying so."""
    body = autoencoder(encode="return x.flatten(1)", decode="return z.reshape(len(z), 1, 28, 28)")
    result = judged("lab3-autoencoder", body, docker_backend, tmp_path)
    assert status(result, "test-reconstruction") == "fail"
    assert "at most 32 may pass to the decoder" in message(result, "test-reconstruction")
    assert result.verdict == "U"


def test_codes_that_are_not_finite_numbers_get_u(docker_backend, tmp_path):
    body = autoencoder(encode="return torch.full((len(x), 4), float('nan'))",
                       decode="return torch.zeros(len(z), 1, 28, 28)")
    result = judged("lab3-autoencoder", body, docker_backend, tmp_path)
    assert "NaN or infinite" in message(result, "test-reconstruction")
    assert result.verdict == "U"


def test_outputs_forged_in_the_sandbox_at_unpickling_are_never_read(docker_backend, tmp_path):
    """Code that runs when the export is loaded writes perfect-looking probe outputs, a report and an
    npz bomb into the sandbox's folder; the host reads no file from a probe sandbox any more."""
    prelude = """
import zipfile
class Forger:
    def __reduce__(self):
        return (exec, ('''
import os, numpy as np, json, zipfile
os.makedirs("outputs", exist_ok=True)
np.savez("outputs/reconstructions.npz", test=np.zeros((2000, 28, 28), np.float32))
with open("report.json", "w") as f:
    json.dump({"status": "ok", "probes": {"reconstructions": {"status": "ok"}}}, f)
with zipfile.ZipFile("outputs/latent.npz", "w", zipfile.ZIP_DEFLATED) as z:
    with z.open("test.npy", "w", force_zip64=True) as m:
        m.write(np.lib.format.header_data_from_array_1_0(np.zeros(1)).__repr__().encode())
        for _ in range(64):
            m.write(bytes(1 << 20))
''',))
"""
    body = autoencoder(encode="return torch.zeros(len(x), 2)", decode="return torch.zeros(len(z), 1, 28, 28)",
                       prelude=prelude).replace('EXPORTS = {"model": Cheat(), "history": history}',
                                                'EXPORTS = {"model": Cheat(), "history": [Forger(), history][1]}')
    body = body.replace('"history": history}', '"history": history, "forger": Forger()}')
    result = judged("lab3-autoencoder", body, docker_backend, tmp_path)
    assert status(result, "test-reconstruction") == "fail"
    assert result.metrics.get("latent_dims_used", 0) == 0
    assert result.verdict == "U"


def test_patching_numpy_in_the_sandbox_does_not_reach_the_judge(docker_backend, tmp_path):
    """An export that, when loaded, makes numpy's comparisons and means always agree: it patches the
    sandbox's numpy only; the hidden tests and metrics run on the host with the host's numpy."""
    prelude = """
class Patch:
    def __reduce__(self):
        return (exec, ("import numpy as np\\nnp.allclose = lambda *a, **k: True\\nnp.mean = lambda *a, **k: 0.0\\n"
                       "np.abs = lambda a, *r, **k: a * 0\\nnp.testing.assert_allclose = lambda *a, **k: None",))
"""
    body = autoencoder(encode="return torch.rand(len(x), 8)", decode="return torch.rand(len(z), 1, 28, 28)",
                       prelude=prelude).replace('"history": history}', '"history": history, "patch": Patch()}')
    result = judged("lab3-autoencoder", body, docker_backend, tmp_path)
    assert status(result, "test-reconstruction") == "fail"
    assert status(result, "hidden-tests") == "fail"
    assert result.verdict == "U"


# --- lab1: what the model says about itself ----------------------------------------------------------

MLP = """
def forward(x, weights, biases):
    return np.zeros((len(x), 3))
history = {"train_accuracy": [0.5, 0.9], "val_accuracy": [0.5, 0.88]}
"""


def test_attack3_parameters_kept_outside_the_registered_ones_are_counted(docker_backend, tmp_path):
    """Measured on 8e5a91a: a 102,203-parameter MLP stored as self.__dict__["net"] reported 0 parameters
    (this one holds 102,337)
    and passed the 100,000 bar. Every tensor reachable from the export is counted now."""
    body = MLP + """
class Hidden(nn.Module):
    def __init__(self):
        super().__init__()
        net = nn.Sequential(nn.Linear(2, 300), nn.ReLU(), nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, 37))
        self.__dict__["net"] = net  # not registered: parameters() and state_dict() miss it
    def forward(self, x):
        return self.__dict__["net"](x)[:, :3]
EXPORTS = {"model": Hidden(), "mlp_forward": forward, "history": history}
"""
    result = judged("lab1-mlp", body, docker_backend, tmp_path)
    size = next(c for c in result.criteria if c.id == "model-size")
    assert size.status == "fail", size.message
    assert "102,337 parameters" in size.message and "outside its registered parameters" in size.message
    assert result.verdict == "U"


def test_weights_in_a_closure_and_a_global_are_counted(docker_backend, tmp_path):
    """The same budget dodged another way: weights as numpy arrays in the forward function's closure and
    in a global dict that cloudpickle carries along with the class."""
    body = MLP + """
TABLE = {"w": np.random.default_rng(0).normal(size=(2, 60_000)).astype(np.float32)}
def make():
    w2 = np.random.default_rng(1).normal(size=(60_000, 3)).astype(np.float32)
    class Sneaky(nn.Module):
        def forward(self, x):
            return torch.as_tensor(np.maximum(x.numpy() @ TABLE["w"], 0) @ w2)
    return Sneaky()
EXPORTS = {"model": make(), "mlp_forward": forward, "history": history}
"""
    result = judged("lab1-mlp", body, docker_backend, tmp_path)
    size = next(c for c in result.criteria if c.id == "model-size")
    assert size.status == "fail", size.message
    assert result.verdict == "U"


def test_a_forged_size_report_is_bounded_by_the_saved_size(docker_backend, tmp_path):
    """Code run at unpickling finds the channel to the host and sends a forged 'ready' message claiming
    0 parameters before the runner's own. The count is the student's to lie about, but the saved size
    of the export is measured on the host: 2,000,000 float32 weights do not fit a 100,000 budget."""
    body = MLP + """
class Forge:
    def __reduce__(self):
        return (exec, ('''
import json, os, socket
for fd in range(3, 64):
    try:
        s = socket.socket(fileno=os.dup(fd))
        if s.family != socket.AF_UNIX:
            continue
        msg = json.dumps({"msg": {"op": "ready", "exports": {"model": "ok", "mlp_forward": "ok", "history": "ok"},
                          "models": {"model": {"parameters": 0, "trainable": 0, "bytes": 0, "stored": 0}}},
                          "blobs": []}).encode()
        s.sendall(len(msg).to_bytes(4, "big") + msg)
    except OSError:
        continue
''',))
class Big(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2_000_000))
    def forward(self, x):
        return torch.zeros(len(x), 3)
EXPORTS = {"forge": Forge(), "model": Big(), "mlp_forward": forward, "history": history}
"""
    result = judged("lab1-mlp", body, docker_backend, tmp_path)
    size = next(c for c in result.criteria if c.id == "model-size")
    assert size.status in ("fail", "skipped") or result.probes.status != "ok", size.message
    assert result.verdict == "U"


def test_an_export_that_exits_at_unpickling_gets_u_not_error(docker_backend, tmp_path):
    body = MLP + """
class Bye:
    def __reduce__(self):
        return (exec, ("import os; os._exit(0)",))
EXPORTS = {"model": Bye(), "mlp_forward": forward, "history": history}
"""
    result = judged("lab1-mlp", body, docker_backend, tmp_path)
    assert result.probes.status == "crashed"
    assert status(result, "test-accuracy") == "fail"
    assert result.verdict == "U"


def test_an_answer_over_the_size_cap_is_refused_before_it_is_read(docker_backend, tmp_path):
    """The model answers with a 320 MiB array (zeros cost the sandbox nothing): the host checks the
    header, refuses it unread, and stops talking to that sandbox."""
    body = MLP + """
class Flood(nn.Module):
    def forward(self, x):
        return np.zeros((40_000, 1024), dtype=np.float64)
EXPORTS = {"model": Flood(), "mlp_forward": forward, "history": history}
"""
    result = judged("lab1-mlp", body, docker_backend, tmp_path)
    assert result.probes.status == "crashed" and "protocol" in result.probes.message
    assert result.verdict == "U"


def test_monkeypatching_the_comparison_in_the_sandbox_does_not_pass_hidden_tests(docker_backend, tmp_path):
    """mlp_forward returns garbage after patching np.allclose and np.testing in its own process."""
    body = """
def forward(x, weights, biases):
    import numpy
    numpy.allclose = lambda *a, **k: True
    numpy.testing.assert_allclose = lambda *a, **k: None
    return numpy.full((len(x), 3), 1 / 3)
history = {"train_accuracy": [0.5, 0.9], "val_accuracy": [0.5, 0.88]}
EXPORTS = {"model": nn.Linear(2, 3), "mlp_forward": forward, "history": history}
"""
    result = judged("lab1-mlp", body, docker_backend, tmp_path)
    assert status(result, "hidden-tests") == "fail"
    assert result.verdict == "U"


# --- attack 4: nothing hidden in what a student reads ------------------------------------------------

LEAKER = """
import glob
class Leaker(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 3)
    def forward(self, x):
        if len(x) == {n_test}:  # the hidden test split: say what it holds, and any staff file in reach
            found = "".join(open(p).read() for p in glob.glob("**/*.py", recursive=True))
            raise RuntimeError("SECRET-MARKER " + repr(x[:3].tolist()) + found)
        return self.layer(x)
def forward(x, weights, biases):
    Secret = type("Secret" + "".join(str(int(abs(v) * 9)) for v in np.ravel(weights[0])[:8]), (Exception,), {{}})
    raise Secret("HIDDEN-WEIGHTS " + repr(np.asarray(weights[0]).tolist()))
history = {{"train_accuracy": [0.5, 0.9], "val_accuracy": [0.5, 0.88]}}
EXPORTS = {{"model": Leaker(), "mlp_forward": forward, "history": history}}
"""


def test_attack4_hidden_text_never_reaches_what_a_student_reads(docker_backend, tmp_path, capsys):
    """Measured on 8e5a91a: a model raising with the hidden probe file's text, or with the hidden test
    inputs, got ~1,900 characters of it into the CLI table, show, the feedback pages and Gradescope.
    Now the student sees which probe failed and the exception's type; staff see the whole text."""
    lab = load_lab("lab1-mlp", ROOT)
    n_test = len(lab.inputs()["test"])
    result = judged("lab1-mlp", LEAKER.format(n_test=n_test), docker_backend, tmp_path)
    assert result.verdict == "U"
    scores = result.probes.probes["scores"]
    assert scores.error == "your code raised RuntimeError" and "SECRET-MARKER" in scores.detail
    forward = result.probes.probes["forward"]
    assert forward.error == "your code raised an exception of its own class"
    assert "HIDDEN-WEIGHTS" in forward.detail

    db = str(tmp_path / "grades.db")
    out = tmp_path / "published"
    assert cli(["feedback", "lab1-mlp", "--db", db, "-o", str(out / "feedback")]) == 0
    cli(["export", "lab1-mlp", "--format", "gradescope", "-o", str(out / "results.json"), "--db", db,
         "--allow-pending"])
    cli(["export", "lab1-mlp", "--format", "canvas", "-o", str(out / "canvas.csv"), "--db", db, "--allow-pending"])
    student_visible = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    student_visible += json.dumps([c.model_dump(exclude={"details"}) for c in result.criteria])
    secret_values = [f"{v:.6f}"[:7] for v in lab.inputs()["test"][:3].ravel()]
    for needle in ("SECRET-MARKER", "HIDDEN-WEIGHTS", "forward_weights", "FORWARD_SEED", "Secret",
                   *secret_values):
        assert needle not in student_visible, needle
    assert "RuntimeError" in student_visible

    capsys.readouterr()
    assert cli(["show", "lab1-mlp", "attacker", "--db", db]) == 0
    assert "SECRET-MARKER" in capsys.readouterr().out  # staff see everything


def test_lab2_layer_errors_on_secret_cases_show_their_type_only(docker_backend, tmp_path):
    """The student's conv2d raises with its (secret, hidden-seed) inputs in the message; the hidden tests
    show the student which case failed, with the exception's type only."""
    cnn = """
    import numpy as np
    def conv2d(x, w, b, stride=1, padding=0):
        raise ValueError("LEAK " + repr(np.asarray(x).ravel()[:4].tolist()))
    def max_pool2d(x, size=2, stride=None):
        raise ValueError("LEAK " + repr(np.asarray(x).ravel()[:4].tolist()))
    def relu(x):
        return np.maximum(x, 0)
    def dense(x, w, b):
        return x @ w + b
    """
    body = """
history = {"train_accuracy": [0.5, 0.9], "val_accuracy": [0.5, 0.88]}
EXPORTS = {"model": nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), "history": history}
"""
    result = judged("lab2-cnn", body, docker_backend, tmp_path, files={"cnn.py": cnn})
    hidden = next(c for c in result.criteria if c.kind == "hidden-tests")
    assert hidden.status == "fail"
    shown = " ".join(c.message for c in result.criteria)
    public_cases = "LEAK" in shown  # the public cases' inputs are public: their messages may be shown
    assert public_cases
    for test in result.tests:
        if not test.kit:
            assert "LEAK" not in test.message or not test.public, test.message
