#!/usr/bin/env python3
"""versions.py: one version number for every part of polyio.

The workspace version in Cargo.toml is the one source. This checks that the header's
POLYIO_VERSION_* macros, the Node packages' package.json files (the main one and each platform
package under bindings-node/npm/), the workspace's polyio-core dependency and the version the generated loader (index.js) expects of
its platform packages all equal it. With --dist DIR it checks the artifacts `make dist` wrote
as well: the wheel's and sdist's names and metadata, the npm tarballs' package.json files
(and the main one's optionalDependencies), and the C tarball's library file name, .pc files
and CMake version file.

    tests/versions.py [--dist DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def workspace_version() -> str:
    text = (ROOT / "Cargo.toml").read_text()
    section = text.split("[workspace.package]", 1)[1]
    match = re.search(r'^version = "([^"]+)"', section, re.M)
    if match is None:
        sys.exit("versions: no version in Cargo.toml's [workspace.package]")
    return match.group(1)


def check_sources(want: str, problems: list[str]) -> None:
    cargo = (ROOT / "Cargo.toml").read_text()
    core = re.search(r'^polyio-core = \{.*version = "([^"]+)"', cargo, re.M)
    if core is None or core.group(1) != want:
        problems.append(f"Cargo.toml's polyio-core dependency asks for {core and core.group(1)}")
    header = (ROOT / "include/polyio.h").read_text()
    parts = []
    for name in ("MAJOR", "MINOR", "PATCH"):
        match = re.search(rf"^#define POLYIO_VERSION_{name} (\d+)$", header, re.M)
        parts.append(match.group(1) if match else "?")
    if ".".join(parts) != want:
        problems.append(f"include/polyio.h's POLYIO_VERSION_* say {'.'.join(parts)}")

    node = ROOT / "bindings-node"
    main = json.loads((node / "package.json").read_text())
    if main["version"] != want:
        problems.append(f"bindings-node/package.json says {main['version']}")
    platforms = sorted((node / "npm").glob("*/package.json"))
    if not platforms:
        problems.append("bindings-node/npm/ holds no platform package")
    for path in platforms:
        pkg = json.loads(path.read_text())
        if pkg["version"] != want:
            problems.append(f"{path.relative_to(ROOT)} says {pkg['version']}")
    loader = (node / "index.js").read_text()
    expected = set(re.findall(r"bindingPackageVersion !== '([^']+)'", loader))
    if expected != {want}:
        problems.append(f"bindings-node/index.js expects platform packages at {sorted(expected)}")


def check_dist(dist: Path, want: str, problems: list[str]) -> None:
    wheels = sorted(dist.glob("polyio-*.whl"))
    if len(wheels) != 1 or not wheels[0].name.startswith(f"polyio-{want}-"):
        problems.append(f"dist/ wheels: {[w.name for w in wheels]}")
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            meta = z.read(f"polyio-{want}.dist-info/METADATA").decode()
        if f"\nVersion: {want}\n" not in meta:
            problems.append(f"{wheel.name}'s METADATA has no 'Version: {want}'")
    sdist = dist / f"polyio-{want}.tar.gz"
    if not sdist.exists():
        problems.append(f"no {sdist.name} in dist/")
    else:
        with tarfile.open(sdist) as t:
            member = t.extractfile(f"polyio-{want}/PKG-INFO")
            info = member.read().decode() if member else ""
        if f"\nVersion: {want}\n" not in info:
            problems.append(f"{sdist.name}'s PKG-INFO has no 'Version: {want}'")

    for name in ("polyio", "polyio-linux-x64-gnu"):
        tgz = dist / f"{name}-{want}.tgz"
        if not tgz.exists():
            problems.append(f"no {tgz.name} in dist/")
            continue
        with tarfile.open(tgz) as t:
            member = t.extractfile("package/package.json")
            pkg = json.loads(member.read()) if member else {}
        if pkg.get("version") != want:
            problems.append(f"{tgz.name}'s package.json says {pkg.get('version')}")
        if name == "polyio" and pkg.get("optionalDependencies") != {"polyio-linux-x64-gnu": want}:
            problems.append(f"{tgz.name}'s optionalDependencies are {pkg.get('optionalDependencies')}")

    ctar = dist / f"libpolyio-{want}-linux-x86_64.tar.gz"
    if not ctar.exists():
        problems.append(f"no {ctar.name} in dist/")
        return
    top = f"libpolyio-{want}-linux-x86_64"
    with tarfile.open(ctar) as t:
        names = set(t.getnames())

        def text(path: str) -> str:
            member = t.extractfile(f"{top}/{path}")
            return member.read().decode() if member else ""

        for pc in ("polyio.pc", "polyio-static.pc"):
            if f"\nVersion: {want}\n" not in text(f"lib/pkgconfig/{pc}"):
                problems.append(f"{ctar.name}'s {pc} has no 'Version: {want}'")
        if f'set(PACKAGE_VERSION "{want}")' not in text("lib/cmake/polyio/polyioConfigVersion.cmake"):
            problems.append(f"{ctar.name}'s polyioConfigVersion.cmake is not {want}")
        if f"{top}/lib/libpolyio.so.{want}" not in names:
            problems.append(f"{ctar.name} has no lib/libpolyio.so.{want}")
        header = text("include/polyio.h")
        if header != (ROOT / "include/polyio.h").read_text():
            problems.append(f"{ctar.name}'s polyio.h differs from include/polyio.h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, help="also check the artifacts in this directory")
    args = parser.parse_args()
    want = workspace_version()
    problems: list[str] = []
    check_sources(want, problems)
    if args.dist:
        check_dist(args.dist, want, problems)
    if problems:
        print(f"versions: Cargo.toml says {want}, but:", *problems, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    where = "sources and dist/" if args.dist else "sources"
    print(f"versions: the {where} all say polyio {want}")


if __name__ == "__main__":
    main()
