"""Error pages for people: no stack trace, a message in their language, and a rollback.

Refused access (403) is audited; a refused CSRF check is logged (not audited, so that anonymous
junk cannot fill the append-only audit table); a server error gets an incident id shown to the
person and written to the log next to the traceback.
"""
from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from crm.extensions import db


def _can_render() -> bool:
    """False when the request never got a URL adapter (an untrusted Host header): templates need url_for."""
    from flask.globals import request_ctx

    return request_ctx.url_adapter is not None


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _audit_denied() -> None:
    """One audit row per refused action: who, what (method and path, no query string), from where."""
    from crm.core import audit
    from crm.security import printable

    try:
        user = current_user._get_current_object() if current_user and current_user.is_authenticated else None
        audit.record("access.denied", user=user, object_type="route",
                     detail=printable(f"{request.method} {request.path} {request.endpoint or ''}", 300))
        db.session.commit()
    except Exception:  # the refusal stands even when the trail cannot be written
        db.session.rollback()
        from flask import current_app

        current_app.logger.exception("could not audit a refused request")


def register(app: Flask) -> None:
    """Render every HTTP error, and roll back the session on any failure."""

    @app.errorhandler(CSRFError)
    def csrf_error(e):
        from crm.security import printable

        db.session.rollback()
        app.logger.warning("CSRF refused: %s %s from %s: %s", request.method, printable(request.path),
                           request.remote_addr, e.description)
        msg = _("The form has expired or was not sent from this site. Please reload the page and try again.")
        if _wants_json():
            return jsonify(error="csrf", message=msg), 400
        return render_template("errors/error.html", code=400, message=msg), 400

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        db.session.rollback()
        if e.code == 403:
            _audit_denied()
        messages = {
            400: _("The request could not be understood."),
            401: _("Please sign in."),
            403: _("You do not have permission to do this."),
            404: _("The page or record was not found."),
            405: _("This action is not allowed here."),
            409: _("Someone else changed this record meanwhile. Your changes were not saved; please reload."),
            413: _("The upload is too large."),
            429: _("Too many attempts. Please wait a moment and try again."),
        }
        msg = messages.get(e.code, e.name)
        if isinstance(e.description, str) and e.code in (400, 409, 413) and getattr(e, "user_message", False):
            msg = e.description
        if _wants_json():
            resp = jsonify(error=e.code, message=msg)
        elif not _can_render():
            resp = app.make_response((f"{e.code} {e.name}", e.code, {"Content-Type": "text/plain; charset=utf-8"}))
        else:
            resp = app.make_response((render_template("errors/error.html", code=e.code, message=msg), e.code))
        resp.status_code = e.code or 500
        if e.code == 405 and e.valid_methods:
            resp.headers["Allow"] = ", ".join(e.valid_methods)
        if e.code == 429 and e.response is not None and e.response.headers.get("Retry-After"):
            resp.headers["Retry-After"] = e.response.headers["Retry-After"]
        elif e.code == 429:
            resp.headers.setdefault("Retry-After", "60")
        return resp

    @app.errorhandler(Exception)
    def server_error(e: Exception):
        from crm.security import incident_id, printable

        db.session.rollback()
        incident = incident_id()
        app.logger.exception("unhandled error [incident %s] on %s %s", incident, request.method,
                             printable(request.path))
        msg = _("Something went wrong on our side. Nothing was saved. Please try again.")
        if _wants_json():
            return jsonify(error=500, message=msg, incident=incident), 500
        return render_template("errors/error.html", code=500, message=msg, incident=incident), 500
