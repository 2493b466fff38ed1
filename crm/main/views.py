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
    """Browsers ask for it on every page; serve the app icon."""
    from flask import current_app, send_from_directory

    return send_from_directory(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400)
