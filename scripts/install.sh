#!/usr/bin/env bash
# Sets up this clone on a fresh Debian machine:
#
#   bash scripts/install.sh                 # the machine's packages, uv, and this clone's .venv
#   bash scripts/install.sh --link-global   # the same, then /usr/local/bin/git-mirror -> this clone
#
# What it changes outside the clone is the machine's set-up, nothing else: missing Debian
# packages (apt-get) and uv (pip) when they are not there yet. The packages: git, OpenSSH (a real
# sshd for the transport tests), openssl (a TLS certificate for the HTTPS git server of the
# tests), nginx + fcgiwrap (the git http-backend baseline of bench/bench_serve.py), mmdebstrap +
# umoci + runc + python3-pip (scripts/build-image.sh and the image tests run the image with
# runc), chromium (the browser of the dashboard tests, driven by Playwright). Inside the clone it
# writes the locked Python environment (.venv), whose `git-mirror` runs this clone's code: run it
# as `uv run git-mirror ...` or `.venv/bin/git-mirror ...`.
#
# Only with --link-global does it put the console script on PATH for every shell
# (`git-mirror ...` and `git mirror ...` anywhere), by linking /usr/local/bin/git-mirror to this
# clone's .venv/bin/git-mirror; that link replaces one another clone made.
set -euo pipefail
cd "$(dirname "$0")/.."

link_global=false
for arg in "$@"; do
  case "$arg" in
    --link-global) link_global=true ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (known: --link-global)" >&2; exit 2 ;;
  esac
done

APT_PACKAGES=(git openssh-server openssh-client openssl nginx fcgiwrap mmdebstrap umoci runc python3-pip
              chromium)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet uv 2>/dev/null || python3 -m pip install --quiet --user uv
  export PATH="$HOME/.local/bin:$PATH"
fi
uv sync --frozen --quiet

if [ "$link_global" = true ]; then
  if [ ! -w /usr/local/bin ]; then
    echo "install.sh: --link-global needs write access to /usr/local/bin (run as root)" >&2
    exit 1
  fi
  ln -sf "$PWD/.venv/bin/git-mirror" /usr/local/bin/git-mirror
  echo "linked /usr/local/bin/git-mirror -> $PWD/.venv/bin/git-mirror"
fi
