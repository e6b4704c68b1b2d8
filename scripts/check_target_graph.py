#!/usr/bin/env python3
"""Keeps docs/DESIGN.md §9 and the imports true to Package.swift.

Fails (exit 1) when the design document's target table differs from the manifest, when a
target imports a module it does not declare (it would build only through someone else's
dependency), or declares one it never imports. Run by `make test`.
"""
from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Modules of the toolchain, never declared in a manifest.
TOOLCHAIN = {"Foundation", "FoundationNetworking", "FoundationEssentials", "Glibc", "Dispatch",
             "Synchronization", "XCTest", "Testing", "_Concurrency", "Darwin", "FoundationXML"}
IMPORT = re.compile(r"^(?:@testable\s+|@_implementationOnly\s+|public\s+)?import\s+(?:(?:struct|class|enum|protocol|func)\s+)?(\w+)", re.M)


def manifest() -> dict[str, tuple[str, list[str], str]]:
    """target name → (type, declared dependency names, sources path)."""
    dump = subprocess.run(["swift", "package", "dump-package"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    out: dict[str, tuple[str, list[str], str]] = {}
    for target in json.loads(dump)["targets"]:
        deps = [next(iter(d.values()))[0] for d in target["dependencies"]]
        default = ("Tests/" if target["type"] == "test" else "Sources/") + target["name"]
        out[target["name"]] = (target["type"], deps, target.get("path") or default)
    return out


def design_table() -> dict[str, list[str]]:
    """The `| target | declared dependencies |` rows of docs/DESIGN.md §9."""
    text = (ROOT / "docs/DESIGN.md").read_text(encoding="utf-8")
    section = text[text.index("## 9."):text.index("## 10.")]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("target", "---") or not line.startswith("|"):
            continue
        rows[cells[0]] = [] if cells[1] == "—" else [d.strip() for d in cells[1].split(",")]
    return rows


def imports(path: pathlib.Path) -> set[str]:
    found: set[str] = set()
    for file in path.rglob("*.swift"):
        found.update(IMPORT.findall(file.read_text(encoding="utf-8")))
    return found


def main() -> int:
    targets = manifest()
    problems: list[str] = []
    table = design_table()
    for name, (kind, deps, _) in targets.items():
        if kind in ("regular", "executable") and not name.startswith("C"):
            if name not in table:
                problems.append(f"docs/DESIGN.md §9: no row for target {name} (Package.swift: {', '.join(deps) or '—'})")
            elif sorted(table[name]) != sorted(deps):
                problems.append(f"docs/DESIGN.md §9: {name} → {', '.join(table[name]) or '—'}, Package.swift says {', '.join(deps) or '—'}")
    for name in table:
        if name not in targets:
            problems.append(f"docs/DESIGN.md §9: row for {name}, which Package.swift does not have")
    for name, (kind, deps, path) in targets.items():
        if kind == "system" or not (ROOT / path).is_dir():
            continue
        used = imports(ROOT / path) - TOOLCHAIN - {name}
        for module in sorted(used - set(deps)):
            problems.append(f"{name} imports {module} without declaring it in Package.swift")
        for module in sorted(set(deps) - used):
            problems.append(f"{name} declares {module} in Package.swift but never imports it")
    for p in problems:
        print(p)
    print(f"target graph: {len(targets)} targets, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
