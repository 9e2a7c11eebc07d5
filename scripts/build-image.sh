#!/usr/bin/env bash
# Builds the git-mirror container image on a Debian machine, with no container registry:
#
#   bash scripts/build-image.sh OUTDIR      ->  OUTDIR/git-mirror-oci.tar  (tag git-mirror:<version>)
#
# - the root filesystem comes from Debian packages (mmdebstrap, suite $GIT_MIRROR_IMAGE_SUITE,
#   default bookworm): python3, git, openssh-client, ca-certificates; no docs, man pages or
#   locales, no pip, no apt;
# - the project's wheel (uv build) and its locked run-time wheels (uv export --no-dev, every one
#   hash-checked by pip download and again by pip install --require-hashes) are installed into
#   /usr/lib/python3/dist-packages of the rootfs, offline; bytecode is compiled inside the rootfs
#   with --invalidation-mode unchecked-hash (no timestamps);
# - uid/gid 10001 `git-mirror` has a passwd entry (OpenSSH refuses a uid without one);
# - umoci turns the rootfs tar into an OCI image: entrypoint `git-mirror`, user 10001, and the
#   archive is written with sorted names and fixed times.
#
# Reproducible: every time stamp is SOURCE_DATE_EPOCH (default: the commit time of HEAD), so the
# same commit built twice against the same Debian archive gives the same bytes. The script
# prints the image's digest, size and build time; OUTDIR/git-mirror-oci.json holds them too.
# Needs root (mmdebstrap's root mode, chroot), mmdebstrap, umoci, python3-pip and uv.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: bash scripts/build-image.sh OUTDIR" >&2
  exit 2
fi
started=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
export PATH="$HOME/.local/bin:$PATH" PIP_ROOT_USER_ACTION=ignore
for tool in mmdebstrap umoci uv; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is missing (bash scripts/install.sh installs it)" >&2; exit 1; }
done
# The machine's own python3 and pip (Debian's python3-pip), not a virtualenv's that lacks pip.
PY=${GIT_MIRROR_IMAGE_HOST_PYTHON:-/usr/bin/python3}
"$PY" -m pip --version >/dev/null 2>&1 || { echo "build-image: $PY -m pip is missing (apt-get install python3-pip)" >&2; exit 1; }

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct)
fi
export SOURCE_DATE_EPOCH
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
VERSION=$("$PY" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$ROOT/pyproject.toml")
REVISION=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
SUITE=${GIT_MIRROR_IMAGE_SUITE:-bookworm}
PYVER=${GIT_MIRROR_IMAGE_PYTHON:-3.11}   # the suite's python3
DEB_ARCH=$(dpkg --print-architecture)
case "$DEB_ARCH" in
  amd64) ARCH=x86_64; OCI_ARCH=amd64 ;;
  arm64) ARCH=aarch64; OCI_ARCH=arm64 ;;
  *) echo "build-image: unsupported architecture $DEB_ARCH" >&2; exit 1 ;;
esac
TAG="git-mirror:$VERSION"
UID_GM=10001
SITE=/usr/lib/python3/dist-packages

# A fixed work path: pip and the tar record paths, and two builds must record the same ones.
WORK="$OUT/.build"
rm -rf "$WORK"
mkdir -p "$WORK/dist" "$WORK/wheels"
trap 'rm -rf "$WORK"' EXIT
ROOTFS="$WORK/rootfs"

echo "build-image: $TAG from $REVISION (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, $SUITE/$DEB_ARCH)" >&2

# 1. The wheels: the project's, and its locked run-time dependencies, each checked by hash.
(cd "$ROOT" && uv build --quiet --wheel --out-dir "$WORK/dist")
(cd "$ROOT" && uv export --quiet --frozen --no-dev --no-emit-project --format requirements-txt \
  -o "$WORK/requirements.txt")
platforms=()
for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_${ARCH}"); done
platforms+=(--platform "manylinux2014_${ARCH}" --platform "linux_${ARCH}")
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
  --only-binary=:all: --implementation cp --python-version "$PYVER" \
  --abi "cp${PYVER/./}" --abi abi3 --abi none "${platforms[@]}" \
  -r "$WORK/requirements.txt" -d "$WORK/wheels"

# 2. The root filesystem from Debian packages.
mmdebstrap --quiet --variant=essential --architectures="$DEB_ARCH" \
  --include=python3,git,openssh-client,ca-certificates \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --dpkgopt='path-exclude=/usr/share/gitweb/*' \
  "$SUITE" "$ROOTFS"

# 3. git-mirror and its wheels into the rootfs, offline; our own console script.
"$PY" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --no-compile \
  --require-hashes --find-links "$WORK/wheels" --target "$ROOTFS$SITE" -r "$WORK/requirements.txt"
