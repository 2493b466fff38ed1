"""Coarse, function-level access: sign-in and roles."""
from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from crm.auth.models import Role


def role_required(*roles: Role | str):
    """Require sign-in and one of the roles; 403 otherwise (404-style hiding is the record loaders' job)."""
    allowed = {Role(r) for r in roles}

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def bank_user_required(view):
    """Only bank staff (rm, bank_manager) write a bank's records."""
    return role_required(Role.RM, Role.BANK_MANAGER)(view)


def writer_required(view):
    """Bank staff and the admin; the bureau reads."""
    return role_required(Role.RM, Role.BANK_MANAGER, Role.ADMIN)(view)
