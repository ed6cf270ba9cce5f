"""Build the sample cohort of lab2-cnn submissions from the released notebook and module template.

Each student fills the solution cells of `assignments/lab2-cnn/lab2-cnn.ipynb` (found by nbgrader
grade_id) and the stubs of `assignments/lab2-cnn/cnn.py` (found by function name), as a real student
would, and hands in a folder with both. Together they exercise the verdicts the harness must reach:
pass (twice, with different code, once as a zip file), a generalization gap too large, accuracy too
low, a crash in training, a convolution that passes the notebook's checks but not the graded tests,
a missing module and an off-topic reflection. Deterministic (same bytes on every run, the zip
included), so the committed files can be checked against it. Run: `python examples/make_cohort_lab2.py`.
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from pathlib import Path

import nbformat
from answering import STUB, fill_code, make_submission

ROOT = Path(__file__).resolve().parents[1]
LAB_DIR = ROOT / "assignments" / "lab2-cnn"
STUDENT_NOTEBOOK = LAB_DIR / "lab2-cnn.ipynb"
MODULE_TEMPLATE = LAB_DIR / "cnn.py"
OUT_DIR = ROOT / "examples" / "submissions" / "lab2-cnn"
ZIP_DATE = (2026, 2, 1, 12, 0, 0)  # every member of the zip file: no build time in the bytes

# --- cnn.py: the student's NumPy layers --------------------------------------------------------

# Loops over the output pixels, each a tensordot of one window with every filter.
LAYERS_LOOPS = {
    "conv2d": """
        x = np.asarray(x, dtype=float)
        N, C, H, W = x.shape
        F, _, KH, KW = w.shape
        xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        H_out = (H + 2 * padding - KH) // stride + 1
        W_out = (W + 2 * padding - KW) // stride + 1
        out = np.zeros((N, F, H_out, W_out))
        for i in range(H_out):
            for j in range(W_out):
                patch = xp[:, :, i * stride:i * stride + KH, j * stride:j * stride + KW]  # (N, C, KH, KW)
                out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
        return out + np.asarray(b).reshape(1, -1, 1, 1)
        """,
    "max_pool2d": """
        if stride is None:
            stride = size
        N, C, H, W = x.shape
        H_out = (H - size) // stride + 1
        W_out = (W - size) // stride + 1
        out = np.zeros((N, C, H_out, W_out))
        for i in range(H_out):
            for j in range(W_out):
                out[:, :, i, j] = x[:, :, i * stride:i * stride + size, j * stride:j * stride + size].max(axis=(2, 3))
        return out
        """,
    "relu": """
        return np.maximum(x, 0)
        """,
    "dense": """
        return np.dot(x, w) + b
        """,
}

# Vectorised: one strided slice per kernel offset (im2col), then a single einsum.
LAYERS_IM2COL = {
    "conv2d": """
        N, C, H, W = x.shape
        F, _, KH, KW = w.shape
        x = np.pad(x, [(0, 0), (0, 0), (padding, padding), (padding, padding)], mode="constant")
        Ho = (H + 2 * padding - KH) // stride + 1
        Wo = (W + 2 * padding - KW) // stride + 1
        cols = np.empty((N, C, KH, KW, Ho, Wo))
        for di in range(KH):
            for dj in range(KW):
                cols[:, :, di, dj] = x[:, :, di:di + stride * Ho:stride, dj:dj + stride * Wo:stride]
        return np.einsum("ncijhw,fcij->nfhw", cols, w) + b[None, :, None, None]
        """,
    "max_pool2d": """
        stride = stride or size
        N, C, H, W = x.shape
        Ho, Wo = (H - size) // stride + 1, (W - size) // stride + 1
        out = np.full((N, C, Ho, Wo), -np.inf)
        for di in range(size):
            for dj in range(size):
                out = np.maximum(out, x[:, :, di:di + stride * Ho:stride, dj:dj + stride * Wo:stride])
        return out
        """,
    "relu": """
        x = np.asarray(x)
        return x * (x > 0)
        """,
    "dense": """
        return x @ w + b
        """,
}

# The two students who pass wrote their code themselves, each their own way: no one else's shares it (the
# code-originality criterion would rightly send such a pair to a teacher). Windows as strided views:
LAYERS_STRIDES = {
    "conv2d": """
        if padding:
            x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        n, c, h, wd = x.shape
        f, _, kh, kw = w.shape
        oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
        s0, s1, s2, s3 = x.strides
        windows = np.lib.stride_tricks.as_strided(
            x, shape=(n, c, oh, ow, kh, kw), strides=(s0, s1, s2 * stride, s3 * stride, s2, s3), writeable=False)
        result = np.tensordot(windows, w, axes=[(1, 4, 5), (1, 2, 3)])  # n, oh, ow, f
        return result.transpose(0, 3, 1, 2) + b.reshape(1, f, 1, 1)
        """,
    "max_pool2d": """
        step = size if stride is None else stride
        n, c, h, wd = x.shape
        oh, ow = (h - size) // step + 1, (wd - size) // step + 1
        views = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(2, 3))[:, :, ::step, ::step]
        return views[:, :, :oh, :ow].max(axis=(-2, -1))
        """,
    "relu": """
        return np.clip(x, 0, None)
        """,
    "dense": """
        return np.einsum("nd,dk->nk", x, w) + b
        """,
}

# ... and one column per output pixel, then a matrix product; pooling by stacking the windows' maxima:
LAYERS_COLUMNS = {
    "conv2d": """
        batch, chans, height, width = x.shape
        filters, _, k_h, k_w = w.shape
        padded = np.zeros((batch, chans, height + 2 * padding, width + 2 * padding), dtype=np.result_type(x, w))
        padded[:, :, padding:padding + height, padding:padding + width] = x
        out_h = (height + 2 * padding - k_h) // stride + 1
        out_w = (width + 2 * padding - k_w) // stride + 1
        columns = []
        for r in range(out_h):
            for q in range(out_w):
                block = padded[:, :, r * stride:r * stride + k_h, q * stride:q * stride + k_w]
                columns.append(block.reshape(batch, -1))
        cols = np.stack(columns, axis=1)  # batch, out_h * out_w, chans * k_h * k_w
        flat_w = w.reshape(filters, -1)
        res = cols @ flat_w.T + b
        return res.reshape(batch, out_h, out_w, filters).transpose(0, 3, 1, 2)
        """,
    "max_pool2d": """
        if stride is None:
            stride = size
        outs = []
        for r in range(0, x.shape[2] - size + 1, stride):
            row = []
            for q in range(0, x.shape[3] - size + 1, stride):
                row.append(x[:, :, r:r + size, q:q + size].reshape(x.shape[0], x.shape[1], -1).max(-1))
            outs.append(np.stack(row, axis=-1))
        return np.stack(outs, axis=-2)
        """,
    "relu": """
        y = np.array(x, copy=True)
        np.maximum(y, 0, out=y)
        return y
        """,
    "dense": """
        return np.matmul(x, w) + b[np.newaxis, :]
        """,
}

# A copy-paste slip: the kernel's width is taken to be KH. The notebook's square kernels hide it, so
# the notebook runs and trains; the public and hidden tests' rectangular kernels do not.
LAYERS_WRONG_CONV = dict(LAYERS_LOOPS, conv2d="""
        x = np.asarray(x, dtype=float)
        N, C, H, W = x.shape
        F, _, KH, KW = w.shape
        xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        H_out = (H + 2 * padding - KH) // stride + 1
        W_out = (W + 2 * padding - KH) // stride + 1
        out = np.zeros((N, F, H_out, W_out))
        for i in range(H_out):
            for j in range(W_out):
                patch = xp[:, :, i * stride:i * stride + KH, j * stride:j * stride + KH]
                out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
        return out + np.asarray(b).reshape(1, -1, 1, 1)
        """)

# --- the notebook's train_model cell -------------------------------------------------------------

# A small CNN as a class; flips and shifts, dropout, weight decay, batch norm, early stopping (patience 3).
TRAIN_GOOD = """
torch.manual_seed(seed)
F = nn.functional


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.drop = nn.Dropout(0.4)
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(self.drop(x.flatten(1)))


