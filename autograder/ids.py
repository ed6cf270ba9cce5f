"""Student ids and stored text: valid, printable, and reading as the name a student gave.

Ids come from file and folder names a student chose, so they may hold anything a file system
allows; every stage that stores or shows one (intake, the store, the console, the pages) makes it
safe the same way, here.
"""

from __future__ import annotations

import os
import unicodedata

_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _escape(text: str, backslash: bool, keep: str = "") -> str:
    out = []
    for ch in text:
        cp = ord(ch)
        if ch == "\\" and backslash:
            out.append("\\\\")
        elif 0xDC80 <= cp <= 0xDCFF:  # a byte that was not UTF-8, as Python's surrogateescape holds it
            out.append(f"\\x{cp - 0xDC00:02x}")
        elif ch not in keep and unicodedata.category(ch) in _ESCAPED_CATEGORIES:
            out.append(f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}")
        else:
            out.append(ch)
    return "".join(out)


def student_id(raw: str | bytes) -> str:
    """A student id from a raw name (a notebook's file stem, a student's folder or zip name): valid UTF-8
    text without control or format characters that reads as the name does. Ordinary names ('ada',
    'åsa', 'li.wei-2') stay as they are; a byte that is not UTF-8 reads as `\\xe9`, a control or format
    character as `\\u001b` or `\\u202e`, and a backslash as two, so two different names never get
    one id (the escapes can be read back) and the same name always gets the same one."""
    if isinstance(raw, bytes):
        raw = os.fsdecode(raw)
    return _escape(raw, backslash=True)


def readable(text: str) -> str:
    """Text safe to store and show (a member name in a reason, a message): the escapes of `student_id`
    for what is not, tabs and newlines kept, backslashes as they are."""
    return _escape(text, backslash=False, keep="\t\n")
