"""Self-contained HTML pages from untrusted text: the templates, terminal control sequences, embedded figures.

Every page comes from a Jinja2 template under `templates/` with autoescaping on: whatever a submission
produced (messages, outputs, tracebacks, reflection text, student ids) is passed to the template as plain
data and escaped there, and loses its terminal control sequences on the way (`finalize`). Only markup our
own code builds is ever `Markup`. Pages carry their CSS and figures inline (no CDN, no network) and a
Content-Security-Policy that forbids every script, so a payload that got past escaping still would not run.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import re

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-byte escapes, and C0/C1 controls but
# tab and newline: what a terminal would act on rather than print.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
                   r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
                   r"|\x1b[@-Z\\-_]"  # other escapes
                   r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # controls but tab and newline
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what each of those starts with (ESC is \x1b)

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
    if not _CONTROL.search(text):  # the common case, at a fraction of the cost (a page may hold megabytes)
        return text
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


# What an <img src> of ours may hold: an inline PNG or JPEG, base64. Anything else (a `javascript:` or http
# URL, a student's text that found its way here) is a bug in our code, not something to show.
_IMAGE_URI = re.compile(r"data:image/(?:png|jpeg);base64,[A-Za-z0-9+/]*={0,2}")


def image_uri(uri: object) -> str:
    """The template filter `image_uri`: `uri` when it is an inline PNG or JPEG (base64 data: URI), else ValueError."""
    if not isinstance(uri, str) or not _IMAGE_URI.fullmatch(uri):
        raise ValueError(f"not an inline PNG or JPEG: {str(uri)[:40]!r}")
    return uri


def _finalize(value: object) -> object:
    """Every `{{ value }}` of a template loses its terminal control sequences before Jinja escapes it: plain
    text, and markup too (`|e` makes markup of a student's text; removing control characters from markup
    cannot make a tag, since `<` and `&` of text are entities by then)."""
    if isinstance(value, Markup):
        return Markup(strip_ansi(str(value)))
    return strip_ansi(value) if isinstance(value, str) else value


@functools.cache
def templates() -> Environment:
    """The one Jinja2 environment of every page, static (feedback, report) or served (`autograder serve`):
    autoescaping on for every template, undefined names an error, `base.html` the frame of each page,
    `macros.html` the pieces they share (a figure: `image_uri` checks its `src`)."""
    env = Environment(loader=PackageLoader("autograder.publish", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, finalize=_finalize, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.globals.update(csp=CSP, style=Markup(STYLE))
    env.filters["image_uri"] = image_uri
    return env


def render(template: str, **context: object) -> str:
    """A page from its template; everything in `context` is escaped unless it is `Markup`."""
    return templates().get_template(template).render(**context)


def matplotlib_backend() -> None:
    """Draw without a display, and without touching the user's matplotlib config."""
    import matplotlib

    matplotlib.use("Agg", force=True)
