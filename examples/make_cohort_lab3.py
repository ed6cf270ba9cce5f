"""Build the sample cohort of lab3-autoencoder submissions from the released student notebook.

Each student fills the solution cells of `assignments/lab3-autoencoder/lab3-autoencoder.ipynb` (found by
nbgrader grade_id; the `autoencoder` cell has three stubs, filled in order), as a real student would in
Jupyter, and hands in a folder: the notebook, and for some a copy of the provided `plotting.py`.
Together they exercise the verdicts the harness must reach: pass; reconstruction error too high
(underfit); a latent code over the limit (big_latent); a generalization gap too large (overfit); a
crash; a missing or off-topic reflection; and a provided file edited by the student (edited_plotting:
the grader's own copy is used, so the work still passes). Deterministic (same bytes on every run), so
the committed files can be checked against it.
Run: `python examples/make_cohort_lab3.py`.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from answering import make_submission

ROOT = Path(__file__).resolve().parents[1]
LAB = "lab3-autoencoder"
RELEASE = ROOT / "assignments" / LAB
STUDENT_NOTEBOOK = RELEASE / f"{LAB}.ipynb"
PLOTTING = RELEASE / "plotting.py"
OUT_DIR = ROOT / "examples" / "submissions" / LAB

# --- the autoencoder cell: bodies of __init__, encode and decode, in that order ------------------------

# Strided convolutions down to 32 x 7 x 7, a linear bottleneck, transposed convolutions back up.
CONV = ["""
self.encoder = nn.Sequential(
    nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
    nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
    nn.Flatten(),
    nn.Linear(32 * 7 * 7, latent_dim),
)
self.decoder = nn.Sequential(
    nn.Linear(latent_dim, 32 * 7 * 7), nn.ReLU(),
    nn.Unflatten(1, (32, 7, 7)),
    nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
    nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1),
    nn.Sigmoid(),
)
""", "return self.encoder(x)", "return self.decoder(z)"]

# The same idea written with separate layers and LeakyReLU; 24 channels in the middle.
CONV_ALT = ["""
self.conv1 = nn.Conv2d(1, 12, kernel_size=3, stride=2, padding=1)
self.conv2 = nn.Conv2d(12, 24, kernel_size=3, stride=2, padding=1)
self.to_code = nn.Linear(24 * 7 * 7, latent_dim)
self.from_code = nn.Linear(latent_dim, 24 * 7 * 7)
self.deconv1 = nn.ConvTranspose2d(24, 12, kernel_size=4, stride=2, padding=1)
self.deconv2 = nn.ConvTranspose2d(12, 1, kernel_size=4, stride=2, padding=1)
self.act = nn.LeakyReLU(0.1)
""", """
h = self.act(self.conv1(x))
h = self.act(self.conv2(h))
return self.to_code(h.flatten(start_dim=1))
""", """
h = self.act(self.from_code(z)).view(-1, 24, 7, 7)
h = self.act(self.deconv1(h))
return torch.sigmoid(self.deconv2(h))
"""]

# Convolutional encoder, but a wide fully connected decoder: enough weights to memorise the
# training images, given enough epochs.
DENSE_DECODER = ["""
self.encoder = nn.Sequential(
    nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
    nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
    nn.Flatten(),
    nn.Linear(32 * 7 * 7, latent_dim),
)
self.decoder = nn.Sequential(
    nn.Linear(latent_dim, 1536), nn.ReLU(),
    nn.Linear(1536, 28 * 28), nn.Sigmoid(),
)
""", "return self.encoder(x)", "return self.decoder(z).view(-1, 1, 28, 28)"]

# Transposed convolutions without output_padding: 7 -> 13 -> 25 pixels, not 28. The notebook's
# test cell stops the run.
CONV_CRASH = ["""
self.encoder = nn.Sequential(
    nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
    nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
    nn.Flatten(),
    nn.Linear(32 * 7 * 7, latent_dim),
)
self.decoder = nn.Sequential(
    nn.Linear(latent_dim, 32 * 7 * 7), nn.ReLU(),
    nn.Unflatten(1, (32, 7, 7)),
    nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1), nn.ReLU(),
    nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1),
    nn.Sigmoid(),
)
""", "return self.encoder(x)", "return self.decoder(z)"]

# --- the train_model cell ---------------------------------------------------------------------------------

TRAIN = """
torch.manual_seed(seed)
model = Autoencoder(latent_dim={latent})
optimizer = torch.optim.Adam(model.parameters(), lr={lr})
loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(torch.tensor(X_train)), batch_size=32, shuffle=True,
    generator=torch.Generator().manual_seed(seed),
)
Xv = torch.tensor(X_val)
history = {{"train_mse": [], "val_mse": []}}
for epoch in range({epochs}):
    model.train()
    total = 0.0
    for (xb,) in loader:
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(xb), xb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(xb)
    history["train_mse"].append(total / len(X_train))
    model.eval()
    with torch.no_grad():
        history["val_mse"].append(nn.functional.mse_loss(model(Xv), Xv).item())
