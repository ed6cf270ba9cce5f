"""Build the sample cohort of lab1-mlp submissions from the released student notebook.

Each student fills the solution cells of `assignments/lab1-mlp/lab1-mlp.ipynb` (found by nbgrader
grade_id), as a real student would in Jupyter. Together they exercise every verdict the harness
must reach: pass, accuracy too low, generalization gap too large, crash, timeout, a missing or
off-topic reflection, one copied from another student, and an output flood. Deterministic (same
bytes on every run), so the committed files can be checked against it.
Run: `python examples/make_cohort_lab1.py`.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from answering import make_submission

ROOT = Path(__file__).resolve().parents[1]
STUDENT_NOTEBOOK = ROOT / "assignments" / "lab1-mlp" / "lab1-mlp.ipynb"
OUT_DIR = ROOT / "examples" / "submissions" / "lab1-mlp"

FORWARD = """
a = np.asarray(x, dtype=float)
for i in range(len(weights)):
    z = a @ weights[i] + biases[i]
    a = np.maximum(z, 0) if i < len(weights) - 1 else z
z = a - a.max(axis=1, keepdims=True)  # stable softmax
exp_z = np.exp(z)
return exp_z / exp_z.sum(axis=1, keepdims=True)
"""

FORWARD_ALT = """
h = x
for W, b in zip(weights[:-1], biases[:-1]):
    h = np.maximum(0.0, h @ W + b)
logits = h @ weights[-1] + biases[-1]
logits = logits - np.max(logits, axis=1, keepdims=True)
probs = np.exp(logits)
return probs / probs.sum(axis=1, keepdims=True)
"""

# One hidden layer with weight decay: enough capacity for the spirals, not enough to memorise.
TRAIN_GOOD = """
torch.manual_seed(seed)
Xt, yt = torch.tensor(X_train), torch.tensor(y_train)
Xv, yv = torch.tensor(X_val), torch.tensor(y_val)

model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, n_classes))
optimizer = torch.optim.Adam(model.parameters(), lr=0.02, weight_decay=1e-3)
loss_fn = nn.CrossEntropyLoss()
history = {"train_accuracy": [], "val_accuracy": []}


def evaluate(X, y):
    with torch.no_grad():
        return (model(X).argmax(dim=1) == y).float().mean().item()


for epoch in range(500):
    optimizer.zero_grad()
    loss = loss_fn(model(Xt), yt)
    loss.backward()
    optimizer.step()
    history["train_accuracy"].append(evaluate(Xt, yt))
    history["val_accuracy"].append(evaluate(Xv, yv))
"""

# The two students who pass wrote their code themselves, each their own way: no one else's shares it (the
# code-originality criterion would rightly send such a pair to a teacher). Helpers inside the function,
# two ELU layers trained in mini-batches from a DataLoader:
FORWARD_OWN = """
def relu(v):
    return np.where(v > 0, v, 0)

def softmax_rows(v):
    v = v - np.max(v, axis=-1, keepdims=True)
    ev = np.exp(v)
    return ev / np.sum(ev, axis=-1, keepdims=True)

out = np.asarray(x)
n_layers = len(weights)
for k in range(n_layers - 1):
    out = relu(np.matmul(out, weights[k]) + biases[k])
return softmax_rows(np.matmul(out, weights[-1]) + biases[-1])
"""

TRAIN_OWN = """
torch.manual_seed(seed)
data = torch.utils.data.TensorDataset(torch.tensor(X_train), torch.tensor(y_train))
loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(2, 64), nn.ELU(), nn.Linear(64, 64), nn.ELU(), nn.Linear(64, n_classes))
sgd = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
train_acc, val_acc = [], []


def accuracy_of(features, labels):
    model.eval()
    with torch.no_grad():
        predictions = model(torch.tensor(features)).argmax(dim=1).numpy()
    model.train()
    return float(np.mean(predictions == labels))


for epoch in range(80):
    for xb, yb in loader:
        sgd.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        sgd.step()
    train_acc.append(accuracy_of(X_train, y_train))
    val_acc.append(accuracy_of(X_val, y_val))
history = {"train_accuracy": train_acc, "val_accuracy": val_acc}
"""

# ... and a log-sum-exp softmax, full-batch training that keeps the best model (early stopping):
FORWARD_EARLY = """
h = x
last = len(weights) - 1
for i, (w, b) in enumerate(zip(weights, biases)):
    h = h @ w + b
    if i != last:
        h = np.clip(h, 0, None)
