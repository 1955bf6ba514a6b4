#!/usr/bin/env bash
# Build edge_maas's container images (deploy/docker/build.sh: mmdebstrap base + docker import, offline builds
# from a wheelhouse) and run the MaaS story end to end through them, every container on host networking with
# Mosquitto on a free loopback port:
#
#   broker (edge-maas/mosquitto) -> registry (keys, split + compose mlp_digits, publish both, `registry serve`)
#   -> worker (native backend) and device (profile: native backend, hold_budget_kb = 0, so a service's submodels
#   all run on workers) -> every container healthy by its image's HEALTHCHECK ->
#   1. deploy mlp_digits@1 (2 shards): the device reports it, `edge-maas infer` is answered by the device itself,
#      byte for byte the zoo's expected output;
#   2. deploy svc@1 (the same model as a one-task service): the device holds none of it, so the request's
#      submodel runs on the worker container: same bytes, and the worker's retained status counts it as served;
#   3. the worker stopped: the same request is refused (no worker to run the submodel).
# Containers (and a dockerd this script started) are stopped at exit, whatever happened.
#
# Usage: scripts/container_smoke.sh   (root; ~4 min on a fresh machine, ~2.3 min with cached bases and wheels)
#        TAG=... CACHE=... EXTRAS=... as deploy/docker/build.sh;  KEEP=1 keeps the work folder
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/docker/lib.sh
. "$REPO/deploy/docker/lib.sh"
TAG=${TAG:-local}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
T_START=$(now)
W=$(mktemp -d "${TMPDIR:-/tmp}/edge_maas_ctr.XXXXXX")
P="em-smoke-$$"  # container names
CONTAINERS=("$P-mqtt" "$P-registry" "$P-worker" "$P-device")
cleanup() {
  local rc=$?
  if [ $rc != 0 ]; then
    for c in "${CONTAINERS[@]}"; do
      docker logs --tail 15 "$c" 2>&1 | sed "s/^/[$c] /" || true
    done
  fi
  docker rm -f "${CONTAINERS[@]}" >/dev/null 2>&1 || true
  if [ "${KEEP:-0}" = 1 ]; then echo "[smoke] kept $W"; else rm -rf "$W"; fi
  docker_down
  exit $rc
}
trap cleanup EXIT
fail() { echo "[smoke] FAIL: $*" >&2; exit 1; }

docker_up
KEEP_DOCKERD=1 bash "$REPO/deploy/docker/build.sh"
T_BUILT=$(now)

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="mqtt://127.0.0.1:$PORT"
chown 10001:10001 "$W"  # the images' user writes the keys, splits and the registry here
RUN=(docker run --rm --network host -v "$W:/work")
em() { "${RUN[@]}" "edge-maas/registry:$TAG" "$@"; }
py() { "${RUN[@]}" --entrypoint /opt/edge_maas/bin/python "edge-maas/registry:$TAG" -c "$1"; }
healthy() {  # healthy NAME...: wait (60 s at most) until each container's HEALTHCHECK passed
  local c s
  for c in "$@"; do
    for _ in $(seq 1 120); do
      s=$(docker inspect -f '{{.State.Health.Status}}' "$c")
      [ "$s" = healthy ] && break
      [ "$(docker inspect -f '{{.State.Running}}' "$c")" = true ] || fail "$c exited"
      sleep 0.5
    done
    [ "$s" = healthy ] || fail "$c is $s: $(docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$c")"
    echo "[smoke] $c healthy: $(docker inspect -f '{{(index .State.Health.Log 0).Output}}' "$c" | head -1)"
  done
}
reports() {  # reports TEXT...: wait (60 s at most) until `registry status` shows smoke-dev with every TEXT
  local out t
  for _ in $(seq 1 30); do
    out=$(em registry status --broker "$URL" | grep '^smoke-dev ' || true)
    local all=1
    for t in "$@"; do [[ "$out" == *"$t"* ]] || all=0; done
    [ $all = 1 ] && { echo "[smoke] status: $out"; return 0; }
    sleep 1
  done
  fail "the device never reported $*: $out"
}
# the health checks run every 2 s here (the images say 30 s): the stack is up in seconds, not minutes
HEALTH=(--health-interval 2s --health-start-period 60s)

# -- the broker --------------------------------------------------------------------------------------------------
sed "s/^listener 1883 127.0.0.1/listener $PORT 127.0.0.1/" "$REPO/deploy/docker/mosquitto.conf" >"$W/mosquitto.conf"
docker run -d --name "$P-mqtt" --network host "${HEALTH[@]}" -e MQTT_PORT="$PORT" \
  -v "$W/mosquitto.conf:/etc/mosquitto/mosquitto.conf:ro" "edge-maas/mosquitto:$TAG" >/dev/null

