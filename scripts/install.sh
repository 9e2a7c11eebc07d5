#!/usr/bin/env bash
# Installs everything git-mirror and its tests need on a fresh Debian machine:
# git, OpenSSH (a real sshd for the transport tests), openssl (a TLS certificate for the
# HTTPS git server of the tests), nginx + fcgiwrap (the git http-backend baseline of
# bench/bench_serve.py), mmdebstrap + umoci + runc + python3-pip (scripts/build-image.sh and the
# image tests run the image with runc), chromium (the browser of the dashboard tests, driven by
# Playwright), uv, and the locked Python environment.
set -euo pipefail
cd "$(dirname "$0")/.."

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

# Put the console script on PATH, so that `git-mirror ...` and `git mirror ...` work anywhere.
if [ -w /usr/local/bin ] && [ -x .venv/bin/git-mirror ]; then
  ln -sf "$PWD/.venv/bin/git-mirror" /usr/local/bin/git-mirror
fi
