"""Build the sample cohort of lab4-numpy-mlp submissions from the released module template and report.

A module-only lab: each student fills the stubs of `assignments/lab4-numpy-mlp/mlp.py` (found by
function name), as a real student would, and writes the report from `assignments/lab4-numpy-mlp/report.md`,
handing in a folder with both. Together they exercise the verdicts the harness must reach: pass
(twice, with different code, once with the report as a PDF), a count_parameters() that forgets the
biases, a softmax and cross-entropy that overflow on large logits (they train, but give NaN where
the logits are large), and the template handed back untouched. Deterministic (same bytes on every
run, the PDF included), so the committed files can be checked against it.
Run: `python examples/make_cohort_lab4.py`.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

from answering import STUB, fill_code

ROOT = Path(__file__).resolve().parents[1]
LAB_DIR = ROOT / "assignments" / "lab4-numpy-mlp"
MODULE_TEMPLATE = LAB_DIR / "mlp.py"
REPORT_TEMPLATE = LAB_DIR / "report.md"
OUT_DIR = ROOT / "examples" / "submissions" / "lab4-numpy-mlp"
PLACEHOLDER = "YOUR ANSWER HERE"

# --- mlp.py: the student's network ---------------------------------------------------------------

# Vectorised, a max-shifted softmax written out by hand, pixels and HOG features, one hidden layer.
MLP_GOOD = {
    "init_params": """
        params = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            W = rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)
            params.append((W, np.zeros(n_out)))
        return params
        """,
    "count_parameters": """
        total = 0
        for W, b in params:
            total += W.size + b.size
        return int(total)
        """,
    "relu": """
        z = np.asarray(z, dtype=float)
        return np.where(z > 0, z, 0.0)
        """,
    "softmax": """
        z = np.asarray(logits, dtype=float)
        z = z - z.max(axis=1, keepdims=True)  # the largest logit becomes 0: exp() cannot overflow
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
        """,
    "cross_entropy": """
        z = np.asarray(logits, dtype=float)
        y = np.asarray(y)
        m = z.max(axis=1, keepdims=True)
        log_probs = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
        return float(-log_probs[np.arange(len(y)), y].mean())
        """,
    "forward": """
        hs = [np.asarray(X, dtype=float)]
        for W, b in params[:-1]:
            hs.append(relu(hs[-1] @ W + b))
        W, b = params[-1]
        logits = hs[-1] @ W + b
        return logits, (hs, logits)
        """,
    "backward": """
        hs, logits = cache
        y = np.asarray(y)
        n = logits.shape[0]
        delta = softmax(logits)
        delta[np.arange(n), y] -= 1
        delta /= n
        grads = [None] * len(params)
        for layer in reversed(range(len(params))):
            W, _ = params[layer]
            grads[layer] = (hs[layer].T @ delta, delta.sum(axis=0))
            if layer > 0:
                delta = (delta @ W.T) * (hs[layer] > 0)
        return grads
        """,
    "preprocess": """
        imgs = exposure.rescale_intensity(np.asarray(images, dtype=float), in_range=(0, PIXEL_MAX),
                                          out_range=(0.0, 1.0))
        feats = []
        for img in imgs:
            hog = feature.hog(img, orientations=9, pixels_per_cell=(4, 4), cells_per_block=(1, 1))
            feats.append(np.concatenate([img.ravel(), hog]))
        return np.array(feats)
        """,
    "train": """
        rng = np.random.default_rng(seed)
        X = preprocess(images)
        y = np.asarray(labels)
        params = init_params([X.shape[1], 48, N_CLASSES], rng)
        lr = 0.2
        for epoch in range(40):
            if epoch == 25:
                lr = 0.05  # smaller steps once it is close
            perm = rng.permutation(len(y))
            for i in range(0, len(y), 50):
                batch = perm[i:i + 50]
                _, grads = loss_and_grads(params, X[batch], y[batch])
                params = [(W - lr * dW, b - lr * db) for (W, b), (dW, db) in zip(params, grads)]
        return params
        """,
}

# scipy.special, a cache of its own, two hidden layers, momentum, pixels and coarser HOG features.
MLP_LOOPS = {
    "init_params": """
        params = []
        for i in range(len(sizes) - 1):
            std = (2 / sizes[i]) ** 0.5
            params.append((rng.normal(0, std, (sizes[i], sizes[i + 1])), np.zeros(sizes[i + 1])))
        return params
        """,
    "count_parameters": """
        return sum(int(np.prod(W.shape)) + int(np.prod(b.shape)) for W, b in params)
        """,
    "relu": """
        return np.maximum(z, 0).astype(float)
        """,
    "softmax": """
        return special.softmax(logits, axis=1)
        """,
    "cross_entropy": """
        logits = np.asarray(logits, dtype=float)
        log_p = logits - special.logsumexp(logits, axis=1, keepdims=True)
        return -float(log_p[np.arange(len(y)), y].mean())
        """,
    "forward": """
        a = np.asarray(X, dtype=float)
        inputs, pre = [], []
        for i, (W, b) in enumerate(params):
            inputs.append(a)
            z = a @ W + b
            pre.append(z)
            a = relu(z) if i < len(params) - 1 else z
        return a, {"inputs": inputs, "pre": pre}
        """,
    "backward": """
        inputs, pre = cache["inputs"], cache["pre"]
        onehot = np.zeros_like(pre[-1])
        onehot[np.arange(len(y)), y] = 1.0
        dz = (softmax(pre[-1]) - onehot) / len(y)
        grads = []
        for i in range(len(params) - 1, -1, -1):
            grads.insert(0, (inputs[i].T @ dz, dz.sum(axis=0)))
            if i > 0:
                dz = (dz @ params[i][0].T) * (pre[i - 1] > 0)
        return grads
        """,
    "preprocess": """
        images = np.asarray(images, dtype=float)
        out = []
        for image in images:
            scaled = exposure.rescale_intensity(image, in_range=(0, PIXEL_MAX), out_range=(0.0, 1.0))
            hog = feature.hog(scaled, orientations=6, pixels_per_cell=(4, 4), cells_per_block=(1, 1))
            out.append(np.concatenate([scaled.flatten(), hog]))
        return np.array(out)
        """,
    "train": """
        rng = np.random.default_rng(seed)
        X = preprocess(images)
        params = init_params([X.shape[1], 64, 32, N_CLASSES], rng)
        velocity = [(np.zeros_like(W), np.zeros_like(b)) for W, b in params]
        for epoch in range(25):
            order = rng.permutation(len(labels))
            for start in range(0, len(labels), 32):
                idx = order[start:start + 32]
                _, grads = loss_and_grads(params, X[idx], labels[idx])
                velocity = [(0.9 * vW - 0.02 * dW, 0.9 * vb - 0.02 * db)
                            for (vW, vb), (dW, db) in zip(velocity, grads)]
                params = [(W + vW, b + vb) for (W, b), (vW, vb) in zip(params, velocity)]
        return params
        """,
}

# A third hand: a dict as the cache, one-hot targets in backward(), momentum with a decaying learning rate.
# The two students who get a detail wrong wrote theirs from this, so that no student who passes shares code
# with another (the code-originality criterion would rightly send such a pair to a teacher).
MLP_MOMENTUM = {
    "init_params": """
        params = []
        for fan_in, fan_out in zip(sizes, sizes[1:]):
            weight = rng.standard_normal((fan_in, fan_out)) * (2.0 / fan_in) ** 0.5
            params.append((weight, np.zeros(fan_out)))
        return params
        """,
    "count_parameters": """
        total = 0
        for weight, bias in params:
            total += np.prod(weight.shape) + np.prod(bias.shape)
        return int(total)
        """,
    "relu": """
        out = z.copy()
        out[out < 0] = 0
        return out
        """,
    "softmax": """
        top = np.max(logits, axis=-1, keepdims=True)
        unnorm = np.exp(logits - top)
        return unnorm / np.sum(unnorm, axis=-1, keepdims=True)
        """,
    "cross_entropy": """
        rows = np.arange(logits.shape[0])
        lse = special.logsumexp(logits, axis=1)
        return float(np.mean(lse - logits[rows, y]))
        """,
    "forward": """
        inputs, pre = [], []
        a = X
        for index, (weight, bias) in enumerate(params):
            inputs.append(a)
            z = a @ weight + bias
            pre.append(z)
            a = z if index == len(params) - 1 else relu(z)
        return a, {"inputs": inputs, "pre": pre}
        """,
    "backward": """
        inputs, pre = cache["inputs"], cache["pre"]
        count = y.shape[0]
        onehot = np.eye(pre[-1].shape[1])[y]
        grad_z = (softmax(pre[-1]) - onehot) / count
        result = [None] * len(params)
        for index in reversed(range(len(params))):
            result[index] = (inputs[index].T @ grad_z, grad_z.sum(0))
            if index > 0:
                grad_a = grad_z @ params[index][0].T
                grad_z = grad_a * (pre[index - 1] > 0)
        return result
        """,
    "preprocess": """
        pixels = exposure.rescale_intensity(np.asarray(images, dtype=float), in_range=(0, PIXEL_MAX))
        hogs = np.stack([feature.hog(img, orientations=8, pixels_per_cell=(4, 4), cells_per_block=(1, 1))
                         for img in pixels])
        return np.concatenate([pixels.reshape(pixels.shape[0], -1), hogs], axis=1)
        """,
    "train": """
        features = preprocess(images)
        net = init_params([features.shape[1], 96, N_CLASSES], seed)
        shuffle = np.random.default_rng(seed + 1)
        lr, momentum = 0.05, 0.9
        velocity = [(np.zeros_like(W), np.zeros_like(b)) for W, b in net]
        for epoch in range(30):
            idx = shuffle.permutation(features.shape[0])
            for chunk in np.array_split(idx, max(1, features.shape[0] // 50)):
                _, grads = loss_and_grads(net, features[chunk], labels[chunk])
                velocity = [(momentum * vW - lr * gW, momentum * vb - lr * gb)
                            for (vW, vb), (gW, gb) in zip(velocity, grads)]
                net = [(W + vW, b + vb) for (W, b), (vW, vb) in zip(net, velocity)]
            lr *= 0.95
        return net
        """,
}

# Counts the weights only: a classic slip. The network itself is fine.
MLP_WRONG_COUNT = dict(MLP_MOMENTUM, count_parameters="""
        return int(sum(W.size for W, b in params))
        """)

# The textbook formulas without the max shift: exact for the small logits of training, so the network
# trains well, but exp() overflows to inf for logits in the hundreds and the results turn into NaN.
MLP_UNSTABLE = dict(MLP_MOMENTUM, softmax="""
        e = np.exp(np.asarray(logits, dtype=float))
        return e / e.sum(axis=1, keepdims=True)
        """, cross_entropy="""
        p = softmax(logits)
        return float(-np.mean(np.log(p[np.arange(len(y)), y])))
        """)

# --- report.md: the results and the ethics reflection ----------------------------------------------

RESULTS = {
    "good": """
One hidden layer of 48 ReLU units on 100 features: the 64 pixels scaled to [0, 1] and a 36-number
HOG (9 orientations in four 4x4 cells). Mini-batches of 50, learning rate 0.2 for 25 epochs and
0.05 for 15 more. Validation accuracy 0.98. A second hidden layer did not help: the training
accuracy was already near 1 and the validation accuracy stayed the same.
""",
    "pdf_report": """
Two hidden layers (64 and 32 units), pixels plus a 24-number HOG, SGD with momentum 0.9, learning
rate 0.02, batches of 32, 25 epochs. Validation accuracy about 0.97. Without the HOG features it
was about one point lower.
""",
    "wrong_param_count": """
Hidden layer of 48 units, pixels and HOG features, 40 epochs. About 0.98 on the validation set.
I tried a learning rate of 1.0, which made the loss jump around and never settle.
""",
    "bad_activation": """
48 hidden units, 40 epochs, learning rate 0.2 lowered to 0.05 after 25 epochs. The validation
accuracy is 0.98. Standardising the features with the batch mean made things worse, because a
single image then got different features than in a batch.
""",
}

REFLECTIONS = {
    "good": """
A model like this only knows the handwriting it was shown, and here that is 43 people who probably
went to school in the same country and learned the same way of writing numbers. Someone who writes
a seven with a bar through it, a one with a long upstroke, or a four that is open at the top writes
in a style the network has hardly seen. The same goes for children, for old people whose hands shake,
and for anyone with a motor impairment.

For them a misread digit is not an abstract error rate. A postcode read wrongly means a letter that
arrives a week late or never; an amount read wrongly on a cheque means money paid to the wrong
account; a wrong digit on an exam paper changes a grade. Those who are misread most often are also
those with the least power to notice and complain, which makes the harm unfair as well as costly.

Before such a system decides anything, every reading below a confidence threshold should go to a
person, the accuracy should be measured separately for different groups of writers, and the person
concerned must be able to see what was read and appeal it.
""",
    "pdf_report": """
The data set was written by a few dozen volunteers, so it says little about how the rest of the
population writes. People who learned other conventions for numbers, left-handed writers who
smudge, children and elderly people with unsteady hands are likely to be read worse, and the model
would be biased against them without anyone having meant it to be.

If a tax office or a bank used such a reader, a single wrong digit could mean a tax demand that is
too high, a payment that goes to a stranger, or a form that is rejected again and again. The person
affected rarely knows that a machine read their form, so they cannot tell why it went wrong.

There should always be a human in the loop for decisions that matter: uncertain readings go to a
clerk, the system shows the citizen what it read so that they can correct it, and someone is
accountable when it errs. The error rates should also be audited for different groups before and
after it is deployed.
""",
    "wrong_param_count": """
Forty-three writers is a very small and narrow sample of how people write digits. My guess is that
the volunteers were mostly students and staff at one university, young adults with similar
schooling. People whose handwriting looks different, because of age, a tremor, a disability or
because they learned to write in another country, are underrepresented, so the classifier will
make more mistakes on exactly their forms.

The consequences fall on individuals. A mail sorting machine that misreads a postcode delays
someone's medicine or a court letter. Automatic marking of exam scores could give a student a lower
grade, and they may never find out that the number was misread rather than their answer wrong.
That is a harm that is both unfair and hard to detect.

Before deployment the error rate should be tested on writers from many groups, readings with low
confidence should be checked manually, and there must be a simple way to appeal a decision and get
a person to look at the original document.
""",
    "bad_activation": """
The training data come from 43 people, so the model learns their habits: how they close a four, how
they slant a nine, whether they put a bar on a seven. Handwriting from people outside that group,
such as immigrants taught other conventions, young children or elderly people with arthritis, is
missing from the data, and the network will be less accurate for them.

Imagine the system reading amounts on bank transfer forms. A misread digit means that money goes to
the wrong account or the wrong amount is paid, and it is the customer who has to discover the
mistake and spend time fixing it. If one group is misread more often, that group is systematically
disadvantaged by a service everyone else finds convenient.

A bank should therefore let a person review every uncertain reading, show customers what was read
before money moves, keep a way to contest errors, and audit the accuracy for different kinds of
writers regularly, with someone clearly responsible for acting on the results.
""",
}

STUDENTS = {  # name: (bodies of mlp.py or None for the template untouched, report: "md" | "pdf" | None)
    "good": (MLP_GOOD, "md"),
    "pdf_report": (MLP_LOOPS, "pdf"),
    "wrong_param_count": (MLP_WRONG_COUNT, "md"),
    "bad_activation": (MLP_UNSTABLE, "md"),
    "untouched": (None, None),
}


def make_module(template: str, bodies: dict[str, str]) -> str:
    """The module template with the stub of each function `name` replaced by `bodies[name]`."""
    parts = re.split(r"(?m)^(?=def )", template)
    filled = []
    for part in parts:
        match = re.match(r"def (\w+)\(", part)
        filled.append(fill_code(part, bodies[match.group(1)]) if match and match.group(1) in bodies else part)
    text = "".join(filled)
    if STUB[1] in text:
        raise ValueError("a function of the template was left unanswered")
    return text


def make_report(template: str, results: str, reflection: str) -> str:
    """The report template with its two placeholders answered, in order: results, then the reflection."""
    if template.count(PLACEHOLDER) != 2:
        raise ValueError(f"the report template should hold {PLACEHOLDER!r} twice, under Results and Ethics reflection")
    answers = iter([results, reflection])
    return re.sub(re.escape(PLACEHOLDER), lambda _: textwrap.dedent(next(answers)).strip("\n"), template)


def pdf_text_lines(markdown: str, width: int = 92) -> list[tuple[str, bool]]:
    """(line, is heading) for a PDF page: headings without their #, paragraphs wrapped, blank lines kept."""
    lines: list[tuple[str, bool]] = []
    for block in markdown.strip().split("\n\n"):
        if block.startswith("#"):
            lines.append((block.lstrip("#").strip(), True))
        else:
            lines.extend((line, False) for line in textwrap.wrap(" ".join(block.split()), width))
        lines.append(("", False))
    return lines


def make_pdf(lines: list[tuple[str, bool]]) -> bytes:
    """A one-page PDF (A4, Helvetica) holding `lines` as real text, as a word processor's export
    would, with no creation date or id: the same bytes on every run. ASCII text only."""
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 10 Tf", "13 TL", "56 800 Td"]
    for text, heading in lines:
        ops += ["/F1 13 Tf" if heading else "/F1 10 Tf", f"({escape(text)}) Tj", "T*"]
    ops.append("ET")
    stream = "\n".join(ops).encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def files_of(name: str, template_module: str, template_report: str, bodies: dict | None, report: str | None
             ) -> dict[str, bytes]:
    if bodies is None:  # handed back as handed out
        return {"mlp.py": template_module.encode(), "report.md": template_report.encode()}
    files = {"mlp.py": make_module(template_module, bodies).encode()}
    text = make_report(template_report, RESULTS[name], REFLECTIONS[name])
    if report == "pdf":
        files["report.pdf"] = make_pdf(pdf_text_lines(text))
    else:
        files["report.md"] = text.encode()
    return files


def main() -> None:
    template_module = MODULE_TEMPLATE.read_text(encoding="utf-8")
    template_report = REPORT_TEMPLATE.read_text(encoding="utf-8")
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)  # a student dropped from the list leaves no stale folder behind
    OUT_DIR.mkdir(parents=True)
    for name, (bodies, report) in STUDENTS.items():
        folder = OUT_DIR / name
        folder.mkdir()
        for file, data in files_of(name, template_module, template_report, bodies, report).items():
            (folder / file).write_bytes(data)
        print(f"wrote {folder.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