"""

# A plain loop over index batches, as in the course's earlier labs.
TRAIN_ALT = """
torch.manual_seed(seed)
model = Autoencoder(latent_dim={latent})
opt = torch.optim.Adam(model.parameters(), lr={lr})
Xt, Xv = torch.from_numpy(X_train), torch.from_numpy(X_val)
shuffle = torch.Generator().manual_seed(seed)
history = {{"train_mse": [], "val_mse": []}}
for epoch in range({epochs}):
    model.train()
    batch_losses = []
    for idx in torch.randperm(len(Xt), generator=shuffle).split(32):
        xb = Xt[idx]
        loss = ((model(xb) - xb) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        batch_losses.append(loss.item())
    history["train_mse"].append(sum(batch_losses) / len(batch_losses))
    model.eval()
    with torch.no_grad():
        history["val_mse"].append(((model(Xv) - Xv) ** 2).mean().item())
    print(f"epoch {{epoch + 1}}: train {{history['train_mse'][-1]:.4f}}, val {{history['val_mse'][-1]:.4f}}")
"""

# --- the reconstructions cell -----------------------------------------------------------------------------

RECONSTRUCT = """
model.eval()
with torch.no_grad():
    recon = model(torch.tensor(X_val[:8]))
show_reconstructions(X_val[:8], recon, n=8)
"""

RECONSTRUCT_ALT = """
with torch.no_grad():
    outputs = model.eval()(torch.from_numpy(X_val[10:18])).numpy()
show_reconstructions(X_val[10:18], outputs)
"""

# --- the passing students' own code ------------------------------------------------------------------

# The two students who pass wrote their code themselves, each their own way: no one else's shares it (the
# code-originality criterion would rightly send such a pair to a teacher). A dense bottleneck, AdamW:
DENSE = ["""
self.enc = nn.Sequential(
    nn.Flatten(), nn.Linear(784, 256), nn.SiLU(), nn.Linear(256, latent_dim))
self.dec = nn.Sequential(nn.Linear(latent_dim, 256), nn.SiLU(), nn.Linear(256, 784), nn.Sigmoid())
""", """
return self.enc(x)
""", """
return self.dec(z).view(-1, 1, 28, 28)
"""]

TRAIN_DENSE = """
torch.manual_seed(seed)
model = Autoencoder(latent_dim=min(24, LATENT_MAX))
train_x = torch.tensor(X_train)
valid_x = torch.tensor(X_val)
optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
history = {"train_mse": [], "val_mse": []}
for epoch in range(20):
    model.train()
    losses = []
    for idx in torch.randperm(len(train_x)).chunk(len(train_x) // 64):
        recon = model(train_x[idx])
        err = ((recon - train_x[idx]) ** 2).mean()
        optimiser.zero_grad()
        err.backward()
        optimiser.step()
        losses.append(err.item())
    history["train_mse"].append(sum(losses) / len(losses))
    model.eval()
    with torch.no_grad():
        history["val_mse"].append(nn.functional.mse_loss(model(valid_x), valid_x).item())
"""

RECONSTRUCT_DENSE = """
sample = torch.tensor(X_val[:8])
with torch.no_grad():
    rebuilt = model(sample).numpy()
show_reconstructions(sample.numpy(), rebuilt, n=8)
"""

# ... and 4x4 strided convolutions each way, a decaying learning rate:
STRIDED = ["""
self.down1 = nn.Conv2d(1, 16, 4, stride=2, padding=1)
self.down2 = nn.Conv2d(16, 32, 4, stride=2, padding=1)
self.to_code = nn.Linear(32 * 7 * 7, latent_dim)
self.from_code = nn.Linear(latent_dim, 32 * 7 * 7)
self.up1 = nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1)
self.up2 = nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1)
""", """
h = torch.relu(self.down1(x))
h = torch.relu(self.down2(h))
return self.to_code(h.reshape(h.shape[0], -1))
""", """
h = torch.relu(self.from_code(z)).reshape(-1, 32, 7, 7)
h = torch.relu(self.up1(h))
return torch.sigmoid(self.up2(h))
"""]

TRAIN_STRIDED = """
torch.manual_seed(seed)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(X_train)), batch_size=32,
                                     shuffle=True)
