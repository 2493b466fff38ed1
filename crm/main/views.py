"""Each role's home page."""
from flask import jsonify, render_template
from flask_login import current_user, login_required

from crm.main import bp, services


@bp.route("/")
@login_required
def home():
    """The signed-in user's home: what needs doing now, and the campaign at a glance."""
    summary = services.home_summary(current_user)
    return render_template("main/home.html", summary=summary)


@bp.route("/healthz")
def healthz():
    """Liveness for the load balancer; reveals nothing."""
    return jsonify(status="ok")


@bp.route("/readyz")
def readyz():
    """Readiness: the database answers and the rate-limit storage (Redis in production) is reachable.

    503 ``{"status": "unavailable"}`` otherwise, so a load balancer stops sending requests to a server that could
    only answer 500s; the reason goes to the log, never into the answer (it reveals nothing, like /healthz).
    """
    import sqlalchemy as sa
    from flask import current_app

    from crm.extensions import db, limiter

    failed = []
    try:
        db.session.execute(sa.text("SELECT 1")).scalar_one()
    except Exception:  # any driver or connection error means "not ready"
        current_app.logger.exception("readiness: the database does not answer")
        failed.append("database")
    finally:
        db.session.rollback()
    if current_app.config.get("RATELIMIT_ENABLED", True):  # without limits there is no storage to reach
        try:
            ok = limiter.storage.check()
        except Exception:
            current_app.logger.exception("readiness: the rate-limit storage check raised")
            ok = False
        if not ok:
            current_app.logger.error("readiness: the rate-limit storage is unreachable")
            failed.append("rate-limit storage")
    if failed:
        return jsonify(status="unavailable"), 503
    return jsonify(status="ok")


@bp.route("/favicon.ico")
def favicon():
    """Browsers ask for it on every page; serve the app icon (read once, no open file per request)."""
    from pathlib import Path

    from flask import Response, current_app

    global _FAVICON
    if _FAVICON is None:
        _FAVICON = (Path(current_app.static_folder) / "favicon.svg").read_bytes()
    resp = Response(_FAVICON, mimetype="image/svg+xml")
    resp.headers["Cache-Control"] = "public, max-age=86400"
    return resp


_FAVICON = None
