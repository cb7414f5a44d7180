#!/usr/bin/env python3
"""The layer table of docs/architecture.md, checked: every `#include "folder/..."` in src/ must be
allowed by the table, and every file of src/<folder>/ declares its code in namespace
odin::<folder> (it may forward-declare in the namespace of a folder it may include). Prints each
offending line as file:line and exits 1.

  check_layers.py            check (scripts/test.sh runs it before building)
  check_layers.py --matrix   print how many includes each folder makes of each other folder

The CMake build enforces the same table (one library per folder, each compiled with only the
folders it may include on its include path); this check names the line, where a compiler error
would only say a header was not found.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

# folder -> the folders it may include (besides itself). Keep in step with docs/architecture.md
# and CMakeLists.txt (ODIN_LAYERS).
# ws/ (the RFC 6455 codec, which includes nothing) and core/ (the vocabulary) are open to all.
ALLOWED = {
    "ws": set(),
    "core": {"ws"},
    "auth": {"core", "ws"},
    "pubsub": {"core", "ws"},
    "ops": {"core", "ws"},
    "guard": {"core", "ws", "ops"},
    "net": {"core", "ws", "guard", "ops"},
    "http": {"net", "core", "ws", "guard", "auth", "ops"},
    "session": {"net", "pubsub", "core", "ws", "auth", "ops"},
    "hub": {"session", "net", "pubsub", "core", "ws", "ops"},
    "broker": {"hub", "core", "ws", "guard", "ops"},
    "app": {"ws", "core", "auth", "pubsub", "ops", "guard", "net", "http", "session", "hub", "broker"},
}

# Includes against the table that are still being taken apart, each with why it is still there.
# The check fails on an entry that no longer occurs, so this list only shrinks.
PENDING = {}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/')


def includes():
    for path in sorted(SRC.rglob("*")):
        if path.suffix not in (".hpp", ".cpp"):
            continue
        rel = path.relative_to(SRC)
        if len(rel.parts) < 2:
            yield rel, 0, None, None  # a file outside every folder
            continue
        folder = rel.parts[0]
        for number, line in enumerate(path.read_text().splitlines(), 1):
            m = INCLUDE.match(line)
            if m and m.group(1) in ALLOWED:
                yield rel, number, folder, m.group(1)


NAMESPACE = re.compile(r"^\s*namespace\s+(odin(?:::\w+)*)\s*\{")


def namespace_problems():
    """One namespace per folder: src/F/x declares odin::F (or odin::F::inner); it may open
    odin::G of a folder G it may include, to forward-declare a type."""
    for path in sorted(SRC.rglob("*")):
        if path.suffix not in (".hpp", ".cpp"):
            continue
        rel = path.relative_to(SRC)
        if len(rel.parts) < 2:
            continue
        folder = rel.parts[0]
        for number, line in enumerate(path.read_text().splitlines(), 1):
            m = NAMESPACE.match(line)
            if not m:
                continue
            parts = m.group(1).split("::")
            if len(parts) >= 2 and (parts[1] == folder or parts[1] in ALLOWED[folder]):
                continue
            yield (f"src/{rel}:{number}: {m.group(1)} in {folder}/ (its code belongs in "
                   f"odin::{folder})")


def main():
    matrix = {}
    problems = []
    seen_pending = set()
    for rel, number, folder, target in includes():
        if folder is None:
            problems.append(f"src/{rel}: every source file belongs in a folder of the layer table")
            continue
        matrix.setdefault(folder, {}).setdefault(target, 0)
        matrix[folder][target] += 1
        if target == folder or target in ALLOWED[folder]:
            continue
        if (folder, target) in PENDING:
            seen_pending.add((folder, target))
            continue
        allowed = ", ".join(sorted(ALLOWED[folder])) or "nothing"
        problems.append(f"src/{rel}:{number}: {folder}/ may not include {target}/ "
                        f"({folder}/ may include: {allowed})")
    problems.extend(namespace_problems())
    for edge in sorted(set(PENDING) - seen_pending):
        problems.append(f"tools/layers/check_layers.py: PENDING lists {edge[0]} -> {edge[1]}, "
                        "which no longer occurs: remove the entry")
    if "--matrix" in sys.argv:
        folders = list(ALLOWED)
        print("includes of (columns) by (rows); * = against the table")
        print("         " + "".join(f"{f:>8}" for f in folders))
        for row in folders:
            cells = []
            for col in folders:
                n = matrix.get(row, {}).get(col, 0)
                bad = n and col != row and col not in ALLOWED[row]
                cells.append(f"{(str(n) + ('*' if bad else '')) if n else '.':>8}")
            print(f"{row:>9}" + "".join(cells))
    for p in problems:
        print(p)
    if problems:
        print(f"layer check: {len(problems)} problem(s)")
        return 1
    print("layer check: every include follows the layer table, every folder has its namespace")
    return 0


if __name__ == "__main__":
    sys.exit(main())
