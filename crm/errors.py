"""Error pages for people: no stack trace, a message in their language, and a rollback."""
from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from crm.extensions import db


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def register(app: Flask) -> None:
    """Render every HTTP error, and roll back the session on any failure."""

    @app.errorhandler(CSRFError)
    def csrf_error(e):
        db.session.rollback()
        msg = _("The form has expired or was not sent from this site. Please reload the page and try again.")
        if _wants_json():
            return jsonify(error="csrf", message=msg), 400
        return render_template("errors/error.html", code=400, message=msg), 400

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        db.session.rollback()
        messages = {
            400: _("The request could not be understood."),
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
        else:
            resp = app.make_response((render_template("errors/error.html", code=e.code, message=msg), e.code))
        resp.status_code = e.code or 500
        if e.code == 429 and e.response is not None and e.response.headers.get("Retry-After"):
            resp.headers["Retry-After"] = e.response.headers["Retry-After"]
        elif e.code == 429:
            resp.headers.setdefault("Retry-After", "60")
        return resp

    @app.errorhandler(Exception)
    def server_error(e: Exception):
        db.session.rollback()
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        msg = _("Something went wrong on our side. Nothing was saved. Please try again.")
        if _wants_json():
            return jsonify(error=500, message=msg), 500
        return render_template("errors/error.html", code=500, message=msg), 500