m = np.amax(h, axis=1, keepdims=True)
logsum = m + np.log(np.exp(h - m).sum(axis=1, keepdims=True))
return np.exp(h - logsum)
"""

TRAIN_EARLY = """
import copy as _copy

torch.manual_seed(seed)
tx, ty = torch.from_numpy(X_train).float(), torch.from_numpy(y_train).long()
vx, vy = torch.from_numpy(X_val).float(), torch.from_numpy(y_val).long()
model = nn.Sequential()
model.add_module("fc1", nn.Linear(2, 100))
model.add_module("act1", nn.LeakyReLU(0.1))
model.add_module("drop", nn.Dropout(0.1))
model.add_module("fc2", nn.Linear(100, n_classes))
adam = torch.optim.Adam(model.parameters(), lr=0.02, weight_decay=1e-3)
history = {"train_accuracy": [], "val_accuracy": []}
best_val, best_state, patience = -1.0, None, 0
while len(history["val_accuracy"]) < 800 and patience < 100:
    model.train()
    adam.zero_grad()
    out = model(tx)
    loss = nn.functional.nll_loss(torch.log_softmax(out, dim=1), ty)
    loss.backward()
    adam.step()
    model.eval()
    with torch.no_grad():
        tr = (model(tx).max(1).indices == ty).double().mean().item()
        va = (model(vx).max(1).indices == vy).double().mean().item()
    history["train_accuracy"].append(tr)
    history["val_accuracy"].append(va)
    if va > best_val:
        best_val, best_state, patience = va, _copy.deepcopy(model.state_dict()), 0
        best_len = len(history["val_accuracy"])
    else:
        patience += 1
model.load_state_dict(best_state)
model.eval()
for curve in history.values():  # the history ends with the model kept
    del curve[best_len:]
"""

# A linear classifier cannot separate interleaved spirals: it underfits.
TRAIN_UNDERFIT = """
torch.manual_seed(seed)
Xt, yt = torch.tensor(X_train), torch.tensor(y_train)
Xv, yv = torch.tensor(X_val), torch.tensor(y_val)

model = nn.Linear(2, n_classes)  # start simple
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
history = {"train_accuracy": [], "val_accuracy": []}
for epoch in range(100):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(Xt), yt)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        history["train_accuracy"].append((model(Xt).argmax(1) == yt).float().mean().item())
        history["val_accuracy"].append((model(Xv).argmax(1) == yv).float().mean().item())
"""

# Big and long, no regularisation: memorises the noisy training set.
TRAIN_OVERFIT = """
torch.manual_seed(seed)
Xt, yt = torch.tensor(X_train), torch.tensor(y_train)
Xv, yv = torch.tensor(X_val), torch.tensor(y_val)

model = nn.Sequential(
    nn.Linear(2, 128), nn.ReLU(),
    nn.Linear(128, 128), nn.ReLU(),
    nn.Linear(128, 128), nn.ReLU(),
    nn.Linear(128, n_classes),
)
optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
history = {"train_accuracy": [], "val_accuracy": []}
for epoch in range(2000):  # train until the training loss is ~0
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(Xt), yt)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        history["train_accuracy"].append((model(Xt).argmax(1) == yt).float().mean().item())
        history["val_accuracy"].append((model(Xv).argmax(1) == yv).float().mean().item())
"""

# The first layer takes n_classes inputs instead of 2: a shape error on the first forward pass.
TRAIN_CRASH = """
torch.manual_seed(seed)
Xt, yt = torch.tensor(X_train), torch.tensor(y_train)
Xv, yv = torch.tensor(X_val), torch.tensor(y_val)

model = nn.Sequential(nn.Linear(n_classes, 64), nn.ReLU(), nn.Linear(64, n_classes))
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
history = {"train_accuracy": [], "val_accuracy": []}
for epoch in range(300):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(Xt), yt)
    loss.backward()
    optimizer.step()
"""

# "Train until good enough" with a target above what the noisy data allows: never ends.
TRAIN_TIMEOUT = """
torch.manual_seed(seed)
Xt, yt = torch.tensor(X_train), torch.tensor(y_train)
Xv, yv = torch.tensor(X_val), torch.tensor(y_val)

