"""Talking to upstream: ls-remote, fetch and push, each one git process per repository.

The environment that decides *how* upstream is reached (ssh wrapper, askpass, proxy) comes
from the transport layer as :class:`RemoteEnv`; this module only runs git with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from git_mirror.errors import GitError, GitMirrorError
from git_mirror.git import progress as _progress
from git_mirror.git.run import NETWORK_TIMEOUT, GitResult, git


@dataclass(frozen=True)
class RemoteEnv:
    """How to reach one upstream: its URL, git ``-c`` options, env and allowed protocol."""

    url: str
    allow_protocol: str
    env: Mapping[str, str] = field(default_factory=dict)
    config: Sequence[str] = ()  # "key=value" pairs passed as -c
    timeout: float = NETWORK_TIMEOUT
    # Turns a failed git process into the error a user can act on (host key refused,
    # proxy refused, token rejected...). Supplied by the transport, which knows what was
    # declared; None keeps the plain GitError.
    explain: Callable[[GitError], GitMirrorError] | None = field(default=None, compare=False)
    # Run with the git arguments before every git process that talks to upstream (the ssh
    # transport opens its shared connection there); it raises the error a user can act on.
    before: Callable[[Sequence[str]], None] | None = field(default=None, compare=False)

    def cflags(self) -> list[str]:
        """The ``-c`` options for git: protocol v2, then the transport's own."""
        flags = ["-c", "protocol.version=2"]
        for kv in self.config:
            flags += ["-c", kv]
        return flags


def with_progress(args: Sequence[str]) -> tuple[list[str], Callable[[bytes], None] | None]:
    """``args`` of a fetch or push, and where its stderr goes: when a person is watching
    (:mod:`git_mirror.git.progress`), git's own progress instead of ``--quiet``, relayed
    with the repository's name; otherwise ``args`` as they are and nowhere."""
    sink = _progress.current()
    if sink is None:
        return list(args), None
    out = [a for a in args if a != "--quiet"]
    verb = next(i for i, a in enumerate(out) if a in ("fetch", "push"))
    out.insert(verb + 1, "--progress")
    return out, sink.relay()


def _net(remote: RemoteEnv, args: Sequence[str], git_dir: Path | None, what: str,
         ok_codes: Sequence[int] = (0,), input: bytes | None = None,
         shows_progress: bool = False) -> GitResult:
    if remote.before is not None:
        remote.before(args)
    relay = None
    if shows_progress:
        args, relay = with_progress(args)
    try:
        return git([*remote.cflags(), *args], git_dir=git_dir, env=remote.env,
                   allow_protocol=remote.allow_protocol, timeout=remote.timeout, what=what,
                   ok_codes=ok_codes, input=input, on_stderr=relay)
    except GitError as exc:
        if remote.explain is None:
            raise
        raise remote.explain(exc) from exc


def ls_remote(remote: RemoteEnv, patterns: Sequence[str],
              git_dir: Path | None = None) -> dict[str, str]:
    """Map refname -> oid of upstream refs matching ``patterns`` (full ref globs)."""
    res = _net(remote, ["ls-remote", "--refs", remote.url, *patterns], git_dir,
               "git ls-remote")
    refs: dict[str, str] = {}
    for line in res.text.splitlines():
        oid, sep, name = line.partition("\t")
        if not sep:
            raise GitError(f"unexpected ls-remote line: {line!r}")
        refs[name] = oid
    return refs


def fetch(git_dir: Path, remote: RemoteEnv, refspecs: Sequence[str], *,
          prune: bool = True) -> GitResult:
    """One atomic fetch of ``refspecs``: all destination refs update together, or none."""
    args = ["fetch", "--atomic", "--no-tags", "--no-write-fetch-head", "--quiet",
            "--no-auto-gc", "--no-auto-maintenance", "--no-show-forced-updates"]
    if prune:
        args.append("--prune")
    return _net(remote, [*args, remote.url, *refspecs], git_dir, "git fetch", shows_progress=True)


def fetch_objects(git_dir: Path, remote: RemoteEnv, oids: Sequence[str],
                  negotiation_tips: Sequence[str] = ()) -> GitResult:
    """Fetch the objects of ``oids`` (advertised tips) without writing any ref.

    ``negotiation_tips`` (ref globs) limit the "have" lines to what upstream can know about,
    instead of every ref of the mirror (snapshots, tags...).
    """
    args = ["fetch", "--stdin", "--no-tags", "--no-write-fetch-head", "--quiet",
            "--no-auto-gc", "--no-auto-maintenance", "--no-show-forced-updates",
            "--no-recurse-submodules"]
    args += [f"--negotiation-tip={tip}" for tip in negotiation_tips]
    args.append(remote.url)
    return _net(remote, args, git_dir, "git fetch", input=("\n".join(oids) + "\n").encode(),
                shows_progress=True)


