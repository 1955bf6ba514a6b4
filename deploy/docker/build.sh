#!/usr/bin/env bash
# Build edge_maas's container images offline, from Debian packages and a wheelhouse:
#
#   1. base root file systems by mmdebstrap (bookworm, variant essential, no recommends, no docs):
#      edge-maas/base-python:bookworm (python3, libgomp1, libstdc++6, ca-certificates) and edge-maas/base-mosquitto:bookworm
#      (mosquitto, mosquitto-clients), `docker import`ed.  Their tarballs are cached in $CACHE and imported
#      again when the images are gone; REBUILD_BASE=1 makes them afresh.
#   2. the wheelhouse: edge_maas's wheel built from the tree (tracked + untracked-not-ignored files, like
#      scripts/wheel_smoke.sh; reused while those files are unchanged), its dependencies' wheels (pip wheel,
#      from PyPI or pip's cache) minus those no daemon imports and what only they need (DROP: scikit-learn with
#      scipy, for `head train` and the demo's digits data, ~190 MB; amqtt, the demo's embedded broker, with its
#      CLI stack), and pip's own wheel to install them with.  The Dockerfile's builder imports every daemon's
#      modules, so a dropped package that is needed after all fails the build.
#   3. docker build (no network): edge-maas/registry, edge-maas/worker, edge-maas/device (targets of
#      deploy/docker/Dockerfile) and edge-maas/mosquitto (Dockerfile.mosquitto), tagged $TAG.
#
# Usage: deploy/docker/build.sh                 TAG=local, CACHE=/var/cache/edge_maas-docker
#        EXTRAS=litert deploy/docker/build.sh   the interpreter in the worker and device images too (the
#                                               registry image always has it: split/compose need it), +~60 MB
# Needs root (or a docker group member with mmdebstrap): installs docker.io and mmdebstrap from Debian when
# missing and starts dockerd when none answers (stopped again at the end unless KEEP_DOCKERD=1).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=deploy/docker/lib.sh
. "$HERE/lib.sh"
TAG=${TAG:-local}
CACHE=${CACHE:-/var/cache/edge_maas-docker}
EXTRAS=${EXTRAS:-}
DROP=${DROP:-scikit-learn amqtt}
PY=${PYTHON:-python3}
SUITE=bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BASE_REV=2  # bump when the package lists below change: the cached tarballs are then made again

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
T=$(mktemp -d "${TMPDIR:-/tmp}/edge_maas_docker.XXXXXX")
cleanup() { rm -rf "$T"; [ "${KEEP_DOCKERD:-0}" = 1 ] || docker_down; }
trap cleanup EXIT
mkdir -p "$CACHE"
docker_up