model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, n_classes))
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
history = {"train_accuracy": [0.0], "val_accuracy": [0.0]}
while history["val_accuracy"][-1] < 0.99:  # keep going until the model is really good
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(Xt), yt)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        history["train_accuracy"].append((model(Xt).argmax(1) == yt).float().mean().item())
        history["val_accuracy"].append((model(Xv).argmax(1) == yv).float().mean().item())
"""

# Small and briefly trained: its hidden-test accuracy lands on either side of the 0.75 bar with the seed
# (seeds 0-9: 0.7360 0.7320 0.8015 0.8270 0.7545 0.7560 0.7935 0.6970 0.7620 0.7385; median 0.7553). Seed 0
# alone would be a U; the rubric's `borderline: {policy: rerun}` judges the median of 5 seeds instead.
FORWARD_BORDERLINE = """
probs = None
layer_input = np.array(x, dtype=np.float64)
for depth, (W, b) in enumerate(zip(weights, biases), start=1):
    pre = layer_input.dot(W) + b
    layer_input = pre if depth == len(weights) else pre * (pre > 0)
shifted = layer_input - layer_input.max(axis=-1)[:, None]
probs = np.exp(shifted)
probs /= probs.sum(axis=-1)[:, None]
return probs
"""

TRAIN_BORDERLINE = """
torch.manual_seed(seed)
inputs, targets = torch.tensor(X_train), torch.tensor(y_train)
val_inputs, val_targets = torch.tensor(X_val), torch.tensor(y_val)
model = nn.Sequential(nn.Linear(2, 10), nn.ReLU(), nn.Linear(10, n_classes))
opt = torch.optim.Adam(model.parameters(), lr=0.02)
history = dict(train_accuracy=[], val_accuracy=[])
for step in range(240):  # short on purpose: my laptop is slow
    opt.zero_grad()
    nn.functional.cross_entropy(model(inputs), targets).backward()
    opt.step()
    with torch.no_grad():
        for key, (a, b) in (("train_accuracy", (inputs, targets)), ("val_accuracy", (val_inputs, val_targets))):
            history[key].append(float((model(a).argmax(-1) == b).float().mean()))
"""

# Correct training, then leftover debugging output: about 111 MB of text.
TRAIN_FLOOD = TRAIN_EARLY + """
for step in range(110_000):  # debugging leftover
    print(f"step {step:06d} " + "=" * 1000)
"""

REFLECTIONS = {
    "good": """
An overfitted model memorises quirks of its training data, so its measured accuracy promises more
than it delivers. Deployed, for instance to sort loan applications or to moderate comments, it
would make confident mistakes on cases unlike the ones it saw, and those mistakes tend to hit
people who were under-represented in the data. Because the errors look like normal decisions, the
people affected may never find out that the system failed them. In media technology, deep
learning powers recommendation feeds that learn what keeps us watching; optimising for engagement
can push people towards more extreme content and narrow the range of views they encounter.
""",
    "underfit": """
If a model overfits, it seems to work during development but breaks on real inputs. In a deployed
system such as a medical triage tool, that means patients could be sent home or sent to the wrong
ward because the model learned noise instead of the real pattern. The harm is worse when nobody
checks performance on new data after launch. A societal consequence of deep learning in media is
generative AI: text, images and music can now be produced at scale, which threatens the income of
illustrators, voice actors and journalists, and floods platforms with low-quality content that
makes reliable information harder to find.
""",
    "overfit": """
Overfitting is dangerous because the numbers we report come from data the model has effectively
seen. A face recognition system that overfits its training photos may identify some groups well
and others badly; used by police, this can lead to wrongful stops or arrests of innocent people,
mostly from groups missing in the data. Testing on truly held-out data and reporting the
uncertainty would reduce this risk. In media technology, deep learning is used to create
deepfake videos. They make it possible to put words in anyone's mouth, which can be used for
political disinformation and non-consensual imagery, and makes people doubt genuine recordings.
""",
    "crash": """
A model that overfits does well in the lab and badly in the world. Imagine it deciding which
insurance claims look fraudulent: honest customers whose claims look a bit unusual would be
flagged and delayed, and they would have no idea why. The company would trust the high accuracy
from training and not notice. One consequence of deep learning in media is automatic content
moderation. It lets platforms remove huge amounts of harmful material, but it also removes
legitimate speech, for example posts in minority languages or satire, so a few companies' models
end up deciding what millions of people are allowed to say.
""",
    "timeout": """