def evaluate(net, X, y):
    net.eval()
    with torch.no_grad():
        return (net(X).argmax(1) == y).float().mean().item()


Xt, yt = torch.tensor(X_train), torch.tensor(y_train)
Xv, yv = torch.tensor(X_val), torch.tensor(y_val)
model = Net()
optimizer = torch.optim.Adam(model.parameters(), lr=0.005, weight_decay=5e-4)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
history = {"train_accuracy": [], "val_accuracy": []}
best, best_weights, waited = 0.0, None, 0
for epoch in range(12):
    model.train()
    perm = torch.randperm(len(Xt))
    for i in range(0, len(Xt), 64):
        idx = perm[i:i + 64]
        xb = Xt[idx]
        flip = torch.rand(len(xb)) < 0.5  # augmentation: mirror half of the images ...
        xb[flip] = xb[flip].flip(-1)
        xb = torch.roll(xb, shifts=int(torch.randint(-1, 2, ())), dims=-1)  # ... and shift them a little
        loss = F.cross_entropy(model(xb), yt[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    scheduler.step()
    history["train_accuracy"].append(evaluate(model, Xt, yt))
    history["val_accuracy"].append(evaluate(model, Xv, yv))
    print(f"epoch {epoch + 1}: train {history['train_accuracy'][-1]:.3f}, val {history['val_accuracy'][-1]:.3f}")
    if history["val_accuracy"][-1] > best:
        best, best_weights, waited = history["val_accuracy"][-1], copy.deepcopy(model.state_dict()), 0
    else:
        waited += 1
        if waited == 3:
            print("early stopping")
            break
model.load_state_dict(best_weights)
model.eval()
"""

# Its own network (GELU, a 5x5 first layer, adaptive pooling), a DataLoader, SGD with Nesterov momentum; its own
# curve, drawn with matplotlib.
TRAIN_OWN = """
torch.manual_seed(seed)
train_set = torch.utils.data.TensorDataset(torch.tensor(X_train), torch.tensor(y_train))
batches = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)


class SmallCNN(nn.Module):
    def __init__(self, channels=(16, 32)):
        super().__init__()
        a, b = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, a, 5, padding=2), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(a, b, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(7),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(b * 49, 10))

    def forward(self, images):
        return self.head(self.features(images))


