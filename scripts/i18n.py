"""Translation catalogues: `python scripts/i18n.py extract|update|compile|missing`.

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


def _sources(lang_dir: Path) -> list[Path]:
    """The main catalogue plus one part per domain (parts/<domain>.po), merged at compile time."""
    return [lang_dir / "LC_MESSAGES" / "messages.po", *sorted((lang_dir / "parts").glob("*.po"))]


def compile_catalogs(quiet: bool = True) -> None:
    """Merge each language's main catalogue and domain parts into one messages.mo when stale."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for lang_dir in sorted(p for p in TRANSLATIONS.iterdir() if p.is_dir()):
        sources = [p for p in _sources(lang_dir) if p.exists()]
        if not sources:
            continue
        mo = lang_dir / "LC_MESSAGES" / "messages.mo"
        newest = max(p.stat().st_mtime for p in sources)
        if mo.exists() and mo.stat().st_mtime >= newest:
            continue
        merged = None
        for src in sources:
            with src.open("rb") as f:
                catalog = read_po(f, locale=lang_dir.name)
            if merged is None:
                merged = catalog
                continue
            for message in catalog:
                if message.id and message.string and not (merged.get(message.id) and merged.get(message.id).string):
                    merged[message.id] = message
        with mo.open("wb") as f:
            write_mo(f, merged)
        if not quiet:
            print(f"compiled {mo.relative_to(ROOT)} from {len(sources)} sources")


def untranslated(lang: str = "zh") -> list[str]:
    """Message ids used in the code (messages.pot) with no translation in any source."""
    from babel.messages.pofile import read_po

    with POT.open("rb") as f:
        template = read_po(f)
    done = set()
    for src in _sources(TRANSLATIONS / lang):
        if src.exists():
            with src.open("rb") as f:
                done |= {m.id for m in read_po(f) if m.id and m.string}
    return sorted(m.id for m in template if m.id and m.id not in done)


def main(cmd: str) -> None:
    if cmd == "extract":
        pybabel("extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext", "--no-location", "--sort-output",
                "-o", str(POT), ".")
    elif cmd == "update":
        main("extract")
        pybabel("update", "-i", str(POT), "-d", str(TRANSLATIONS), "--no-fuzzy-matching", "--ignore-obsolete")
    elif cmd == "compile":
        compile_catalogs(quiet=False)
    elif cmd == "missing":
        main("extract")
        for msgid in untranslated():
            print(msgid)
    else:
        raise SystemExit("usage: i18n.py extract|update|compile|missing")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "compile")
