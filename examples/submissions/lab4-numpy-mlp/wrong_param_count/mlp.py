"""A multilayer perceptron for handwritten digits, written with NumPy.

You write every part of a small classifier yourself: the parameters and their initialisation,
the activations, the forward pass, the loss, its gradients (the backward pass), the features and
the training loop. NumPy does the arithmetic; `scipy.special` has numerically stable building
blocks (`softmax`, `logsumexp`) and scikit-image the image features (`exposure`, `feature.hog`).
Deep-learning and machine-learning libraries (torch, scikit-learn, ...) are not allowed.

The grader imports this module and calls its functions, on the cases of probes.py and on others
you have not seen (other layer sizes, batches of one, very large logits), and compares the results
with PyTorch's. Write them for any valid shape.

A network is a list `params` with one pair `(W, b)` per layer: `W` of shape (n_in, n_out) and
`b` of shape (n_out,). Every hidden layer is followed by a ReLU; the last layer gives the logits
(no activation). Work in float64.
"""

from __future__ import annotations

import numpy as np
from scipy import special  # noqa: F401 - special.softmax, special.logsumexp
from skimage import exposure, feature  # noqa: F401 - exposure.rescale_intensity, feature.hog

Params = list[tuple[np.ndarray, np.ndarray]]

N_CLASSES = 10
PIXEL_MAX = 16  # the digits' intensities run from 0 (background) to 16 (ink)
MAX_PARAMETERS = 20_000  # the parameter budget of the network train() returns


def init_params(sizes: list[int], rng: np.random.Generator | int) -> Params:
    """A freshly initialised network with layer widths `sizes`, e.g. [96, 64, 10]: one (W, b) per
    consecutive pair of widths.

    He initialisation: each W drawn from a normal distribution with mean 0 and standard deviation
    sqrt(2 / n_in), each b zeros. `rng` is a NumPy Generator, or a seed for one: the same seed
    gives the same network.
    """
    rng = np.random.default_rng(rng)
    params = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        weight = rng.standard_normal((fan_in, fan_out)) * (2.0 / fan_in) ** 0.5
        params.append((weight, np.zeros(fan_out)))
    return params


def count_parameters(params: Params) -> int:
    """How many numbers the network learns: every weight and every bias, as an int."""
    return int(sum(W.size for W, b in params))


def relu(z: np.ndarray) -> np.ndarray:
    """max(z, 0), element by element; the output has the shape of z."""
    out = z.copy()
    out[out < 0] = 0
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """The softmax of each row of `logits` (n, k): probabilities (n, k), each row summing to 1.

    It must stay exact for any finite logits, also very large ones (1000 or -1000) where exp()
    overflows to inf or underflows to 0.
    """
    top = np.max(logits, axis=-1, keepdims=True)
    unnorm = np.exp(logits - top)
    return unnorm / np.sum(unnorm, axis=-1, keepdims=True)


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """The mean cross-entropy loss of logits (n, k) against the classes y (n,) of 0..k-1, as a float:
    the mean over rows of -log(softmax(logits)[i, y[i]]), as `torch.nn.functional.cross_entropy`.

    It must stay finite and exact for very large logits too: work with log-probabilities (the
    log-sum-exp trick) rather than the log of a probability that rounded to 0.
    """
    rows = np.arange(logits.shape[0])
    lse = special.logsumexp(logits, axis=1)
    return float(np.mean(lse - logits[rows, y]))


def forward(params: Params, X: np.ndarray) -> tuple[np.ndarray, object]:
    """The network on a batch X (n, n_in): returns (logits (n, n_out), cache).

    Each hidden layer computes relu(a @ W + b), the last layer a @ W + b. `cache` holds whatever
    backward() needs from this pass (the activations of each layer, say); the grader only passes
    it from forward() to backward() unchanged.
    """
    inputs, pre = [], []
    a = X
    for index, (weight, bias) in enumerate(params):
        inputs.append(a)
        z = a @ weight + bias
        pre.append(z)
        a = z if index == len(params) - 1 else relu(z)
    return a, {"inputs": inputs, "pre": pre}


def backward(params: Params, cache: object, y: np.ndarray) -> Params:
    """The gradients of cross_entropy(logits, y) with respect to every parameter, for the batch
    forward() saw: a list of (dW, db) shaped like `params`.

    Work them out by hand (the chain rule, layer by layer from the last); the grader checks them
    against finite differences of your loss.
    """
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


def loss(params: Params, X: np.ndarray, y: np.ndarray) -> float:
    """The network's mean cross-entropy on (X, y). Given: the grader uses it for finite differences."""
    logits, _ = forward(params, X)
    return cross_entropy(logits, y)


def loss_and_grads(params: Params, X: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    """The loss on (X, y) and its gradients, in one forward and one backward pass. Given."""
    logits, cache = forward(params, X)
    return cross_entropy(logits, y), backward(params, cache, y)


def preprocess(images: np.ndarray) -> np.ndarray:
    """The features of each image of `images` (n, 8, 8), intensities 0..16: float64 (n, d).

    Scale the intensities to [0, 1] (`exposure.rescale_intensity` with in_range=(0, PIXEL_MAX)),
    and use the 64 pixels, optionally with more features, e.g. a histogram of oriented gradients
    (`feature.hog` with 4x4-pixel cells). Each image's features depend on that image alone (no
    statistics of the batch), so one image gets the same features in any batch.
    """
    pixels = exposure.rescale_intensity(np.asarray(images, dtype=float), in_range=(0, PIXEL_MAX))
    hogs = np.stack([feature.hog(img, orientations=8, pixels_per_cell=(4, 4), cells_per_block=(1, 1))
                     for img in pixels])
    return np.concatenate([pixels.reshape(pixels.shape[0], -1), hogs], axis=1)


def train(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> Params:
    """A network trained on `images` (n, 8, 8) and their digits `labels` (n,); returns its params.

    Use preprocess() for the features, init_params() seeded with `seed`, and mini-batch gradient
    descent with loss_and_grads(). You choose the hidden layers, the learning rate, the batch size
    and the number of epochs, within MAX_PARAMETERS parameters and a few seconds on one CPU: the
    grader trains your network on the training set and measures it on a hidden test set.
    """
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


def predict(params: Params, images: np.ndarray) -> np.ndarray:
    """The logits (n, 10) of a trained network for `images` (n, 8, 8). Given."""
    logits, _ = forward(params, preprocess(images))
    return logits