model = SmallCNN()
optim = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
history = {"train_accuracy": [], "val_accuracy": []}
val_images, val_labels = torch.tensor(X_val), torch.tensor(y_val)
for epoch in range(12):
    model.train()
    right = seen = 0
    for images, labels in batches:
        logits = model(images)
        loss = nn.functional.cross_entropy(logits, labels)
        optim.zero_grad()
        loss.backward()
        optim.step()
        right += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
    history["train_accuracy"].append(right / seen)
    model.eval()
    with torch.no_grad():
        history["val_accuracy"].append((model(val_images).argmax(1) == val_labels).float().mean().item())
model.eval()
"""

# Strided convolutions instead of pooling, random shifts by torch.roll, label smoothing.
TRAIN_GOOD2 = """
g = torch.Generator().manual_seed(seed)
net = nn.Sequential(
    nn.Conv2d(1, 12, 3, stride=2, padding=1), nn.BatchNorm2d(12), nn.ReLU(),   # 14x14
    nn.Conv2d(12, 24, 3, stride=2, padding=1), nn.BatchNorm2d(24), nn.ReLU(),  # 7x7
    nn.Flatten(), nn.Dropout(0.3), nn.Linear(24 * 49, 10),
)
X_tr, y_tr = torch.from_numpy(X_train), torch.from_numpy(y_train)
X_va, y_va = torch.from_numpy(X_val), torch.from_numpy(y_val)


def jitter(batch):
    shift = torch.randint(-1, 2, (2,), generator=g).tolist()
    batch = torch.roll(batch, shifts=shift, dims=(2, 3))
    return torch.where(torch.rand(len(batch), 1, 1, 1, generator=g) < 0.5, batch.flip(3), batch)


def acc(X, y):
    net.eval()
    with torch.no_grad():
        return float((net(X).argmax(1) == y).double().mean())