model = Autoencoder(LATENT_MAX)
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.85)
history = {"train_mse": [], "val_mse": []}
X_v = torch.tensor(X_val)
for epoch in range(10):
    model.train()
    total, count = 0.0, 0
    for (batch,) in loader:
        opt.zero_grad()
        loss = nn.MSELoss()(model(batch), batch)
        loss.backward()
        opt.step()
        total += loss.item() * batch.shape[0]
        count += batch.shape[0]
    sched.step()
    history["train_mse"].append(total / count)
    model.eval()
    with torch.no_grad():
        history["val_mse"].append(float(((model(X_v) - X_v) ** 2).mean()))
model = model.cpu()
"""

RECONSTRUCT_STRIDED = """
originals = X_val[8:16]
model.eval()
with torch.no_grad():
    outputs = model(torch.from_numpy(originals)).cpu().numpy()
show_reconstructions(originals, outputs, n=8)
"""

# --- reflections ------------------------------------------------------------------------------------------

REFLECTIONS = {
    "good": """
A deepfake can make a real person appear to say or do something they never did, and the damage is done
long before anyone proves it is fake. Women are the most common victims of sexual deepfakes, used to
humiliate and harass them, and cloned voices of relatives are used in phone scams. In politics, a
fabricated clip released the day before an election can mislead voters. I think consent has to be
explicit and specific: agreeing to share a photo on social media is not agreeing to have your face used
to train a model or to be put into generated videos. People should also be able to withdraw that consent
and have such material removed.
""",
    "underfit": """
Deepfakes are harmful because seeing used to mean believing. A fake video of a CEO can move stock prices,
a fake recording of a politician can spread disinformation, and fake nude images can destroy a
teenager's reputation at school. The victims often cannot get the content taken down once it spreads.
Consent matters at two stages. First, the images used for training: many face datasets were scraped from
the web without asking the people in them. Second, the output: nobody should be depicted in generated
media without their permission, and satire or art should be clearly labelled. Laws like the EU AI Act
require labelling, but enforcement is still weak.
""",
    "big_latent": """
The same encoder and decoder trick we used here lets someone swap a face into any video. This can be used
for fraud, for example a video call where a fake manager asks an employee to transfer money, and for
harassment with non-consensual pornography, which is the most common use of deepfakes today. It also
harms society indirectly because people start to doubt real evidence, the so-called liar's dividend.
For consent, I believe a person must give informed permission before their likeness is used, both for
training and for generation, and that platforms should remove deepfakes made without consent quickly.
Actors and voice actors also need contracts that say how their digital replicas may be used.
""",
    "overfit": """
Deepfakes are dangerous for individuals and for democracy. An individual can be blackmailed with a fake
intimate video or lose their job because of a fabricated recording, and it is very hard to prove that
something did not happen. For society, realistic fake news videos make misinformation spread faster and
make it easier for powerful people to deny real recordings. Consent is central: the people whose photos
are collected to train a generator are rarely asked, and the people who appear in the results almost
never agree to it. I think using someone's face or voice should require their explicit consent, and
children's images should never be used.
""",
    "crash": """
Face swapping used to need a film studio; now an autoencoder trained on a few hundred photos is enough.
That makes abuse cheap. Deepfake pornography is used to silence journalists and to bully students,
fake audio of family members is used to trick elderly people into sending money, and manipulated
videos can be used as propaganda in wars. The harm is not only to the person shown but to trust in all
media. Consent should be the rule: a model of someone's face should only be trained with their
agreement, and they should be asked again before their likeness is used in a new context. Without
consent, generating such content should be illegal.
""",
    "edited_plotting": """