@dataclass(frozen=True)
class PushedRef:
    """One line of ``git push --porcelain``."""

    flag: str  # " " ok, "+" forced, "-" deleted, "*" new, "!" rejected, "=" up to date
    src: str
    dst: str
    summary: str
    reason: str

    @property
    def ok(self) -> bool:
        """The ref was pushed, deleted, or was already up to date."""
        return self.flag in (" ", "+", "-", "*", "=")


def parse_push_porcelain(text: str) -> list[PushedRef]:
    """Parse the ref lines of ``git push --porcelain`` output; raise on unexpected lines."""
    out: list[PushedRef] = []
    for line in text.splitlines():
        if not line or line.startswith("To ") or line == "Done":
            continue
        if len(line) < 2 or line[1] != "\t":
            raise GitError(f"unexpected push --porcelain line: {line!r}")
        flag = line[0]
        rest = line[2:].split("\t")
        if len(rest) < 2:
            raise GitError(f"unexpected push --porcelain line: {line!r}")
        src, _, dst = rest[0].partition(":")
        summary = rest[1]
        reason = ""
        if summary.endswith(")") and " (" in summary:
            summary, _, reason = summary[:-1].partition(" (")
        out.append(PushedRef(flag, src, dst, summary, reason))
    return out


def push(git_dir: Path, remote: RemoteEnv, refspecs: Sequence[str], *,
         leases: Mapping[str, str | None] | None = None,
         atomic: bool = True) -> tuple[GitResult, list[PushedRef]]:
    """One ``git push --porcelain`` (atomic, no force) with a lease per ref.

    Returns the process result and the per-ref outcome; a non-zero exit with parseable ref
    lines is returned, not raised, so the caller can say which refs were refused.
    """
    args = ["push", "--porcelain", "--no-verify"]
    if atomic:
        args.append("--atomic")
    for ref, expect in (leases or {}).items():
        args.append(f"--force-with-lease={ref}:{expect or ''}")
    res = _net(remote, [*args, remote.url, *refspecs], git_dir, "git push", ok_codes=(0, 1),
               shows_progress=True)
    refs = parse_push_porcelain(res.text)
    if res.returncode != 0 and not refs:
        first = next((ln for ln in res.stderr.splitlines() if ln.strip()), "")
        err = GitError(f"git push failed (exit {res.returncode}): {first.strip()}",
                       argv=res.argv, returncode=res.returncode, stderr=res.stderr)
        raise (remote.explain(err) if remote.explain else err)
    return res, refs


def fetch_listed(view_dir: Path, common_dir: Path, remote: RemoteEnv, refspecs: Sequence[str],
                 negotiation_tips: Sequence[str] = ()) -> GitResult:
    """One ``git fetch`` that lists upstream's refs and fetches their new objects, in one
    connection and one negotiation, writing no ref of the repository at ``common_dir``.

    It runs in a private view of that repository: ``view_dir`` is laid out as a linked
    worktree's git directory (a ``HEAD`` and a ``commondir`` file naming ``common_dir``), and
    git also gets ``GIT_COMMON_DIR``. Objects go to the repository's object store, and the
    ``refspecs`` name per-view destinations (``refs/worktree/...``), which only the view
    sees. The refspecs are given as the configuration of a remote, not on the command line,
    so that upstream's ls-refs is asked only for their prefixes. ``negotiation_tips`` (ref
    globs) limit the "have" lines.
    """
    # The remote is named by its URL, as ls-remote and fetch name it, so that the same
    # remote.<url>.* settings apply.
    name = remote.url
    flags: list[str] = []
    for spec in refspecs:
        flags += ["-c", f"remote.{name}.fetch={spec}"]
    args = [*flags, "fetch", "--prune", "--no-tags", "--no-write-fetch-head", "--quiet",
            "--no-auto-gc", "--no-auto-maintenance", "--no-show-forced-updates",
            "--no-recurse-submodules"]
    args += [f"--negotiation-tip={tip}" for tip in negotiation_tips]
    args.append(name)
    if remote.before is not None:
        remote.before(args)
    args, relay = with_progress(args)
    try:
        return git([*remote.cflags(), *args], git_dir=view_dir,
                   env={**remote.env, "GIT_COMMON_DIR": str(common_dir)},
                   allow_protocol=remote.allow_protocol, timeout=remote.timeout, what="git fetch",
                   on_stderr=relay)
    except GitError as exc:
        if remote.explain is None:
            raise
        raise remote.explain(exc) from exc
