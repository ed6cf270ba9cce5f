"""Who may use the app, and proof that a form was sent by the app's own page.

Two ways in. One random token printed at start, for one TA on this machine (as Jupyter does); or one
token per TA from course.yaml (`reviewers`: a name and the sha256 of the token, so the file can be
committed), each decision recorded under that TA's name. Tokens are compared by their sha256 in constant
time. The first request carrying `?token=` gets a session cookie (HttpOnly, SameSite=Strict) and is
redirected to the same URL without the token, so it leaves the address bar and the history.

The session cookie is signed with a key made at start: it names the TA and proves nothing else, and a
restart ends every session. A form carries a CSRF token, an HMAC of the session under the same key; a
POST must also come from the app's own origin (Sec-Fetch-Site where the browser sends it, else Origin).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from autograder.labs.course import Reviewer

SESSION_COOKIE = "autograder_session"
TOKEN_PARAM = "token"
CSRF_FIELD = "csrf"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def reviewer_line(name: str, token: str) -> str:
    """The course.yaml entry for a TA and their token (under `reviewers:`)."""
    import json

    return f"  - {{name: {json.dumps(name, ensure_ascii=False)}, token_sha256: {token_sha256(token)}}}"


@dataclass(frozen=True)
class Access:
    """The tokens that open the app (their sha256 and whose they are) and the key sessions are signed with."""

    tokens: tuple[tuple[str, str], ...]
    key: bytes

    @classmethod
    def single(cls, token: str, name: str) -> Access:
        return cls(((token_sha256(token), name),), secrets.token_bytes(32))

    @classmethod
    def reviewers(cls, reviewers: list[Reviewer]) -> Access:
        return cls(tuple((r.token_sha256, r.name) for r in reviewers), secrets.token_bytes(32))

    def who(self, token: str) -> str | None:
        """The TA whose token this is; every entry is compared, in constant time, whichever matches."""
        digest = token_sha256(token)
        found = None
        for known, name in self.tokens:
            if hmac.compare_digest(known, digest):
                found = name
        return found

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self.key, f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()

    def session(self, name: str) -> str:
        """A new session cookie for this TA."""
        encoded = base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii").rstrip("=")
        body = encoded + "." + secrets.token_urlsafe(16)
        return f"{body}.{self._mac('session', body)}"

    def session_name(self, cookie: str | None) -> str | None:
        """The TA a session cookie names, or None for a missing, forged or stale one."""
        if not cookie or cookie.count(".") != 2:
            return None
        body, mac = cookie.rsplit(".", 1)
        if not _equal(self._mac("session", body), mac):
            return None
        try:
            encoded = body.split(".", 1)[0]
            name = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return name if any(n == name for _, n in self.tokens) else None

    def csrf(self, cookie: str) -> str:
        return self._mac("csrf", cookie)

    def csrf_ok(self, cookie: str, token: str | None) -> bool:
        return bool(token) and _equal(self.csrf(cookie), token or "")


def _equal(mine: str, theirs: str) -> bool:
    """Constant-time comparison of our ASCII MAC with whatever text a request sent (any character)."""
    return hmac.compare_digest(mine.encode("ascii"), theirs.encode("utf-8", "surrogatepass"))


def same_origin(headers, host: str | None) -> bool:
    """A POST sent by a page of this app. Where the browser says where the request comes from
    (Sec-Fetch-Site, which no page can set), that decides: same-origin only. Otherwise Origin must name this
    host. Under `Referrer-Policy: no-referrer` a browser sends `Origin: null` with a form's POST, which is why
    Sec-Fetch-Site goes first; `null` alone is refused, as is a request with neither."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = headers.get("origin")
    return origin is not None and host is not None and origin in (f"http://{host}", f"https://{host}")
