"""Uploads kept between preview and commit: under the instance folder, named by a random token, bound to the
user who uploaded them, checked by hash, and removed after commit or after a day. The client only ever holds the
token; the parsed data is never sent back to the browser, and commit re-reads the stored file."""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Optional

from flask import current_app

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
MAX_AGE_SECONDS = 24 * 3600


def _dir() -> Path:
    path = Path(current_app.config.get("IMPORT_UPLOAD_DIR") or os.path.join(current_app.instance_path, "imports"))
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _purge(folder: Path) -> None:
    cutoff = time.time() - MAX_AGE_SECONDS
    for item in folder.iterdir():
        try:
            if item.is_file() and item.stat().st_mtime < cutoff:
                item.unlink()
        except OSError:
            pass


def save_upload(data: bytes, *, user_id: int, kind: str, campaign_id: Optional[int], filename: str) -> str:
    """Store the bytes; return the token."""
    folder = _dir()
    _purge(folder)
    token = secrets.token_urlsafe(32)
    (folder / f"{token}.bin").write_bytes(data)
    meta = {"user_id": user_id, "kind": kind, "campaign_id": campaign_id, "filename": filename[:200],
            "sha256": hashlib.sha256(data).hexdigest(), "created": time.time()}
    (folder / f"{token}.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return token


def load_upload(token: str, *, user_id: int) -> Optional[tuple[bytes, dict]]:
    """The stored bytes and metadata, only for the user who uploaded them and while fresh and intact."""
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        return None
    folder = _dir()
    try:
        meta = json.loads((folder / f"{token}.json").read_text(encoding="utf-8"))
        data = (folder / f"{token}.bin").read_bytes()
    except (OSError, ValueError):
        return None
    if meta.get("user_id") != user_id or time.time() - meta.get("created", 0) > MAX_AGE_SECONDS:
        return None
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        return None
    return data, meta


def save_report(token: str, report: dict[str, Any]) -> None:
    if TOKEN_RE.match(token):
        (_dir() / f"{token}.report.json").write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")


def load_report(token: str) -> Optional[dict]:
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        return None
    try:
        return json.loads((_dir() / f"{token}.report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def discard(token: str) -> None:
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        return
    for suffix in (".bin", ".json", ".report.json"):
        try:
            (_dir() / f"{token}{suffix}").unlink()
        except OSError:
            pass
