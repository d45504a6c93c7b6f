#!/usr/bin/env bash
# Checks that the `rust-version` declared in Cargo.toml is not below what the library's
# dependencies (as locked in Cargo.lock) declare they need.
#
#     bash .ci/msrv.sh            # check: fails if a dependency needs a newer Rust
#     bash .ci/msrv.sh --list     # also list every package with the Rust version it needs
#
# Only one toolchain is installed here, so the floor is computed rather than tried: the largest
# of the first release of s3-syncr's edition and the `rust-version` of every package in its
# normal dependency graph (normal and build-script edges, all target platforms, no optional
# feature; dev-dependencies excluded), as `cargo metadata` resolves it. A package that declares no `rust-version` counts
# for the first release of its edition (2018: 1.31, 2021: 1.56, 2024: 1.85), which is all that
# can be known of it without compiling. `cargo metadata` unifies features over the workspace
# (the test server is a member), so the graph may hold a few packages more than a build of the
# library alone: the check errs on the safe side.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

list=0
[[ ${1:-} == --list ]] && list=1

meta=$(mktemp)
trap 'rm -f "$meta"' EXIT
cargo metadata --format-version 1 >"$meta"

python3 - "$meta" "$list" <<'EOF'
import json, sys

meta_path, show_list = sys.argv[1], sys.argv[2] == "1"
with open(meta_path) as f:
    meta = json.load(f)

EDITION_FLOOR = {"2015": "1.0", "2018": "1.31", "2021": "1.56", "2024": "1.85"}


def version(text):
    """(major, minor, patch) of "1.88" or "1.88.0"."""
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = next(p["id"] for p in meta["packages"] if p["name"] == "s3-syncr" and p["source"] is None)
declared = packages[root]["rust_version"]
if not declared:
    sys.exit("error: Cargo.toml declares no rust-version")

seen, todo = set(), [root]
while todo:
    node = todo.pop()
    if node in seen:
        continue
    seen.add(node)
    for dep in nodes[node]["deps"]:
        if any(kind["kind"] in (None, "build") for kind in dep["dep_kinds"]):
            todo.append(dep["pkg"])

rows = []  # (needed version, name, version, why)
for node in seen:
    p = packages[node]
    if node == root:
        # s3-syncr's own need is its edition's; its rust-version is what is being checked.
        floor = EDITION_FLOOR[p["edition"]]
        rows.append((version(floor), p["name"], p["version"], f"edition {p['edition']}"))
    elif p["rust_version"]:
        rows.append((version(p["rust_version"]), p["name"], p["version"], "rust-version"))
    else:
        floor = EDITION_FLOOR.get(p["edition"], "1.0")
        rows.append((version(floor), p["name"], p["version"], f"edition {p['edition']}"))
rows.sort()

if show_list:
    for need, name, ver, why in rows:
        print(f"{'.'.join(map(str, need)):>7}  {name} {ver} ({why})")

need = rows[-1][0]
needed_by = [f"{name} {ver}" for n, name, ver, _ in rows if n == need]
floor = "{}.{}".format(*need) if need[2] == 0 else "{}.{}.{}".format(*need)
undeclared = sum(1 for node in seen if node != root and not packages[node]["rust_version"])
print(f"{len(rows)} packages in the normal dependency graph ({undeclared} without a rust-version); "
      f"they need Rust {floor} ({', '.join(needed_by)}); Cargo.toml declares {declared}")
if need > version(declared):
    sys.exit(f"error: rust-version = \"{declared}\" in Cargo.toml is below {floor}, which "
             f"{', '.join(needed_by)} need: raise it, or lock older versions of them")
if need < version(declared):
    print(f"note: rust-version could be lowered to {floor}")
print("ok: rust-version covers every dependency")
EOF
