"""Translation catalogues: `python scripts/i18n.py extract|update|compile`.

`compile` runs at set-up (make) and before tests; `.mo` files are build output and not committed.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "crm" / "translations"
POT = ROOT / "crm" / "translations" / "messages.pot"


def pybabel(*args: str) -> None:
    exe = Path(sys.executable).with_name("pybabel")
    subprocess.run([str(exe), *args], check=True, cwd=ROOT)


def compile_catalogs(quiet: bool = True) -> None:
    """Compile every .po whose .mo is missing or older (stdlib-free: uses Babel's API)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as f:
            catalog = read_po(f)
        with mo.open("wb") as f:
            write_mo(f, catalog)
        if not quiet:
            print(f"compiled {mo.relative_to(ROOT)}")


def main(cmd: str) -> None:
    if cmd == "extract":
        pybabel("extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext", "--no-location", "--sort-output",
                "-o", str(POT), ".")
    elif cmd == "update":
        main("extract")
        pybabel("update", "-i", str(POT), "-d", str(TRANSLATIONS), "--no-fuzzy-matching", "--ignore-obsolete")
    elif cmd == "compile":
        compile_catalogs(quiet=False)
    else:
        raise SystemExit("usage: i18n.py extract|update|compile")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "compile")
