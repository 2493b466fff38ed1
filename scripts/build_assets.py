#!/usr/bin/env python3
"""Copy the pinned front-end files from node_modules into crm/static/vendor.

The app serves these files itself: bank and bureau intranets are offline, so there is
no CDN at run time, and third-party minified files are never committed (the vendor
folder is git-ignored and rebuilt by ``make assets``).

Idempotent: a file is rewritten only when its bytes differ, files that are no longer
part of the plan are removed, and MANIFEST.json (package -> version) is rewritten only
when it changes. Standard library only.

Resulting layout (what templates link to, relative to ``static/``)::

    vendor/bootstrap/css/bootstrap.min.css            (+ .map)
    vendor/bootstrap/js/bootstrap.bundle.min.js       (+ .map; includes Popper)
    vendor/bootstrap-icons/bootstrap-icons.min.css    (+ bootstrap-icons.css)
    vendor/bootstrap-icons/fonts/bootstrap-icons.woff2, .woff
    vendor/echarts/echarts.min.js                     (includes the zh and en locales)
    vendor/tom-select/css/tom-select.bootstrap5.min.css  (+ .map)
    vendor/tom-select/js/tom-select.complete.min.js      (+ .map)
    vendor/htmx/htmx.min.js
    vendor/MANIFEST.json                              {"bootstrap": "5.3.9", ...}
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (npm package, vendor sub-folder, [(source relative to the package, destination
# relative to the sub-folder, required)]). A directory source copies its files.
PLAN: list[tuple[str, str, list[tuple[str, str, bool]]]] = [
    (
        "bootstrap",
        "bootstrap",
        [
            ("dist/css/bootstrap.min.css", "css/bootstrap.min.css", True),
            ("dist/css/bootstrap.min.css.map", "css/bootstrap.min.css.map", False),
            ("dist/js/bootstrap.bundle.min.js", "js/bootstrap.bundle.min.js", True),
            ("dist/js/bootstrap.bundle.min.js.map", "js/bootstrap.bundle.min.js.map", False),
        ],
    ),
    (
        "bootstrap-icons",
        "bootstrap-icons",
        [
            # The css refers to ./fonts/bootstrap-icons.woff2, so keep fonts/ beside it.
            ("font/bootstrap-icons.min.css", "bootstrap-icons.min.css", True),
            ("font/bootstrap-icons.css", "bootstrap-icons.css", False),
            ("font/fonts", "fonts", True),
        ],
    ),
    (
        "echarts",
        "echarts",
        [
            ("dist/echarts.min.js", "echarts.min.js", True),
        ],
    ),
    (
        "tom-select",
        "tom-select",
        [
            ("dist/css/tom-select.bootstrap5.min.css", "css/tom-select.bootstrap5.min.css", True),
            ("dist/css/tom-select.bootstrap5.min.css.map", "css/tom-select.bootstrap5.min.css.map", False),
            ("dist/js/tom-select.complete.min.js", "js/tom-select.complete.min.js", True),
            ("dist/js/tom-select.complete.min.js.map", "js/tom-select.complete.min.js.map", False),
        ],
    ),
    (
        "htmx.org",
        "htmx",
        [
            ("dist/htmx.min.js", "htmx.min.js", True),
        ],
    ),
]

MANIFEST_NAME = "MANIFEST.json"


class BuildError(Exception):
    """A problem the person running the build can fix (usually: run npm ci)."""


def _installed_version(node_modules: Path, package: str) -> str:
    """Version of ``package`` as installed in node_modules."""
    meta = node_modules / package / "package.json"
    if not meta.is_file():
        raise BuildError(f"{package} is not installed in {node_modules}; run `npm ci` (or `make assets`)")
    return json.loads(meta.read_text(encoding="utf-8"))["version"]


def _pinned_versions(package_json: Path) -> dict[str, str]:
    """Exact versions pinned in package.json's dependencies."""
    if not package_json.is_file():
        return {}
    return json.loads(package_json.read_text(encoding="utf-8")).get("dependencies", {})


def _expand(src: Path, dest: Path) -> list[tuple[Path, Path]]:
    """File pairs for one plan entry; a directory expands to the files under it."""
    if src.is_dir():
        return [
            (path, dest / path.relative_to(src))
            for path in sorted(src.rglob("*"))
            if path.is_file()
        ]
    return [(src, dest)]


def build(node_modules: Path, vendor: Path, package_json: Path, verbose: bool = False) -> dict[str, int]:
    """Bring ``vendor`` in line with PLAN; return counts of copied, unchanged and removed files."""
    pins = _pinned_versions(package_json)
    versions: dict[str, str] = {}
    wanted: dict[Path, Path] = {}
    for package, subdir, entries in PLAN:
        version = _installed_version(node_modules, package)
        pinned = pins.get(package)
        if pinned is not None and pinned != version:
            raise BuildError(
                f"{package} {version} is installed but package.json pins {pinned}; "
                "run `npm ci` (or `make assets`)"
            )
        versions[package] = version
        for src_rel, dest_rel, required in entries:
            src = node_modules / package / src_rel
            if not src.exists():
                if required:
                    raise BuildError(f"missing {src}; is node_modules complete? run `npm ci`")
                continue
            for src_file, dest_file in _expand(src, vendor / subdir / dest_rel):
                wanted[dest_file] = src_file

    counts = {"copied": 0, "unchanged": 0, "removed": 0}
    for dest_file, src_file in sorted(wanted.items()):
        if dest_file.is_file() and filecmp.cmp(src_file, dest_file, shallow=False):
            counts["unchanged"] += 1
            continue
        dest_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest_file.with_name(dest_file.name + ".tmp")
        shutil.copyfile(src_file, tmp)
        os.replace(tmp, dest_file)  # never leave a half-written file to be served
        counts["copied"] += 1
        if verbose:
            print(f"  {src_file.relative_to(node_modules)} -> {dest_file.relative_to(vendor)}")

    manifest = vendor / MANIFEST_NAME
    manifest_text = json.dumps(dict(sorted(versions.items())), indent=2) + "\n"
    if not manifest.is_file() or manifest.read_text(encoding="utf-8") != manifest_text:
        manifest.write_text(manifest_text, encoding="utf-8")

    # Remove what an older plan or package version left behind, then empty folders.
    keep = set(wanted) | {manifest}
    for path in sorted(vendor.rglob("*"), reverse=True):
        if path.is_file() or path.is_symlink():
            if path not in keep:
                path.unlink()
                counts["removed"] += 1
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-modules", type=Path, default=ROOT / "node_modules")
    parser.add_argument("--dest", type=Path, default=ROOT / "crm" / "static" / "vendor")
    parser.add_argument("--package-json", type=Path, default=ROOT / "package.json")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    vendor = args.dest.resolve()
    vendor.mkdir(parents=True, exist_ok=True)
    try:
        counts = build(args.node_modules.resolve(), vendor, args.package_json.resolve(), args.verbose)
    except BuildError as exc:
        print(f"build_assets: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"build_assets: {vendor.relative_to(ROOT) if vendor.is_relative_to(ROOT) else vendor}: "
        f"{counts['copied']} copied, {counts['unchanged']} unchanged, {counts['removed']} removed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
