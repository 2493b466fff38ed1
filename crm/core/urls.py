"""Safe redirects: only to paths on this site."""
from __future__ import annotations

from urllib.parse import unquote, urlsplit

from flask import redirect, url_for


def is_safe_path(target: str | None) -> bool:
    """True only for a relative path on this host: no scheme, no host, no backslash tricks."""
    if not target or not isinstance(target, str):
        return False
    if target != target.strip() or any(ord(c) < 32 for c in target):
        return False
    decoded = unquote(target)
    for candidate in (target, decoded):
        if "\\" in candidate:
            return False
        if not candidate.startswith("/") or candidate.startswith("//"):
            return False
        parts = urlsplit(candidate)
        if parts.scheme or parts.netloc:
            return False
    return True


def safe_path(target: str | None, default: str = "main.home") -> str:
    """``target`` when it is safe (:func:`is_safe_path`), else the default endpoint's URL: where a page's "back"
    may lead."""
    return target if is_safe_path(target) else url_for(default)


def redirect_back(target: str | None, default: str = "main.home"):
    """Redirect to target when it is safe, else to the default endpoint."""
    return redirect(safe_path(target, default))