"$PY" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --no-compile \
  --upgrade --target "$ROOTFS$SITE" "$WORK"/dist/*.whl
rm -rf "$ROOTFS$SITE/bin"
# direct_url.json records where the wheel was (this build's OUTDIR): not part of the image.
for f in "$ROOTFS$SITE"/*.dist-info/direct_url.json; do
  [ -e "$f" ] || continue
  rm "$f"
  sed -i '/\/direct_url.json,/d' "$(dirname "$f")/RECORD"
done
cat >"$ROOTFS/usr/local/bin/git-mirror" <<'EOF'
#!/usr/bin/python3 -s
import sys

from git_mirror.cli.main import main

sys.exit(main())
EOF
chmod 0755 "$ROOTFS/usr/local/bin/git-mirror"

# 4. The user the pods run as, with a passwd entry; the cache's default home.
echo "git-mirror:x:$UID_GM:$UID_GM:git-mirror:/var/lib/git-mirror:/usr/sbin/nologin" >>"$ROOTFS/etc/passwd"
echo "git-mirror:x:$UID_GM:" >>"$ROOTFS/etc/group"
echo "git-mirror:!:$(( SOURCE_DATE_EPOCH / 86400 ))::::::" >>"$ROOTFS/etc/shadow"
install -d -m 0750 -o "$UID_GM" -g "$UID_GM" "$ROOTFS/var/lib/git-mirror"
chmod 1777 "$ROOTFS/tmp"

# 5. Bytecode without time stamps, compiled by the image's own python; nothing else that varies.
find "$ROOTFS/usr" -name __pycache__ -type d -prune -exec rm -rf {} +
chroot "$ROOTFS" env -i PATH=/usr/bin:/bin PYTHONHASHSEED=0 SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" \
  python3 -m compileall -q -j 1 --invalidation-mode unchecked-hash \
  "/usr/lib/python$PYVER" "$SITE" >/dev/null
rm -rf "$ROOTFS"/var/cache/* "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/* \
  "$ROOTFS"/usr/share/doc/*/changelog* "$ROOTFS/etc/machine-id" "$ROOTFS/etc/ssh/ssh_host_"*
: >"$ROOTFS/etc/machine-id"
# dpkg's own logs and backups record the build's clock.
rm -f "$ROOTFS"/var/lib/dpkg/*-old

tar_fixed() {  # tar_fixed DIR OUTFILE: a tar whose bytes depend only on DIR's content
  tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --numeric-owner --format=pax \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$1" -cf "$2" .
}
tar_fixed "$ROOTFS" "$WORK/rootfs.tar"
rm -rf "$ROOTFS"

# 6. The OCI image: one layer, the config, the tag.
LAYOUT="$WORK/oci"
umoci init --layout "$LAYOUT"
umoci new --image "$LAYOUT:$VERSION"
umoci raw add-layer --image "$LAYOUT:$VERSION" --history.created "$CREATED" \
  --history.created_by "scripts/build-image.sh ($SUITE)" "$WORK/rootfs.tar"
umoci config --image "$LAYOUT:$VERSION" --no-history --created "$CREATED" \
  --author "git-mirror" --architecture "$OCI_ARCH" --os linux \
  --config.user "$UID_GM:$UID_GM" --config.entrypoint git-mirror \
  --config.workingdir /var/lib/git-mirror \
  --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.env HOME=/tmp \
  --config.env PYTHONDONTWRITEBYTECODE=1 --config.env LANG=C.UTF-8 \
  --config.label "org.opencontainers.image.title=git-mirror" \
  --config.label "org.opencontainers.image.version=$VERSION" \
  --config.label "org.opencontainers.image.revision=$REVISION" \
  --config.label "org.opencontainers.image.created=$CREATED"
umoci gc --layout "$LAYOUT"
# The archive's tag is git-mirror:<version> (what skopeo, podman and ctr import read).
"$PY" - "$LAYOUT/index.json" "$TAG" <<'EOF'
import json, sys
path, tag = sys.argv[1], sys.argv[2]
index = json.load(open(path))
for m in index["manifests"]:
    m.setdefault("annotations", {})["org.opencontainers.image.ref.name"] = tag
    m["annotations"]["io.containerd.image.name"] = "docker.io/library/" + tag
json.dump(index, open(path, "w"), sort_keys=True, separators=(",", ":"))
EOF
find "$LAYOUT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
tar_fixed "$LAYOUT" "$OUT/git-mirror-oci.tar.new"
mv "$OUT/git-mirror-oci.tar.new" "$OUT/git-mirror-oci.tar"
# The rootfs tar, for a Containerfile build (FROM scratch + ADD): docker, podman, buildah.
mv "$WORK/rootfs.tar" "$OUT/git-mirror-rootfs.tar"

DIGEST=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$LAYOUT/index.json")
SIZE=$(stat -c %s "$OUT/git-mirror-oci.tar")
SECONDS_TAKEN=$(( $(date +%s) - started ))
sha=$(sha256sum "$OUT/git-mirror-oci.tar" | cut -d' ' -f1)
printf '{"tag": "%s", "digest": "%s", "archive": "%s", "archiveSha256": "sha256:%s", "sizeBytes": %s, "buildSeconds": %s, "sourceDateEpoch": %s}\n' \
  "$TAG" "$DIGEST" "$OUT/git-mirror-oci.tar" "$sha" "$SIZE" "$SECONDS_TAKEN" "$SOURCE_DATE_EPOCH" \
  | tee "$OUT/git-mirror-oci.json"
