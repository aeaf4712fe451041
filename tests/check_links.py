#!/usr/bin/env python3
"""Fails if a Markdown link in README.md or docs/*.md does not name a file in this repository
(or one of the reference pages `make docs` generates into the book: docs/reference/*.md).

    python3 tests/check_links.py [FILE.md ...]

Every `[text](target)` must resolve, relative to the Markdown file, to a file or directory
that git tracks (so that a fresh clone has it); a `#fragment` is ignored. Links that leave the
repository (URLs, `../` past the root) fail: the docs must stand on their own.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# [text](target) or [text](target "title"); text may hold `code` but no brackets.
LINK = re.compile(r"\[[^\[\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def tracked() -> set[str]:
    """Every tracked file and every directory that holds one, relative to the root."""
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    paths: set[str] = set()
    for f in filter(None, out.split("\0")):
        p = Path(f)
        paths.add(p.as_posix())
        paths.update(parent.as_posix() for parent in p.parents if parent != Path("."))
    return paths


def links(md: Path) -> list[tuple[int, str]]:
    """(line, target) of every link outside fenced code blocks."""
    found, fenced = [], False
    for n, line in enumerate(md.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            found.extend((n, m.group(1)) for m in LINK.finditer(line))
    return found


def generated() -> set[str]:
    """The pages `make docs` generates into the book (scripts/docs_reference.py's PAGES)."""
    text = (ROOT / "scripts/docs_reference.py").read_text()
    match = re.search(r"^PAGES = \(([^)]*)\)", text, re.M)
    return {f"docs/reference/{p}" for p in re.findall(r'"([^"]+)"', match.group(1) if match else "")}


def main(argv: list[str]) -> int:
    files = [Path(a).resolve() for a in argv] or [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    known = tracked() | generated()
    bad = 0
    for md in files:
        for line, target in links(md):
            path = target.split("#", 1)[0]
            where = f"{md.relative_to(ROOT)}:{line}: {target}"
            if not path:
                continue  # a link within the same page
            if re.match(r"^[a-z][a-z0-9+.-]*:", path):
                print(f"{where}: not a file in this repository")
                bad += 1
                continue
            resolved = (md.parent / path).resolve()
            try:
                rel = resolved.relative_to(ROOT).as_posix()
            except ValueError:
                print(f"{where}: outside the repository")
                bad += 1
                continue
            if rel not in known:
                print(f"{where}: no such tracked file")
                bad += 1
    checked = ", ".join(str(f.relative_to(ROOT)) for f in files)
    if bad:
        print(f"check-links: {bad} broken link(s)")
        return 1
    print(f"check-links: every link in {checked} names a tracked file")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