opt = torch.optim.AdamW(net.parameters(), lr=4e-3, weight_decay=5e-4)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=15)
history = {"train_accuracy": [], "val_accuracy": [], "loss": []}
keep = (-1, None)
for epoch in range(15):
    net.train()
    total = 0.0
    for batch in torch.randperm(len(X_tr), generator=g).split(100):
        loss = nn.functional.cross_entropy(net(jitter(X_tr[batch])), y_tr[batch], label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(batch)
    sched.step()
    history["loss"].append(total / len(X_tr))
    history["train_accuracy"].append(acc(X_tr, y_tr))
    history["val_accuracy"].append(acc(X_va, y_va))
    if history["val_accuracy"][-1] > keep[0]:
        keep = (history["val_accuracy"][-1], copy.deepcopy(net.state_dict()), epoch)
    if epoch - keep[2] >= 5:  # no better for five epochs: stop
        break
net.load_state_dict(keep[1])
model = net.eval()
print("best val accuracy", keep[0], "at epoch", keep[2] + 1)
"""

# No augmentation, dropout, batch norm or early stopping; a wide dense layer trained until the
# training set is learnt by heart.
TRAIN_OVERFIT = """
torch.manual_seed(seed)
Xt, yt = torch.tensor(X_train), torch.tensor(y_train)
Xv, yv = torch.tensor(X_val), torch.tensor(y_val)
model = nn.Sequential(
    nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(8 * 13 * 13, 64), nn.ReLU(), nn.Linear(64, 10),
)
optimizer = torch.optim.Adam(model.parameters(), lr=0.002)
history = {"train_accuracy": [], "val_accuracy": []}
for epoch in range(25):  # more epochs = better?
    model.train()
    perm = torch.randperm(len(Xt))
    for i in range(0, len(Xt), 32):
        idx = perm[i:i + 32]
        loss = nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        history["train_accuracy"].append((model(Xt).argmax(1) == yt).float().mean().item())
        history["val_accuracy"].append((model(Xv).argmax(1) == yv).float().mean().item())
"""

# Two filters, most of the image pooled away, three epochs of plain SGD: too little to tell shirts from coats.
TRAIN_UNDERFIT = """
torch.manual_seed(seed)
Xt, yt = torch.tensor(X_train), torch.tensor(y_train)
Xv, yv = torch.tensor(X_val), torch.tensor(y_val)
model = nn.Sequential(
    nn.Conv2d(1, 2, 5), nn.ReLU(), nn.MaxPool2d(4),  # 24x24 -> 6x6
    nn.Flatten(), nn.Linear(2 * 6 * 6, 10),
)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
history = {"train_accuracy": [], "val_accuracy": []}
for epoch in range(3):  # a few epochs will do
    model.train()
    for i in range(0, len(Xt), 32):
        loss = nn.functional.cross_entropy(model(Xt[i:i + 32]), yt[i:i + 32])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        history["train_accuracy"].append((model(Xt).argmax(1) == yt).float().mean().item())
        history["val_accuracy"].append((model(Xv).argmax(1) == yv).float().mean().item())
"""

# The dense layer expects the size before the second pooling: a shape error on the first batch.
TRAIN_CRASH = """
torch.manual_seed(seed)
model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Dropout(0.5), nn.Linear(32 * 14 * 14, 10),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
Xt, yt = torch.tensor(X_train), torch.tensor(y_train)
history = {"train_accuracy": [], "val_accuracy": []}
for epoch in range(10):
    model.train()
    for i in range(0, len(Xt), 64):
        loss = nn.functional.cross_entropy(model(Xt[i:i + 64]), yt[i:i + 64])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
"""

CURVE = """
plot_history(history)
"""

CURVE_TITLED = """
plot_history(history, keys=["train_accuracy", "val_accuracy"], title="Accuracy per epoch")
"""

CURVE_OWN = """
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 4))
epochs = range(1, len(history["train_accuracy"]) + 1)
ax.plot(epochs, history["train_accuracy"], marker="o", label="train")
ax.plot(epochs, history["val_accuracy"], marker="s", label="validation")
ax.set_xlabel("epoch")
ax.set_ylabel("accuracy")
ax.legend()
plt.show()
"""

# --- reflections ---------------------------------------------------------------------------------

REFLECTIONS = {
    "good": """