# -- 1. base images -----------------------------------------------------------------------------------------------
base() {  # base NAME PACKAGES: image edge-maas/base-NAME:bookworm from $CACHE/base-NAME-rREV.tar
  local name=$1 pkgs=$2 image="edge-maas/base-$1:$SUITE" tarball="$CACHE/base-$1-r$BASE_REV.tar" t
  if [ "${REBUILD_BASE:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1 \
     && [ "$(docker image inspect -f '{{index .Config.Labels "edge_maas.base"}}' "$image")" = "r$BASE_REV" ]; then
    return 0
  fi
  if [ "${REBUILD_BASE:-0}" = 1 ] || [ ! -s "$tarball" ]; then
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    t=$(now)
    echo "[base] mmdebstrap $SUITE + $pkgs"
    # essential + the packages, nothing recommended; merged /usr set up by the hook (else usrmerge drags perl
    # in); no docs, man pages or translations (copyrights stay)
    mmdebstrap --quiet --variant=essential --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --aptopt='APT::Install-Recommends "false"' --include="$pkgs" \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
      "$SUITE" "$tarball.part.tar" "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
      "deb $SECURITY $SUITE-security main" >"$T/mmdebstrap-$name.log" 2>&1 \
      || { tail -30 "$T/mmdebstrap-$name.log"; die "mmdebstrap $SUITE + $pkgs failed"; }
    mv "$tarball.part.tar" "$tarball"  # the .tar ending tells mmdebstrap the format
    echo "[base] $tarball: $(du -h "$tarball" | cut -f1) in $(secs "$t" "$(now)") s"
  fi
  docker import --change "LABEL edge_maas.base=r$BASE_REV" --change 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
  echo "[base] imported $image"
}
t0=$(now)
base python "python3,libgomp1,libstdc++6,ca-certificates"
base mosquitto "mosquitto,mosquitto-clients"
T_BASE=$(secs "$t0" "$(now)")

# -- 2. wheelhouse ------------------------------------------------------------------------------------------------
t0=$(now)
mkdir -p "$T/src" "$T/ctx/wheelhouse" "$CACHE/wheels"
bash "$REPO/scripts/copy_tree.sh" "$T/src"
# the tree's content hash names the wheel's cache folder: an unchanged tree reuses its wheel
TREE=$(cd "$T/src" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
OWN="$CACHE/edge_maas-$TREE"
if ! ls "$OWN"/edge_maas-*.whl >/dev/null 2>&1; then
  echo "[wheel] building edge_maas from the tree ($TREE)"
  rm -rf "$CACHE"/edge_maas-*  # one tree's wheel at a time
  "$PY" -m pip wheel -q --no-deps -w "$OWN.part" "$T/src" >"$T/wheel.log" 2>&1 || { tail -30 "$T/wheel.log"; exit 1; }
  mv "$OWN.part" "$OWN"
fi
WHEEL=$(ls "$OWN"/edge_maas-*.whl)
# the dependencies as wheels (binary only: the image has no compiler), pip's cache makes a rerun quick.  `pip
# download`, not `pip wheel`: pip wheel leaves out wheels it takes from a local file index (seen with
# python-json-logger), and the resolution below then misses them
"$PY" -m pip download -q --only-binary=:all: -d "$CACHE/wheels" "$WHEEL[litert${EXTRAS:+,$EXTRAS}]" pip \
  >"$T/deps.log" 2>&1 || { tail -30 "$T/deps.log"; exit 1; }
rm -f "$CACHE"/wheels/edge_maas-*.whl  # pip download copies the wheel itself too: only $WHEEL is edge_maas
# the set this wheel needs: pip's resolution report, from the local folder only
"$PY" -m pip install -q --dry-run --ignore-installed --no-index --find-links "$CACHE/wheels" --report "$T/report.json" \
  "$WHEEL[litert${EXTRAS:+,$EXTRAS}]" >/dev/null
closure() {  # closure EXTRAS: the wheel files edge_maas[EXTRAS] needs
"$PY" - "$T/report.json" "$DROP" "$1" <<'PYEOF'
# what edge_maas (with EXTRAS) needs, walked from its requirements, not entering the DROP roots: what only they
# need (amqtt's CLI stack, scikit-learn's scipy) is left out with them
import json, sys
from urllib.parse import unquote, urlparse
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name as canon
items = {canon(i["metadata"]["name"]): i for i in json.load(open(sys.argv[1]))["install"]}
drop = {canon(d) for d in sys.argv[2].split()}
todo, seen = [("edge-maas", frozenset(e for e in sys.argv[3].split(",") if e))], set()
while todo:
    name, extras = todo.pop()
    if (name, extras) in seen or name in drop:
        continue
    seen.add((name, extras))
    for r in map(Requirement, items[name]["metadata"].get("requires_dist", [])):
        if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in extras | {""}):
            todo.append((canon(r.name), frozenset(r.extras)))
for name in sorted({n for n, _ in seen} - {"edge-maas"}):
    print(unquote(urlparse(items[name]["download_info"]["url"]).path))
PYEOF
}
closure "$EXTRAS" >"$T/core"            # device, worker
closure "litert,$EXTRAS" >"$T/publish"  # registry: split and compose need the interpreter
cp "$WHEEL" $(cat "$T/core" "$T/publish" | sort -u) "$CACHE"/wheels/pip-*.whl "$T/ctx/wheelhouse/"
for set in core publish; do
  { basename "$WHEEL"; xargs -n1 basename <"$T/$set"; } >"$T/ctx/wheelhouse/$set.txt"
done
cp "$HERE/Dockerfile" "$HERE/healthcheck.py" "$HERE/install_venv.sh" "$T/ctx/"
T_WHEELS=$(secs "$t0" "$(now)")
echo "[wheel] wheelhouse: $(ls "$T/ctx/wheelhouse" | wc -l) wheels, $(du -sh "$T/ctx/wheelhouse" | cut -f1)" \
     "(left out: $DROP)"

# -- 3. images ----------------------------------------------------------------------------------------------------
t0=$(now)
for role in registry worker device; do
  docker build --network none --target "$role" -t "edge-maas/$role:$TAG" "$T/ctx" >"$T/build-$role.log" 2>&1 \
    || { tail -30 "$T/build-$role.log"; die "docker build --target $role failed"; }
done
mkdir -p "$T/mq" && cp "$HERE/Dockerfile.mosquitto" "$HERE/mosquitto.conf" "$T/mq/"
docker build --network none -f "$T/mq/Dockerfile.mosquitto" -t "edge-maas/mosquitto:$TAG" "$T/mq" \
  >"$T/build-mosquitto.log" 2>&1 || { tail -30 "$T/build-mosquitto.log"; die "docker build (mosquitto) failed"; }
T_IMAGES=$(secs "$t0" "$(now)")
echo "[time] base images $T_BASE s, wheelhouse $T_WHEELS s, docker build $T_IMAGES s"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^edge-maas/.*:($TAG|$SUITE) " | sort \
  | sed 's/^/[image] /'
