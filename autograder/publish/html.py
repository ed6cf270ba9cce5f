"""Self-contained HTML pages from untrusted text: escaping, terminal control sequences, embedded figures.

Everything a submission produced (messages, outputs, tracebacks, reflection text, student ids) goes
through `esc` before it reaches a page, and through `strip_ansi` before it reaches a page or a
terminal. Pages carry their CSS and figures inline (no CDN, no network) and a Content-Security-Policy
that forbids every script, so a payload that got past escaping still would not run.
"""

from __future__ import annotations

import base64
import html
import io
import re

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-byte escapes, and C0/C1 controls but
# tab and newline: what a terminal would act on rather than print.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
                   r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
                   r"|\x1b[@-Z\\-_]"  # other escapes
                   r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # controls but tab and newline

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #1b1b1b; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { border: 1px solid #d0d0d0; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
pre { background: #f6f6f6; padding: .6rem; overflow-x: auto; white-space: pre-wrap; word-break: break-word; }
img { max-width: 100%; }
.G, .pass { color: #0a6b2d; } .U, .fail { color: #a3141a; } .review { color: #8a5a00; }
.error, .skipped { color: #555; }
.verdict { font-size: 1.3rem; font-weight: 600; }
.muted { color: #666; font-size: .9rem; }
"""


def strip_ansi(text: str) -> str:
    """Text without terminal escape sequences or control characters (tab and newline kept)."""
    return _ANSI.sub("", text)


def esc(text: object) -> str:
    """Untrusted text as HTML text: control sequences removed, markup escaped (quotes too)."""
    return html.escape(strip_ansi(str(text)), quote=True)


def figure_data_uri(fig) -> str:
    """A matplotlib figure as an inline PNG (data: URI), closed afterwards."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def img(uri: str, alt: str) -> str:
    return f'<img src="{esc(uri)}" alt="{esc(alt)}">'


def page(title: str, body: str) -> str:
    """A whole HTML document: `title` is escaped here, `body` must already be safe HTML."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def matplotlib_backend() -> None:
    """Draw without a display, and without touching the user's matplotlib config."""
    import matplotlib

    matplotlib.use("Agg", force=True)