# -- the registry: keys, a split and a service of the zoo's digits MLP, both published -----------------------------
em keys new --out /work/registry.key >/dev/null
MODEL=$(py "from edge_maas import zoo; print(zoo.model_path('mlp_digits'))")
case "$MODEL" in /opt/edge_maas/*/zoo_models/mlp_digits.tflite) ;; *) fail "zoo model not in the image: $MODEL" ;; esac
em split "$MODEL" --shards 2 --out /work/v1 >/dev/null
em compose "$MODEL" --name svc --out /work/svc >/dev/null
py "
import json, numpy as np
from edge_maas import zoo
x, want = zoo.expected('mlp_digits')
name = json.load(open('/work/v1/manifest.json'))['inputs'][0]['name']
np.savez('/work/x_split.npz', **{name: x[:1]})
np.save('/work/x_svc.npy', x[:1])  # a service's input is input_0 (infer's default --input-name)
np.save('/work/want.npy', want[:1])
"
out=$(em registry publish /work/v1 --root /work/reg --key /work/registry.key)
[[ "$out" == "published mlp_digits@1 "* ]] || fail "publish v1: $out"
out=$(em registry publish /work/svc --root /work/reg --key /work/registry.key)
[[ "$out" == "published svc@1 "* ]] || fail "publish svc: $out"
echo "[smoke] published mlp_digits@1 (2 shards) and svc@1 (1 submodel)"
docker run -d --name "$P-registry" --network host "${HEALTH[@]}" -v "$W:/work" "edge-maas/registry:$TAG" \
  registry serve --root /work/reg --key /work/registry.key --broker "$URL" >/dev/null

# -- a worker and a device -----------------------------------------------------------------------------------------
docker run -d --name "$P-worker" --network host "${HEALTH[@]}" -v "$W/registry.pub:/etc/edge_maas/registry.pub:ro" \
  "edge-maas/worker:$TAG" worker --name smoke-w1 --broker "$URL" --registry-key /etc/edge_maas/registry.pub \
  --cache /var/cache/edge_maas --backend native >/dev/null
cat >"$W/device.toml" <<TOML
device_id = "smoke-dev"
cache_dir = "/var/lib/edge_maas/cache"
registry_key = "/etc/edge_maas/registry.pub"
# hold none of a service: its submodels run on workers (a split model is always run here)
hold_budget_kb = 0
[runtime]
backend = "native"
backends_allowed = ["native", "remote"]
[mqtt]
broker = "$URL"
[offload]
# the first request waits for the worker to fetch and verify the submodel
deadline_ms = 10000
TOML
docker run -d --name "$P-device" --network host "${HEALTH[@]}" -v "$W/device.toml:/etc/edge_maas/device.toml:ro" \
  -v "$W/registry.pub:/etc/edge_maas/registry.pub:ro" "edge-maas/device:$TAG" >/dev/null
healthy "${CONTAINERS[@]}"
T_UP=$(now)

# -- 1. a split model, run by the device ---------------------------------------------------------------------------
deploy() { em registry deploy "$1" --device smoke-dev --root /work/reg --key /work/registry.key --broker "$URL"; }
same() {  # same FILE: the answer is byte for byte the zoo's expected output
  py "
import numpy as np
y, want = np.load('/work/$1'), np.load('/work/want.npy')
assert y.dtype == want.dtype and y.tobytes() == want.tobytes(), (y, want)
" || fail "$1 differs from the zoo's expected output"
}
[[ "$(deploy mlp_digits@1)" == *"set to mlp_digits@1"* ]] || fail "deploy mlp_digits@1"
reports "online" "mlp_digits@1" "healthy"
out=$(em infer smoke-dev --input /work/x_split.npz --output /work/y_split.npy --broker "$URL")
[[ "$out" == *"answered by smoke-dev running version 1"* ]] || fail "infer (split): $out"
same y_split.npy
echo "[smoke] infer on the device (mlp_digits@1, 2 shards run here): same bytes as the zoo's expected output"

# -- 2. a service the device does not hold: its submodel runs on the worker ----------------------------------------
[[ "$(deploy svc@1)" == *"set to svc@1"* ]] || fail "deploy svc@1"
reports "online" "svc@1" "healthy" "1 submodel(s) on workers"
out=$(em infer smoke-dev --input /work/x_svc.npy --output /work/y_svc.npy --broker "$URL" --timeout 30)
[[ "$out" == *"answered by smoke-dev running version 1"* ]] || fail "infer (offload): $out"
same y_svc.npy
served=0
for _ in $(seq 10); do  # the worker's status (every 2 s) carries the count: read it until it moves, for 20 s at most
  docker exec "$P-mqtt" mosquitto_sub -h 127.0.0.1 -p "$PORT" -t em/v1/worker/smoke-w1/status -C 1 -W 5 \
    >"$W/wstatus.json" 2>/dev/null || true
  served=$(py "import json; print(json.load(open('/work/wstatus.json')).get('served', 0))" 2>/dev/null || echo 0)
  [ "$served" -ge 1 ] && break
  sleep 2
done
[ "$served" -ge 1 ] || fail "the worker's status says it served $served requests: $(cat "$W/wstatus.json")"
echo "[smoke] offload: the device's request ran on worker smoke-w1 (its status: served $served), same bytes"

# -- 3. no worker: the device says so ------------------------------------------------------------------------------
docker stop -t 10 "$P-worker" >/dev/null
if out=$(em infer smoke-dev --input /work/x_svc.npy --broker "$URL" --timeout 30 2>&1); then
  fail "infer without a worker succeeded: $out"
fi
[[ "$out" == "edge-maas: error: "* ]] || fail "infer without a worker: $out"
echo "[smoke] worker stopped: the request is refused: ${out:0:160}"

T_END=$(now)
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^edge-maas/.*:$TAG " | sort | sed 's/^/[image] /'
echo "[time]  build $(secs "$T_START" "$T_BUILT") s, stack up and healthy $(secs "$T_BUILT" "$T_UP") s," \
     "smoke $(secs "$T_UP" "$T_END") s, total $(secs "$T_START" "$T_END") s"
echo "[smoke] ok"