Deepfakes show how easily a generative model can be misused. Someone can take photos from a person's
Instagram account, train a model and place that face in a pornographic video or a fake confession. The
victim suffers humiliation, threats and damage to their reputation, and the fake keeps circulating even
after it is debunked. Deepfakes of public figures also feed disinformation campaigns. In my view consent
must be informed and active: uploading a picture does not mean accepting that it is used for training,
and nobody should appear in synthetic media without saying yes. Developers should build in watermarks
and refuse to generate content of real people without proof of consent.
""",
}

# Well written, long enough, and about something else: the themes are missing.
REFLECTIONS["off_topic"] = """
This lab was harder than the previous ones because the output of the model is a whole image. My first
decoder produced images of 25 by 25 pixels, and it took me a while to understand that transposed
convolutions need output padding to get back to 28. I also tried a latent code of only eight numbers,
and the reconstructions became blurry blobs where shirts and coats looked the same. Training with Adam
and a learning rate of 0.003 worked much better than plain SGD, which hardly moved. Plotting the
reconstructions next to the originals after each change was the most useful way to see progress.
"""

# --- the provided file, edited: the student's "improvements" save a copy on their own laptop ---------------


def edited_plotting(original: str) -> str:
    """plotting.py with the student's changes: another colour map and a savefig to a folder that only exists
    on their laptop (run as handed in, the figure cell would crash; the grader uses its own copy)."""
    edited = original.replace('cmap="gray"', 'cmap="magma"')
    edited = edited.replace(
        "    fig.tight_layout()\n    plt.show()\n",
        "    fig.tight_layout()\n"
        "    fig.savefig(\"/Users/sara/Documents/DL-course/lab3/reconstructions.png\", dpi=200)  # for my report\n"
        "    plt.show()\n",
    )
    if edited.count("magma") != 1 or edited.count("savefig") != 1:
        raise ValueError("plotting.py changed: update edited_plotting()")
    return edited


STUDENTS = {  # name: ({grade_id: content}, plotting.py handed in: None, "copy" or "edited")
    "good": (dict(autoencoder=DENSE, train_model=TRAIN_DENSE, reconstructions=RECONSTRUCT_DENSE,
                  reflection=REFLECTIONS["good"]), "copy"),
    "underfit": (dict(autoencoder=CONV, train_model=TRAIN.format(latent=32, lr=1e-5, epochs=1),
                      reconstructions=RECONSTRUCT, reflection=REFLECTIONS["underfit"]), None),
    "big_latent": (dict(autoencoder=CONV_ALT, train_model=TRAIN_ALT.format(latent=128, lr=3e-3, epochs=12),
                        reconstructions=RECONSTRUCT_ALT, reflection=REFLECTIONS["big_latent"]), None),
    "overfit": (dict(autoencoder=DENSE_DECODER, train_model=TRAIN_ALT.format(latent=32, lr=5e-3, epochs=22),
                     reconstructions=RECONSTRUCT, reflection=REFLECTIONS["overfit"]), "copy"),
    "crash": (dict(autoencoder=CONV_CRASH, train_model=TRAIN.format(latent=32, lr=3e-3, epochs=12),
                   reconstructions=RECONSTRUCT, reflection=REFLECTIONS["crash"]), None),
    "no_reflection": (dict(autoencoder=CONV_ALT, train_model=TRAIN_ALT.format(latent=32, lr=3e-3, epochs=12),
                           reconstructions=RECONSTRUCT_ALT), None),
    "off_topic": (dict(autoencoder=CONV, train_model=TRAIN_ALT.format(latent=24, lr=3e-3, epochs=12),
                       reconstructions=RECONSTRUCT, reflection=REFLECTIONS["off_topic"]), "copy"),
    "edited_plotting": (dict(autoencoder=STRIDED, train_model=TRAIN_STRIDED, reconstructions=RECONSTRUCT_STRIDED,
                             reflection=REFLECTIONS["edited_plotting"]), "edited"),
}


def main() -> None:
    template = nbformat.read(STUDENT_NOTEBOOK, as_version=4)
    plotting = PLOTTING.read_text()
    for name, (answers, handed_in) in STUDENTS.items():
        folder = OUT_DIR / name
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(make_submission(template, answers), folder / f"{LAB}.ipynb")
        extra = folder / "plotting.py"
        if handed_in is None:
            extra.unlink(missing_ok=True)
        else:
            extra.write_text(plotting if handed_in == "copy" else edited_plotting(plotting))
        what = f"notebook, {handed_in} plotting.py" if handed_in else "notebook"
        print(f"wrote {folder.relative_to(ROOT)}/ ({what})")


if __name__ == "__main__":
    main()
