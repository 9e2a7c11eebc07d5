"""The commented starter config that ``git-mirror init`` writes."""

from __future__ import annotations

from pathlib import Path

from git_mirror.errors import UsageError

STARTER = """\
# git-mirror config: the single authority for the mirror (see `git-mirror schema`).
# Check it with `git-mirror validate`; converge with `git-mirror apply --confirm`.
version: 1

# Where the bare mirrors live. Default: ./.git-mirror beside this file.
# cache: /var/lib/git-mirror

# How many repositories sync, flush, apply, status and serve work on at once (--jobs N
# overrides it for one run). Default: 8.
# jobs: 8

snapshots:
  namespace: git-mirror           # snapshot refs: refs/<namespace>/snapshots/<group>/<branch>/<commit>
  retention: {keepLast: 50, maxAgeDays: 30}   # used only by `git-mirror snapshots prune`

# Proxies that transports may name. mode: none | http-connect (a CONNECT tunnel only).
proxies:
  corp: {mode: http-connect, url: http://127.0.0.1:3128}

# `git-mirror serve`: smart HTTP for CI. Secrets are references, never inline.
server:
  listen: 127.0.0.1:8080
  tokens: {}
  #   ci: {secretRef: {file: /etc/git-mirror/ci-token}, push: true}
  # webhookSecret: {file: /etc/git-mirror/webhook-secret}

repositories:
  example:
    upstream: ssh://git@ssh.github.com:443/example/example.git
    transport:
      mode: ssh                   # ssh | https | file ; must agree with the URL scheme
      identity: {file: /etc/git-mirror/id_ed25519}
      knownHosts: {file: /etc/git-mirror/known_hosts}   # host keys are always verified
      proxy: corp                 # a name under proxies:, or omit for a direct connection
    sources:
      - branch: main
        snapshotGroup: example
      - branch: release/*         # globs are allowed; the group defaults to the repository id
    tags: true
    lanes:
      v01: {ref: gitops/v01}      # refs/heads/gitops/v01, written by pipelines, flushed upstream

# Without nodes: there is one node, `local`.
# nodes:
#   local: {executor: local}
"""  # noqa: E501  (the file init writes, byte for byte: its one long line is a user's comment)


def write_starter(path: Path, *, force: bool = False) -> Path:
    """Write :data:`STARTER` to ``path`` and return it; an existing file is a usage error
    unless ``force``."""
    if path.exists() and not force:
        raise UsageError(f"{path} exists already; nothing written",
                         hint=f"git-mirror --config {path} validate (or init --force to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STARTER, encoding="utf-8")
    return path