When a network memorises its training set it fails silently on new data. Deployed in hiring, an
overfitted CV screener could reject qualified candidates just because their CVs differ from the
examples it was trained on, reinforcing past discrimination while looking objective. The victims
cannot see the model, so they cannot contest its errors. Regular audits on fresh, representative
data are needed. In media technology, deep learning enables voice cloning from a few seconds of
audio. This has creative uses in dubbing and accessibility, but it also enables scam calls that
imitate relatives and makes audio evidence less trustworthy.
""",
    "flood_output": """
Overfitting harms people when we believe a model is more reliable than it is. For example, an
overfitted model that predicts whether a student will drop out could label some students as high
risk based on coincidental patterns in a small dataset, and they might be treated differently
because of it. Such errors are hard to notice once the system is in use. For media technology,
deep learning makes personalised news and ads possible. This can help people find relevant
content, but it also creates filter bubbles and lets targeted political ads reach voters with
messages that nobody else sees or can fact-check.
""",
}

# A copy of another student's reflection with a few words changed: originality sends it to review.
REFLECTIONS["copycat"] = (
    REFLECTIONS["overfit"]
    .replace("Overfitting is dangerous", "Overfitting is risky")
    .replace("may identify some groups well", "may recognise some groups well")
    .replace("would reduce this risk", "would lower this risk")
    .replace("deepfake videos", "deepfake clips")
)

# Well written, long enough, and about something else: the themes are missing.
REFLECTIONS["off_topic"] = """
This lab was a good introduction to PyTorch. At first I wrote the training loop without zeroing
the gradients, and the loss jumped around until I found the mistake by printing the gradient norms
after every step. Choosing the learning rate took most of my time: with 0.1 the loss diverged, and
with 0.001 nothing happened for hundreds of epochs. In the end Adam with 0.01 worked well. I also
learned that plotting the loss per epoch makes it much easier to see what is going on than reading
numbers in the output, and that fixing the random seed makes my experiments repeatable.
"""

# Written for the borderline sample: its own words, on both parts of the prompt.
REFLECTIONS["borderline"] = """
Overfitting means the network has learned the training points, noise included, rather than the
shape of the problem. If such a model were used to screen benefit claims, its errors would not be
random: people whose situation is unusual, or rare in the training data, would be refused more
often, and the harm would be unfair because it falls on the same groups again and again. A high
score on the training set would hide this. One consequence of deep learning in media technology
is that synthetic voices and deepfake videos are now cheap to make, so misinformation can spread
faster than it can be checked, and people may stop trusting real recordings as evidence.
"""

STUDENTS = {  # name: {grade_id: content}; an absent reflection stays the placeholder
    "good": dict(mlp_forward=FORWARD_OWN, train_model=TRAIN_OWN, reflection=REFLECTIONS["good"]),
    "underfit": dict(mlp_forward=FORWARD_ALT, train_model=TRAIN_UNDERFIT, reflection=REFLECTIONS["underfit"]),
    "overfit": dict(mlp_forward=FORWARD, train_model=TRAIN_OVERFIT, reflection=REFLECTIONS["overfit"]),
    "crash": dict(mlp_forward=FORWARD_ALT, train_model=TRAIN_CRASH, reflection=REFLECTIONS["crash"]),
    "timeout": dict(mlp_forward=FORWARD, train_model=TRAIN_TIMEOUT, reflection=REFLECTIONS["timeout"]),
    "no_reflection": dict(mlp_forward=FORWARD_ALT, train_model=TRAIN_GOOD),
    "copycat": dict(mlp_forward=FORWARD_ALT, train_model=TRAIN_GOOD, reflection=REFLECTIONS["copycat"]),
    "off_topic": dict(mlp_forward=FORWARD, train_model=TRAIN_GOOD, reflection=REFLECTIONS["off_topic"]),
    "flood_output": dict(mlp_forward=FORWARD_EARLY, train_model=TRAIN_FLOOD, reflection=REFLECTIONS["flood_output"]),
    "borderline": dict(mlp_forward=FORWARD_BORDERLINE, train_model=TRAIN_BORDERLINE,
                       reflection=REFLECTIONS["borderline"]),
}


def main() -> None:
    template = nbformat.read(STUDENT_NOTEBOOK, as_version=4)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, answers in STUDENTS.items():
        nbformat.write(make_submission(template, answers), OUT_DIR / f"{name}.ipynb")
        print(f"wrote {(OUT_DIR / f'{name}.ipynb').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
