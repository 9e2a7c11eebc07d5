#!/usr/bin/env bash
# A smoke test of a kubernetes node on a real cluster (kind, k3d, or any other), for operators:
#
#   bash scripts/cluster-smoke.sh --config git-mirror.yaml --node D601 [--lane v03] \
#       [--follower ID [--merge-commit SHA]] [--load kind:CLUSTER|k3d:CLUSTER|none] \
#       [--image-archive out/git-mirror-oci.tar]
#
# Steps, each checked (exit 1 at the first that fails, naming it):
#   1. load the image archive into the cluster (kind load image-archive / k3d image import);
#   2. apply --confirm, then apply --confirm again: the second must change nothing;
#   3. sync --confirm --wait; 4. flush --confirm --wait; 5. status (pendingFlush false);
#   6. with --follower: follower trigger --confirm --wait (the run must succeed), then closeout
#      of --merge-commit (default: the commit the run built), retried while Argo CD syncs.
#
# The node's kubeconfig context and namespace come from the config, as for every command.
# GIT_MIRROR names the command to run (default: git-mirror); SMOKE_CLOSEOUT_TRIES and
# SMOKE_CLOSEOUT_INTERVAL bound the closeout retries (default 30 x 10 s).
set -euo pipefail

config="" node="" lane="" follower="" merge="" load="none" archive=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --node) node=$2; shift 2 ;;
    --lane) lane=$2; shift 2 ;;
    --follower) follower=$2; shift 2 ;;
    --merge-commit) merge=$2; shift 2 ;;
    --load) load=$2; shift 2 ;;
    --image-archive) archive=$2; shift 2 ;;
    *) echo "cluster-smoke: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$config" ] || [ -z "$node" ]; then
  echo "usage: bash scripts/cluster-smoke.sh --config FILE --node NODE [--lane LANE] [--follower ID [--merge-commit SHA]] [--load kind:CLUSTER|k3d:CLUSTER|none] [--image-archive PATH]" >&2
  exit 2
fi
read -r -a GM <<<"${GIT_MIRROR:-git-mirror}"
tries=${SMOKE_CLOSEOUT_TRIES:-30}
interval=${SMOKE_CLOSEOUT_INTERVAL:-10}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

gm() {  # gm STEP ARGS...: run git-mirror --json, keep its result in $out/STEP.json
  local step=$1
  shift
  local code=0
  "${GM[@]}" --config "$config" --node "$node" --json "$@" >"$out/$step.json" 2>"$out/$step.err" || code=$?
  echo "$code" >"$out/$step.code"
}

check() {  # check STEP PYTHON-EXPRESSION-ON-d: the step's exit code is 0 and the expression holds
  local step=$1 expr=$2
  if ! python3 - "$out/$step.json" "$(cat "$out/$step.code")" "$expr" <<'EOF'
import json, sys
path, code, expr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    d = json.load(open(path))
except ValueError:
    d = None
ok = code == 0 and isinstance(d, dict) and d.get("ok") is True and bool(eval(expr, {"d": d}))
if not ok:
    err = (d or {}).get("error") if isinstance(d, dict) else None
    print(f"  exit {code}; expected {expr}; error: {json.dumps(err)}", file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
  then
    echo "cluster-smoke: FAILED at $step (result: $out/$step.json)" >&2
    tail -n 20 "$out/$step.err" >&2 || true
    trap - EXIT
    exit 1
  fi
  echo "cluster-smoke: ok   $step"
}

field() {  # field STEP PYTHON-EXPRESSION-ON-d: print a value of a step's result
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' \
    "$out/$1.json" "$2"
}

case "$load" in
  none) echo "cluster-smoke: skip image load (--load none)" ;;
  kind:*|k3d:*)
    if [ -z "$archive" ]; then echo "cluster-smoke: --load needs --image-archive" >&2; exit 2; fi
    if [ "${load%%:*}" = kind ]; then
      kind load image-archive "$archive" --name "${load#kind:}"
    else
      k3d image import "$archive" -c "${load#k3d:}"
    fi
    echo "cluster-smoke: ok   load-image" ;;
  *) echo "cluster-smoke: --load is kind:CLUSTER, k3d:CLUSTER or none" >&2; exit 2 ;;
esac

lane_args=()
[ -n "$lane" ] && lane_args=(--lane "$lane")

gm apply apply --confirm
check apply 'd["dryRun"] is False'
gm apply-again apply --confirm
check apply-again 'd["changed"] is False'
gm sync sync --confirm --wait
check sync 'd["job"]["status"] == "succeeded"'
gm flush "${lane_args[@]}" flush --confirm --wait
check flush 'd["job"]["status"] == "succeeded"'
gm status status
check status 'd["pendingFlush"] is False and d["repositories"]'
echo "cluster-smoke:      status read via $(field status 'd.get("via")')"

if [ -n "$follower" ]; then
  gm trigger follower trigger --follower "$follower" --confirm --wait
  check trigger 'd["run"]["status"] == "succeeded" and d["pendingFlush"] is False'
  run=$(field trigger 'd["run"]["name"]')
  [ -n "$merge" ] || merge=$(field trigger 'd["commit"]')
  for i in $(seq 1 "$tries"); do
    gm closeout closeout --follower "$follower" --merge-commit "$merge" --pipeline-run "$run"
    if [ "$(cat "$out/closeout.code")" = 0 ]; then break; fi
    [ "$i" = "$tries" ] || sleep "$interval"
  done
  check closeout 'd["tipContainsMergeCommit"] and d["runContainsMergeCommit"] and d["deployedContainsRun"] and d["githubInSync"] and all(c["ok"] for c in d["checks"])'
fi
echo "cluster-smoke: all steps passed on node $node"
