#!/usr/bin/env python3
"""set_version.py: moves polyio to a new version everywhere it is written by hand: the
workspace version and the polyio-core dependency in Cargo.toml, the POLYIO_VERSION_*
constants cbindgen copies into the header (bindings-c/src/runtime.rs), and the Node
packages' package.json files and package-lock.json. `make set-version V=X.Y.Z` runs this,
then regenerates the rest (`make header`; `make node-build` for index.js), and
tests/versions.py checks that they all agree.

    scripts/set_version.py X.Y.Z
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sub(path: Path, pattern: str, repl: str, count: int = 1) -> None:
    text = path.read_text()
    new, n = re.subn(pattern, repl, text, count=count, flags=re.M)
    if n != count:
        sys.exit(f"set_version: {path.relative_to(ROOT)}: expected {count} match(es) of {pattern!r}, found {n}")
    path.write_text(new)


def main() -> None:
    if len(sys.argv) != 2 or not re.fullmatch(r"\d+\.\d+\.\d+", sys.argv[1]):
        sys.exit("usage: scripts/set_version.py X.Y.Z")
    version = sys.argv[1]
    major, minor, patch = version.split(".")
    cargo = ROOT / "Cargo.toml"
    sub(cargo, r'(\[workspace\.package\]\nversion = ")[^"]+(")', rf"\g<1>{version}\g<2>")
    sub(cargo, r'^(polyio-core = \{.*version = ")[^"]+(")', rf"\g<1>{version}\g<2>")
    runtime = ROOT / "bindings-c/src/runtime.rs"
    for name, value in (("MAJOR", major), ("MINOR", minor), ("PATCH", patch)):
        sub(runtime, rf"^(pub const POLYIO_VERSION_{name}: u32 = )\d+;", rf"\g<1>{value};")
    node = ROOT / "bindings-node"
    for pkg_json in [node / "package.json", *sorted((node / "npm").glob("*/package.json"))]:
        pkg = json.loads(pkg_json.read_text())
        pkg["version"] = version
        pkg_json.write_text(json.dumps(pkg, indent=2, ensure_ascii=False) + "\n")
    lock_json = node / "package-lock.json"
    lock = json.loads(lock_json.read_text())
    lock["version"] = lock["packages"][""]["version"] = version
    lock_json.write_text(json.dumps(lock, indent=2, ensure_ascii=False) + "\n")
    print(f"set_version: polyio {version} in Cargo.toml, bindings-c/src/runtime.rs, the package.json files")


if __name__ == "__main__":
    main()
