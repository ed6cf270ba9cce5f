"""Figures for lab2-cnn, drawn without matplotlib so that they look the same on every machine.

Handed out with the lab: the grader uses this copy, whatever you hand in under this name.
`plot_history` draws training curves as SVG; `show_images` shows a grid of images as PNG.
You may draw your own figures with matplotlib instead, where it is installed.
"""

from __future__ import annotations

import struct
import zlib
from html import escape

import numpy as np

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def plot_history(history, keys=None, title="Training curve", ylabel="accuracy"):
    """Draw one line per key of `history` (a dict of per-epoch lists) against the epoch number.

    keys: which lists to draw (default: every key whose name ends in 'accuracy'). The figure is
    displayed right away, wherever in a cell the call is.
    """
    from IPython.display import SVG, display

    keys = [k for k in history if str(k).endswith("accuracy")] if keys is None else list(keys)
    series = {k: np.asarray([float(v) for v in history[k]], dtype=float) for k in keys}
    series = {k: v for k, v in series.items() if v.size}
    if not series:
        raise ValueError(f"nothing to plot: history has no non-empty lists among {keys}")
    display(SVG(_line_chart(series, title, ylabel)))


def _line_chart(series: dict, title: str, ylabel: str, width=560, height=340) -> str:
    left, right, top, bottom = 60, 150, 36, 46
    pw, ph = width - left - right, height - top - bottom
    n = max(len(v) for v in series.values())
    finite = np.concatenate([v[np.isfinite(v)] for v in series.values()] + [np.zeros(0)])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad

    def px(epoch):  # epochs are numbered from 1
        return left + (pw * (epoch - 1) / (n - 1) if n > 1 else pw / 2)

    def py(value):
        return top + ph * (hi - value) / (hi - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left + pw / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>']
    for tick in np.linspace(lo + pad, hi - pad, 5):
        y = py(tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.3g}</text>')
    for epoch in sorted({1, n, *range(1, n + 1, max(1, (n + 9) // 10))}):
        parts.append(f'<text x="{px(epoch):.1f}" y="{top + ph + 16}" text-anchor="middle">{epoch}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">epoch</text>')
    parts.append(f'<text x="16" y="{top + ph / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 16 {top + ph / 2})">{escape(ylabel)}</text>')
    for i, (name, values) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{px(e + 1):.1f},{py(v):.1f}" for e, v in enumerate(values) if np.isfinite(v))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        ly = top + 14 + 18 * i
        parts.append(f'<line x1="{left + pw + 12}" y1="{ly - 4}" x2="{left + pw + 32}" y2="{ly - 4}" '
                     f'stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<text x="{left + pw + 38}" y="{ly}">{escape(str(name))}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def show_images(images, labels=None, class_names=None, columns=10, scale=2):
    """Show grey images (n, 28, 28) or (n, 1, 28, 28), values in [0, 1], as one PNG grid; prints the
    class names of the images row by row when labels are given."""
    from IPython.display import Image, display

    images = np.asarray(images, dtype=float)
    if images.ndim == 4:
        images = images[:, 0]
    n, h, w = images.shape
    rows = (n + columns - 1) // columns
    grid = np.full((rows * (h + 2), columns * (w + 2)), 0.15)  # light grey gaps once inverted
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = image
    grid = np.kron(1.0 - np.clip(grid, 0, 1), np.ones((scale, scale)))  # dark garments on white
    display(Image(data=_png((grid * 255).round().astype(np.uint8))))
    if labels is not None:
        names = [class_names[int(k)] if class_names is not None else str(int(k)) for k in labels]
        for r in range(rows):
            print(" | ".join(names[r * columns : (r + 1) * columns]))


def _png(grey: np.ndarray) -> bytes:
    """A greyscale uint8 image as PNG bytes."""
    height, width = grey.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in grey)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
