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
