"""Accounts: create, authenticate, change password, end sessions. Services flush, never commit."""
from __future__ import annotations

import secrets
import string
from typing import Optional

from flask_babel import gettext as _

from crm.auth import passwords
from crm.auth.models import BANK_ROLES, Role, User, normalize_username
from crm.core import audit
from crm.core.db import utcnow
from crm.extensions import db
from crm.orgs.models import Organisation, OrgKind


class AccountError(ValueError):
    pass


def generate_password(length: int = 16) -> str:
    """A strong random password for a new account, shown once."""
    alphabet = string.ascii_letters + string.digits
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if any(c.isdigit() for c in pw) and any(c.isupper() for c in pw) and any(c.islower() for c in pw):
            return pw


def find_user(username: str) -> Optional[User]:
    return db.session.scalar(db.select(User).where(User.username == normalize_username(username)))


def create_user(*, username: str, role: Role | str, org: Organisation, password: str, name: str = "",
                actor: Optional[User] = None) -> User:
    """Create an account; the bank is derived from the organisation."""
    norm = normalize_username(username)
    if not norm or len(norm) > 64 or any(ch.isspace() for ch in norm):
        raise AccountError(_("The username must be 1–64 characters without spaces."))
    try:
        role = Role(role)
    except ValueError as exc:
        raise AccountError(_("Unknown role: %(role)s", role=role)) from exc
    if find_user(norm) is not None:
        raise AccountError(_("The username %(u)s is already taken.", u=norm))
    bank = org.bank
    if role in BANK_ROLES and bank is None:
        raise AccountError(_("Bank staff must belong to a bank or one of its branches."))
    if role == Role.BUREAU and org.kind != OrgKind.BUREAU:
        raise AccountError(_("Bureau users must belong to the bureau."))
    try:
        passwords.check_policy(password, username=norm, extra_words=(org.code, org.short_name))
    except passwords.PasswordPolicyError as exc:
        raise AccountError(str(exc)) from exc
    user = User(
        username=norm,
        name=name or norm,
        role=role,
        org=org,
        bank_id=bank.id if role in BANK_ROLES else None,
        password_hash=passwords.hash_password(password),
    )
    db.session.add(user)
    db.session.flush()
    audit.record("user.create", user, user=actor, bank_id=user.bank_id,
                 after={"username": user.username, "role": user.role.value, "org": org.code})
    return user


def authenticate(username: str, password: str) -> Optional[User]:
    """The user when the password matches and the account is active; one hash check on every path."""
    user = find_user(username or "")
    if user is None:
        passwords.dummy_verify(password or "")
        return None
    if not passwords.verify_password(user.password_hash, password or ""):
        return None
    if not user.is_active:
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    user.last_login_at = utcnow()
    db.session.flush()
    return user


def change_password(user: User, current: str, new: str) -> None:
    """Change a password after checking the current one; ends every other session."""
    if not passwords.verify_password(user.password_hash, current or ""):
        raise AccountError(_("The current password is wrong."))
    try:
        passwords.check_policy(new, username=user.username, extra_words=(user.org.code, user.org.short_name))
    except passwords.PasswordPolicyError as exc:
        raise AccountError(str(exc)) from exc
    user.password_hash = passwords.hash_password(new)
    user.must_change_password = False
    user.rotate_session_token()
    db.session.flush()
    audit.record("user.password_change", user, user=user, bank_id=user.bank_id)


def set_active(user: User, active: bool, *, actor: Optional[User] = None) -> None:
    """Activate or deactivate an account; deactivation ends its sessions at once."""
    user.is_active_flag = active
    user.rotate_session_token()
    db.session.flush()
    audit.record("user.activate" if active else "user.deactivate", user, user=actor, bank_id=user.bank_id)


def change_role(user: User, role: Role | str, *, org: Optional[Organisation] = None,
                actor: Optional[User] = None) -> None:
    """Change a user's role (and organisation); effective on their next request, since every request reloads
    the user and derives the tenant scope from the database."""
    try:
        role = Role(role)
    except ValueError as exc:
        raise AccountError(_("Unknown role: %(role)s", role=role)) from exc
    org = org or user.org
    bank = org.bank
    if role in BANK_ROLES and bank is None:
        raise AccountError(_("Bank staff must belong to a bank or one of its branches."))
    if role == Role.BUREAU and org.kind != OrgKind.BUREAU:
        raise AccountError(_("Bureau users must belong to the bureau."))
    before = {"role": user.role.value, "org": user.org.code, "bank_id": user.bank_id}
    user.role = role
    user.org = org
    user.bank_id = bank.id if role in BANK_ROLES else None
    db.session.flush()
    audit.record("user.role_change", user, user=actor, bank_id=user.bank_id, before=before,
                 after={"role": user.role.value, "org": org.code, "bank_id": user.bank_id})


def reset_password(user: User, *, actor: Optional[User] = None) -> str:
    """Set a random one-time password that must be changed at next sign-in; ends the user's sessions."""
    password = generate_password()
    user.password_hash = passwords.hash_password(password)
    user.must_change_password = True
    user.rotate_session_token()
    db.session.flush()
    audit.record("user.password_reset", user, user=actor, bank_id=user.bank_id)
    return password
