#!/usr/bin/env bash
# Builds the image twice from the same commit and checks that the two archives are the same
# bytes (docs/kubernetes.md, "The container image"); prints the digest, size and build time of
# each build.
#
#   bash scripts/image-repro.sh OUTDIR    ->  OUTDIR/first/git-mirror-oci.tar (kept), exit 1 if they differ
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: bash scripts/image-repro.sh OUTDIR" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
mkdir -p "$1"
out=$(cd "$1" && pwd)
rm -rf "$out/first" "$out/second"
bash scripts/build-image.sh "$out/first" >"$out/first.json"
bash scripts/build-image.sh "$out/second" >"$out/second.json"
cat "$out/first.json" "$out/second.json"
if cmp -s "$out/first/git-mirror-oci.tar" "$out/second/git-mirror-oci.tar"; then
  echo "image-repro: two builds, same bytes: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest"])' "$out/first.json")" >&2
  rm -rf "$out/second"
else
  echo "image-repro: the two builds differ (see $out/first and $out/second)" >&2
  exit 1
fi
