"""PIPL pages: a data subject's copy of their records (PI-4), for bank leads, the bureau and the admin."""
from __future__ import annotations

from flask import current_app, render_template, request
from flask_login import current_user

from crm.auth.decorators import role_required
from crm.auth.models import Role
from crm.core.navigation import add_nav
from crm.core.spreadsheets import send_xlsx
from crm.extensions import db, limiter
from crm.i18n import lazy_gettext as _l
from crm.privacy import bp, services
from crm.privacy.forms import SubjectForm

SUBJECT_ROLES = (Role.ADMIN, Role.BANK_MANAGER, Role.BUREAU)

add_nav("privacy.subject", _l("Personal data copy"), "person-vcard", roles={r.value for r in SUBJECT_ROLES},
        order=95, profile=True)


def _export_limit():
    return current_app.config.get("PRIVACY_EXPORT_RATE_LIMIT", "30/hour")


def _user_key():
    return f"privacy-export:{current_user.get_id() if current_user.is_authenticated else request.remote_addr}"


def _page(form, status=200, *, not_found=False):
    return render_template("privacy/subject.html", form=form, not_found=not_found,
                           role=current_user.role.value), status


@bp.route("/subject", methods=["GET", "POST"])
@role_required(*SUBJECT_ROLES)
@limiter.limit(_export_limit, key_func=_user_key, methods=["POST"])
def subject():
    """The form (GET) and the copy (POST): an XLSX of the person's records held by the requester's organisation.

    The mobile comes by POST only (PI-6); a GET never reads the query string. Every answered request is audited
    with the masked mobile and the row counts; nothing found shows the page again with a message, not a file.
    """
    form = SubjectForm()
    if not form.validate_on_submit():
        return _page(form, 422 if form.errors else 200)
    found = services.find_subject_records(current_user, form.mobile.data, form.name.data)
    services.record_subject_export(current_user, form.mobile.data, found, name_given=bool(form.name.data))
    db.session.commit()
    if found.empty:
        return _page(form, not_found=True)
    return send_xlsx(services.export_filename(), [], [], sheets=services.subject_sheets(found))


from crm.privacy import commands  # noqa: E402,F401  (registers `crm pi-retention`)
