#!/usr/bin/env bash
# Copies the checkout's sources as git sees them (tracked, and untracked but not ignored: what would be committed)
# into DEST, so that a build or a second venv never reads or rewrites the working tree's build outputs (kernels/*.c,
# *.so, build/, *.egg-info, the generated schema bindings).  Outside git: the tree less those outputs.
# Usage: scripts/copy_tree.sh DEST
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DEST=$1
mkdir -p "$DEST"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # --ignore-failed-read: a tracked file deleted in the working tree is simply not part of the copy
  (cd "$REPO" && git ls-files -co --exclude-standard -z | tar --null -T - --ignore-failed-read -cf -) \
    | tar -xf - -C "$DEST"
else
  tar -C "$REPO" --exclude=.venv --exclude=build --exclude=dist --exclude='*.egg-info' --exclude='*.so' \
    --exclude=_schema_generated.py --exclude=node_modules -cf - . | tar -xf - -C "$DEST"
fi
