"""The profile page where users create and revoke their personal API tokens."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from crm.api import tokens_bp
from crm.api.forms import TokenForm
from crm.api.services import TokenError, create_token, expires_at, is_usable, revoke_token, user_tokens
from crm.auth.forms import EmptyForm
from crm.auth.models import ApiToken
from crm.core.navigation import add_nav
from crm.extensions import db
from crm.i18n import lazy_gettext as _l

add_nav("tokens.index", _l("API tokens"), "key", profile=True)


def _page(form, new_token=None, status=200):
    tokens = user_tokens(current_user)
    rows = [{"token": t, "expires_at": expires_at(t), "usable": is_usable(t)} for t in tokens]
    return render_template("api/tokens.html", form=form, rows=rows, new_token=new_token,
                           revoke_form=EmptyForm()), status


@tokens_bp.route("/tokens", methods=["GET", "POST"])
@login_required
def index():
    """List one's tokens and create a new one (shown once, right here, never again)."""
    form = TokenForm()
    if form.validate_on_submit():
        try:
            token, raw = create_token(current_user, form.name.data)
        except TokenError as exc:
            db.session.rollback()
            form.name.errors.append(str(exc))
            return _page(form, status=400)
        db.session.commit()
        return _page(TokenForm(formdata=None), new_token={"raw": raw, "row": token})
    if request.method == "POST":
        return _page(form, status=400)
    return _page(form)


@tokens_bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke(token_id: int):
    """Revoke one of one's own tokens; another user's token is a 404."""
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != current_user.id:
        abort(404)
    revoke_token(token, user=current_user)
    db.session.commit()
    flash(_("The token %(name)s was revoked.", name=token.name), "success")
    return redirect(url_for("tokens.index"))
