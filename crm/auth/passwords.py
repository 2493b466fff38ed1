"""Password policy (length, not composition; common and context words refused) and hashing."""
from __future__ import annotations

import unicodedata
from functools import lru_cache

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

MIN_LENGTH = 8
MAX_LENGTH = 128

#: Chinese favourites and a few classics, on top of the frequency list read by :func:`common_passwords`
COMMON_PASSWORDS = {
    "12345678", "123456789", "1234567890", "password", "password1", "11111111", "00000000", "88888888",
    "66666666", "qwertyui", "qwerty123", "woaini1314", "a123456789", "5201314520", "1qaz2wsx",
    "abc12345", "abcd1234", "iloveyou", "admin123", "admin1234", "p@ssw0rd", "passw0rd", "aa123456",
    "qq123456", "123123123", "12341234", "11223344", "147258369", "987654321", "asdfghjk", "zxcvbnm1",
    "woaini520", "5201314", "1314520520", "welcome1", "letmein1", "changeme", "trustno1", "superman",
    "princess", "sunshine", "football", "baseball", "qwertyuiop", "1q2w3e4r", "q1w2e3r4", "zaq12wsx",
}
#: words from the product's own context that must not anchor a password
CONTEXT_WORDS = {"shenzhen", "szkj", "longgang", "zhichanrong", "crm", "bank", "bureau", "kcj", "nongshang",
                 "icbc", "szrcb", "campaign", "知产融", "深圳", "龙岗", "农商", "工商"}


class PasswordPolicyError(ValueError):
    pass


def _fold(text: str) -> str:
    """How passwords are compared with the lists: NFKC (full-width, ligatures) and case folded."""
    return unicodedata.normalize("NFKC", text).casefold()


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The refused list: zxcvbn's 30,000 most frequent leaked passwords plus :data:`COMMON_PASSWORDS`, folded.

    The list ships with the ``zxcvbn`` package (pinned in requirements.txt, MIT licence; its "passwords" frequency
    list), read once per process: no network, no vendored copy to keep up to date by hand. 11,611 of its entries
    have the 8 characters our policy needs, well over ASVS 5 6.2.4's 3,000.
    """
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(_fold(w) for w in FREQUENCY_LISTS["passwords"]) | frozenset(_fold(w) for w in COMMON_PASSWORDS)


def check_policy(password: str, *, username: str = "", extra_words: tuple[str, ...] = ()) -> None:
    """Raise PasswordPolicyError with a Chinese message when the password is too weak."""
    from flask_babel import gettext as _

    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(_("The password must have at least %(n)d characters.", n=MIN_LENGTH))
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(_("The password may have at most %(n)d characters.", n=MAX_LENGTH))
    folded = _fold(password)
    if folded in common_passwords() or folded.strip() in common_passwords() or len(set(folded)) <= 2:
        raise PasswordPolicyError(_("This password is too common. Please choose another."))
    stripped = folded.strip("0123456789!@#$%^&*._- ")
    words = set(CONTEXT_WORDS) | {w.casefold() for w in extra_words if w and len(w) >= 3}
    if username and len(username) >= 3:
        words.add(username.casefold())
    for word in words:
        if stripped == word or (word in folded and len(folded) - len(word) <= 4):
            raise PasswordPolicyError(_("The password must not be built on a name of this system, bank or user."))


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def verify_password(pw_hash: str, password: str) -> bool:
    return check_password_hash(pw_hash, password)


def needs_rehash(pw_hash: str) -> bool:
    """True when the stored hash uses another method than the configured one."""
    method = current_app.config["PASSWORD_HASH_METHOD"]
    return not pw_hash.startswith(method + "$")


_DUMMY_HASH: dict[str, str] = {}


def dummy_verify(password: str) -> None:
    """Spend the same time as a real check when the user does not exist (no enumeration by timing)."""
    method = current_app.config["PASSWORD_HASH_METHOD"]
    if method not in _DUMMY_HASH:
        _DUMMY_HASH[method] = generate_password_hash("not-a-real-password", method=method)
    check_password_hash(_DUMMY_HASH[method], password)
