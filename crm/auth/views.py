"""Sign-in, sign-out, language and password views."""
from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from crm import security

from crm.auth import bp, services
from crm.auth.forms import EmptyForm, LoginForm, PasswordChangeForm
from crm.auth.models import normalize_username
from crm.core import audit
from crm.core.urls import is_safe_path, redirect_back
from crm.extensions import db, limiter


def _login_limit_key() -> str:
    return "login-user:" + normalize_username(request.form.get("username", ""))[:64]


def _login_limit():
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=_login_limit_key)
def login():
    """Sign in; one message for an unknown user and a wrong password."""
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if form.validate_on_submit():
        user = services.authenticate(form.username.data, form.password.data)
        if user is None:
            audit.record("auth.login_failed", detail=security.printable(normalize_username(form.username.data), 64))
            db.session.commit()
            flash(_("Wrong username or password."), "danger")
            return render_template("auth/login.html", form=form), 200
        next_target = form.next.data
        security.start_session(user, remember=bool(form.remember.data))  # a fresh session and CSRF token
        audit.record("auth.login", user, user=user, bank_id=user.bank_id)
        db.session.commit()
        if user.must_change_password:
            flash(_("Please set a new password."), "warning")
            return redirect(url_for("auth.password"))
        return redirect_back(next_target if is_safe_path(next_target) else None)
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Sign out and end every session of this user, including remember-me cookies."""
    form = EmptyForm()
    if not form.validate_on_submit():
        return redirect(url_for("main.home"))
    user = current_user._get_current_object()
    user.rotate_session_token()
    audit.record("auth.logout", user, user=user, bank_id=user.bank_id)
    db.session.commit()
    security.end_session()
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password():
    """Change one's own password; other sessions end."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            services.change_password(user, form.current.data, form.new.data)
        except services.AccountError as exc:
            db.session.rollback()
            form.new.errors.append(str(exc))
        else:
            db.session.commit()
            security.renew_session(user)  # this session continues under the new token, with a new CSRF token
            flash(_("Your password was changed. Other sessions were signed out."), "success")
            return redirect(url_for("main.home"))
    return render_template("auth/password.html", form=form)


@bp.route("/language/<code>", methods=["POST"])
def set_language(code):
    """Switch the interface language; remembered on the user's profile."""
    form = EmptyForm()
    if form.validate_on_submit() and code in current_app.config["LANGUAGES"]:
        session["locale"] = code
        if current_user.is_authenticated:
            current_user.locale = code
            db.session.commit()
    return redirect_back(request.form.get("next"))