Fashion-MNIST only shows products from one German web shop, photographed in a studio: each item
is centred, flat and on an empty background. That is a strong sampling bias. Clothes that the
shop does not sell, like traditional dress from Africa or South Asia, religious clothing or
adaptive clothing for wheelchair users, are not in the data at all, and the ten categories
themselves are a Western way of dividing clothes. If a second-hand app used a classifier like
mine to price or sort what people upload, their own phone photos would look very different from
the training images, and the mistakes would hit exactly the users whose clothes are not
represented. They would see their items listed in the wrong category or rejected, which is unfair
and hard to contest because nobody explains the decision. Testing on photos from real users and
reporting accuracy per group would reveal the problem before launch.
""",
    "zipped": """
Adversarial examples are images that have been changed very slightly, often by less than one
grey level per pixel, in a direction computed from the gradient of the loss. To a person the
picture looks the same, but a CNN like mine can suddenly call a sneaker a bag with high
confidence. This works because the network reacts to many small pixel patterns at once, and the
attacker can push all of them in the wrong direction together. For clothes this sounds harmless,
but the same weakness exists in systems that matter. Someone could fool an automatic moderation
filter so that harmful images are published, or manipulate the camera of a self-driving car with
stickers so that it misreads a traffic sign, which could injure passengers and pedestrians.
Defences such as adversarial training exist, but they cost accuracy and time, so such systems
should never be the only safeguard.
""",
    "overfit": """
An adversarial example is an input that an attacker has modified on purpose so that the
classifier gives the wrong answer, while the change is too small for a human to notice. For my
network it would be enough to add carefully chosen noise to a photo of a shirt to make it predict
trousers. This matters when image classifiers are used for security. Face recognition at a border
or in a phone could be tricked by special glasses or printed patterns, letting an impostor in or
locking out the real owner. In healthcare, a manipulated X-ray image could change a diagnosis, and
patients could receive the wrong treatment or be denied insurance. Because the attack is invisible,
the people who are harmed may never learn that the system was fooled, so critical decisions should
keep a human in the loop.
""",
    "underfit": """
The images in Fashion-MNIST were chosen by a company to sell clothes, so the data set is not a
neutral picture of what people wear. It is balanced over ten categories, while real wardrobes are
not, and it under-represents everything outside the shop's range, such as children's clothes,
work uniforms or garments from other cultures. A model trained on it therefore learns one
narrow idea of what a dress or a shirt is. If such a model were used to recommend or filter
products, people whose style differs from that norm would get worse recommendations and might
conclude that the service is not meant for them. At a larger scale, biased training data has led
to face recognition that fails more often for women with dark skin, with wrongful arrests as a
result. Documenting where data comes from is therefore necessary.
""",
    "crash": """
Bias in a data set means that some groups or situations are over- or under-represented compared
with the world where the model will be used. Fashion-MNIST is a good example: product photos from
a single retailer, taken in perfect light. A classifier trained only on them has never seen a
crumpled shirt on a bed or a dress worn by a person, so it will fail more often on photos taken by
ordinary users. If a charity used such a model to sort donated clothes automatically, garments
that look unusual would be misplaced, and donors and recipients would be affected in ways no one
notices. The bigger risk is that accuracy numbers measured on the same narrow kind of data make
the system look reliable, so the people it fails are disadvantaged without anyone checking.
""",
    "wrong_conv": """
My CNN reaches good accuracy, but it is easy to fool with adversarial perturbations. If you take
the gradient of the loss with respect to the input image and move every pixel a tiny step in that
direction, the prediction changes even though the image looks identical. Attackers can exploit
this wherever image classifiers make decisions about people. A content filter on a social network
could be bypassed to spread violent or abusive images, or an identity check based on a photo could
be tricked so that someone opens a bank account in another person's name. The victims would be the
users who trusted the system to protect them. Training on adversarial examples and monitoring for
unusual inputs makes attacks harder, but the risk shows that accuracy on a test set says little
about how robust a model is.
""",
    "missing_module": """
