"""QR codes drawn on the server with segno (no external service): SVG for pages and print, PNG on request."""
from __future__ import annotations

import io

import segno
from flask import Response


def qr_bytes(data: str, kind: str = "svg", scale: int = 6) -> bytes:
    qr = segno.make(data, error="m")
    buf = io.BytesIO()
    if kind == "png":
        qr.save(buf, kind="png", scale=scale, border=2)
    else:
        qr.save(buf, kind="svg", scale=scale, border=2, xmldecl=False, svgns=True, title=None, desc=None)
    return buf.getvalue()


def qr_response(data: str, kind: str = "svg") -> Response:
    kind = "png" if kind == "png" else "svg"
    resp = Response(qr_bytes(data, kind), mimetype="image/png" if kind == "png" else "image/svg+xml")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp
