"""Ledger import pages: upload → preview (counts and every rejected row) → error file → commit.

Every registered ledger (``crm.imports.framework.register_ledger``) appears here without further code.
"""
from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from crm.core.forms import Form
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SelectField, SubmitField
from wtforms.validators import DataRequired, Optional

from crm.core.navigation import add_nav
from crm.core.spreadsheets import Sheet, send_xlsx
from crm.extensions import db
from crm.i18n import lazy_gettext as _l
from crm.imports import bp, storage
from crm.imports.framework import ImportContext, Report, get_ledger, ledgers_for, run_import

add_nav("imports.index", _l("Imports"), "upload", roles={"rm", "bank_manager", "admin"}, order=60)


class UploadForm(Form):
    kind = SelectField(_l("Ledger"), validators=[DataRequired()])
    campaign_id = SelectField(_l("Campaign"), validators=[Optional()])
    file = FileField(_l("File (XLSX or CSV)"), validators=[FileRequired(message=_l("Choose a file."))])
    submit = SubmitField(_l("Check the file"))


class CommitForm(Form):
    valid_only = BooleanField(_l("Import only the valid rows"))
    submit = SubmitField(_l("Import"))


def _campaigns():
    from crm.firms.queries import campaigns_for

    return campaigns_for(current_user)


def _upload_form() -> UploadForm:
    form = UploadForm()
    form.kind.choices = [(lg.kind, str(lg.label)) for lg in ledgers_for(current_user)]
    form.campaign_id.choices = [("", "—")] + [(str(c.id), c.name) for c in _campaigns()]
    if not form.is_submitted():
        from crm.firms.queries import default_campaign

        camp = default_campaign(current_user)
        form.campaign_id.data = str(camp.id) if camp else ""
        if request.args.get("kind"):
            form.kind.data = request.args["kind"]
    return form


def _allowed_ledgers():
    lgs = ledgers_for(current_user)
    if not lgs:
        abort(403)
    return lgs


def _context(meta_kind: str, campaign_id):
    ledger = get_ledger(meta_kind)
    if ledger is None or ledger not in ledgers_for(current_user):
        abort(404)
    campaign = None
    if campaign_id:
        campaign = next((c for c in _campaigns() if c.id == int(campaign_id)), None)
    return ledger, ImportContext(user=current_user._get_current_object(), campaign=campaign)


@bp.route("/")
@login_required
def index():
    """Choose a ledger and a campaign, upload the file."""
    lgs = _allowed_ledgers()
    return render_template("imports/index.html", form=_upload_form(), ledgers=lgs)


@bp.route("/preview", methods=["POST"])
@login_required
def preview():
    """Store the upload under a random token and show what importing it would do; nothing is saved yet."""
    lgs = _allowed_ledgers()
    form = _upload_form()
    if not form.validate_on_submit():
        return render_template("imports/index.html", form=form, ledgers=lgs), 422
    ledger = get_ledger(form.kind.data)
    campaign_id = int(form.campaign_id.data) if form.campaign_id.data else None
    if ledger.needs_campaign and campaign_id is None:
        form.campaign_id.errors = list(form.campaign_id.errors) + [_("Choose the campaign.")]
        return render_template("imports/index.html", form=form, ledgers=lgs), 422
    upload = form.file.data
    data = upload.read(current_app.config.get("IMPORT_MAX_BYTES", 10 * 1024 * 1024) + 1)
    filename = upload.filename or ""
    ledger, ctx = _context(ledger.kind, campaign_id)
    token = storage.save_upload(data, user_id=current_user.id, kind=ledger.kind, campaign_id=campaign_id,
                                filename=filename)
    report = run_import(ledger, data, filename, ctx, commit=False)
    storage.save_report(token, report.to_dict())
    return _render_preview(ledger, report, token, ctx.campaign)


def _render_preview(ledger, report: Report, token: str, campaign, status=200):
    return render_template("imports/preview.html", ledger=ledger, report=report, token=token, campaign=campaign,
                           form=CommitForm()), status


@bp.route("/<token>")
@login_required
def show(token):
    """The stored preview of an upload (the uploader's only)."""
    stored = storage.load_upload(token, user_id=current_user.id)
    report = storage.load_report(token)
    if stored is None or report is None:
        abort(404)
    ledger, ctx = _context(stored[1]["kind"], stored[1]["campaign_id"])
    return _render_preview(ledger, Report.from_dict(report), token, ctx.campaign)


@bp.route("/<token>/errors.csv")
@login_required
def errors_csv(token):
    """The rejected rows as a CSV (row, column, value, reason) for fixing in Excel."""
    from flask import Response

    from crm.core.spreadsheets import CSV_MIMETYPE, content_disposition

    stored = storage.load_upload(token, user_id=current_user.id)
    report = storage.load_report(token)
    if stored is None or report is None:
        abort(404)
    name = f"导入错误_{stored[1]['kind']}.csv"
    return Response(Report.from_dict(report).error_csv(), mimetype=CSV_MIMETYPE, headers={
        "Content-Disposition": content_disposition(name), "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})


@bp.route("/<token>/commit", methods=["POST"])
@login_required
def commit(token):
    """Re-read the stored file and import it: all or nothing, unless the user chose the valid rows only."""
    stored = storage.load_upload(token, user_id=current_user.id)
    if stored is None:
        abort(404)
    form = CommitForm()
    if not form.validate_on_submit():
        abort(400)
    data, meta = stored
    ledger, ctx = _context(meta["kind"], meta["campaign_id"])
    report = run_import(ledger, data, meta["filename"], ctx, commit=True, valid_only=bool(form.valid_only.data))
    if not report.committed:
        storage.save_report(token, report.to_dict())
        flash(_("Nothing was imported: %(n)d rows were rejected. Fix the file, or choose to import only the "
                "valid rows.", n=report.rejected), "danger")
        return _render_preview(ledger, report, token, ctx.campaign, status=422)
    storage.discard(token)
    flash(_("Imported: %(c)d created, %(u)d updated, %(s)d unchanged, %(r)d rejected.", c=report.created,
            u=report.updated, s=report.unchanged, r=report.rejected), "success")
    return redirect(url_for("imports.index"))


@bp.route("/template/<kind>.xlsx")
@login_required
def template(kind):
    """An empty ledger with its Chinese headers and one example row."""
    ledger = get_ledger(kind)
    if ledger is None:
        abort(404)
    headers = ledger.headers
    example = {ledger.columns[k][0]: v for k, v in ledger.example.items() if k in ledger.columns}
    return send_xlsx(f"{kind}_template", [], [], sheets=[Sheet(str(ledger.label), headers, [example])])


from crm.imports import commands  # noqa: E402,F401