Every data set reflects the choices of whoever collected it, and Fashion-MNIST reflects a European
online store: its catalogue, its photo studio and its ten product categories. Clothing worn by
minorities, elderly people or people with disabilities is largely absent, so the data is
unrepresentative of the population that might use an app built on it. Suppose such a classifier
were used in a shop's camera system to check what customers carry out of the store. People wearing
garments the model has never seen would be misclassified more often and could be stopped and
suspected of theft, a humiliating and discriminatory experience. Since the errors are not random
but follow the gaps in the data, the same groups would be hit again and again. Before deployment
the data should be audited and extended with images from those groups.
""",
}

# Well written, long enough, and about something else: neither theme is there.
REFLECTIONS["off_topic"] = """
This lab taught me a lot about how convolution works. Writing conv2d in NumPy was harder than I
expected: my first version mixed up the height and width of the output, and I only found the bug
when I printed the shapes after each step. Implementing max pooling was easier once I understood
that the stride decides how far the window moves. In the PyTorch part I tried several learning
rates and found that Adam with a small batch size trained fastest on my laptop. Batch
normalisation made the training curve much smoother, and I liked seeing the validation accuracy
climb in the plot after each epoch. Next time I would like to try a deeper network with more
filters and see how much the accuracy improves if I had more time to train it.
"""

STUDENTS = {  # name: (layers of cnn.py or None for no module, {grade_id: content})
    "good": (LAYERS_STRIDES, dict(train_model=TRAIN_OWN, training_curve=CURVE_OWN, reflection=REFLECTIONS["good"])),
    "overfit": (LAYERS_IM2COL, dict(train_model=TRAIN_OVERFIT, training_curve=CURVE,
                                    reflection=REFLECTIONS["overfit"])),
    "underfit": (LAYERS_LOOPS, dict(train_model=TRAIN_UNDERFIT, training_curve=CURVE_TITLED,
                                    reflection=REFLECTIONS["underfit"])),
    "crash": (LAYERS_IM2COL, dict(train_model=TRAIN_CRASH, training_curve=CURVE, reflection=REFLECTIONS["crash"])),
    "wrong_conv": (LAYERS_WRONG_CONV, dict(train_model=TRAIN_GOOD, training_curve=CURVE_TITLED,
                                           reflection=REFLECTIONS["wrong_conv"])),
    "missing_module": (None, dict(train_model=TRAIN_GOOD, training_curve=CURVE,
                                  reflection=REFLECTIONS["missing_module"])),
    "off_topic": (LAYERS_IM2COL, dict(train_model=TRAIN_GOOD, training_curve=CURVE,
                                      reflection=REFLECTIONS["off_topic"])),
}
# Handed in as an LMS-style zip file: zipped.zip holding the folder zipped/ with both files.
ZIPPED = {"zipped": (LAYERS_COLUMNS, dict(train_model=TRAIN_GOOD2, training_curve=CURVE_TITLED,
                                         reflection=REFLECTIONS["zipped"]))}


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


def files_of(template_nb, template_module, layers, answers) -> dict[str, bytes]:
    text = nbformat.writes(make_submission(template_nb, answers))
    files = {"lab2-cnn.ipynb": (text if text.endswith("\n") else text + "\n").encode()}  # as nbformat.write
    if layers is not None:
        files["cnn.py"] = make_module(template_module, layers).encode()
    return files


def write_zip(path: Path, folder: str, files: dict[str, bytes]) -> None:
    """A zip file that is the same bytes on every run: fixed dates and modes, sorted entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(f"{folder}/{name}", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever the machine that builds it
            zf.writestr(info, files[name])
    path.write_bytes(buffer.getvalue())


def main() -> None:
    template_nb = nbformat.read(STUDENT_NOTEBOOK, as_version=4)
    template_module = MODULE_TEMPLATE.read_text(encoding="utf-8")
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)  # a student dropped from the list leaves no stale folder behind
    OUT_DIR.mkdir(parents=True)
    for name, (layers, answers) in STUDENTS.items():
        folder = OUT_DIR / name
        folder.mkdir()
        for file, data in files_of(template_nb, template_module, layers, answers).items():
            (folder / file).write_bytes(data)
        print(f"wrote {folder.relative_to(ROOT)}/")
    for name, (layers, answers) in ZIPPED.items():
        path = OUT_DIR / f"{name}.zip"
        write_zip(path, name, files_of(template_nb, template_module, layers, answers))
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
