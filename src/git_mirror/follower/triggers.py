"""Triggers: what starts a follower's pipeline on one snapshot, and how to watch it.

A trigger is anything with the small :class:`Trigger` interface: ``start`` a run of one
:class:`RunSpec` (the snapshot ref and commit are its only source), ``status`` of a started
run, ``wait`` for its :class:`Outcome`. The follower layer does the rest (sync before, flush
after, the run record), the same for every trigger.

This module implements the ``exec`` trigger of a local node: the declared command runs in a
fresh checkout of the snapshot commit (fetched from the mirror by the snapshot ref alone, no
branch ref in it), with an environment built from an allow-list plus ``GIT_MIRROR_*``.

Other triggers plug in with :func:`register_trigger` (executor, kind, factory): the
Kubernetes layer registers ``("kubernetes", "tekton")`` without this package importing it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from git_mirror.errors import Code, GitError, GitMirrorError
from git_mirror.git.run import git

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import Follower

EXEC_TIMEOUT_SECONDS = 3600.0  # one run of an exec trigger; then its process group is killed
KILL_GRACE_SECONDS = 10.0
# Host variables an exec trigger may see. Everything else of the host stays out (R8).
ENV_ALLOW = ("PATH", "LANG", "LC_ALL")


class TriggerError(GitMirrorError):
    """A trigger could not start or watch a run (not the pipeline failing: that is an Outcome)."""

    code = Code.TRIGGER_FAILED


class NotSupported(GitMirrorError):
    """A command or trigger this kind of node does not run; the hint names what does."""

    code = Code.NOT_SUPPORTED


@dataclass(frozen=True)
class RunSpec:
    """Everything a trigger needs to start one run: the snapshot is the only source."""

    follower: str
    repository: str
    branch: str
    lane: str
    lane_ref: str
    snapshot_ref: str
    commit: str
    push_url: str  # where lane commits go: the mirror (through its ref-protection hook)
    run: str
    node: str
    work_dir: Path
    log_path: Path

    def env(self) -> dict[str, str]:
        """The ``GIT_MIRROR_*`` variables every trigger hands to its pipeline."""
        return {"GIT_MIRROR_SNAPSHOT_REF": self.snapshot_ref, "GIT_MIRROR_COMMIT": self.commit,
                "GIT_MIRROR_LANE_REF": self.lane_ref, "GIT_MIRROR_PUSH_URL": self.push_url,
                "GIT_MIRROR_FOLLOWER": self.follower, "GIT_MIRROR_REPOSITORY": self.repository,
                "GIT_MIRROR_BRANCH": self.branch, "GIT_MIRROR_LANE": self.lane,
                "GIT_MIRROR_RUN": self.run}


@dataclass
class RunHandle:
    """A started run; ``native`` is the trigger's own handle (a process, a PipelineRun name)."""

    spec: RunSpec
    native: Any = None
    details: dict[str, Any] = field(default_factory=dict)  # shown in the run record


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``succeeded`` or ``failed``, its exit code, and the error."""

    status: str  # succeeded | failed
    exit_code: int | None = None
    error: GitMirrorError | None = None


class Trigger(Protocol):
    """What the follower layer needs of a trigger."""

    kind: str

    def describe(self) -> dict[str, Any]:
        """The trigger as shown in plans and run records (no secrets)."""
        ...

    def start(self, spec: RunSpec) -> RunHandle:
        """Start a run of ``spec``; raise TriggerError when it cannot start."""
        ...

    def status(self, handle: RunHandle) -> str:
        """``running``, ``succeeded`` or ``failed``."""
        ...

    def wait(self, handle: RunHandle, timeout: float) -> Outcome:
        """Wait (at most ``timeout`` seconds) for the run to end; a timeout is a failure."""
        ...


TriggerFactory = Callable[["LoadedConfig", str, "Follower"], Trigger]
_FACTORIES: dict[tuple[str, str], TriggerFactory] = {}


def register_trigger(executor: str, kind: str, factory: TriggerFactory) -> None:
    """Make ``kind`` triggers available on nodes whose executor is ``executor``."""
    _FACTORIES[(executor, kind)] = factory


def trigger_kind(follower: Follower) -> str:
    """``exec`` or ``tekton``: the kind of the follower's declared trigger."""
    from git_mirror.config.models import ExecTrigger

    return "exec" if isinstance(follower.trigger, ExecTrigger) else "tekton"


def trigger_for(cfg: LoadedConfig, fid: str, *, node: str, executor: str) -> Trigger:
    """The trigger of follower ``fid`` on ``node``, or ``not-supported`` saying what works."""
    follower = cfg.model.followers[fid]
    kind = trigger_kind(follower)
    factory = _FACTORIES.get((executor, kind))
    if factory is not None:
        return factory(cfg, fid, follower)
    where = cfg.where("followers", fid, "trigger")
    if kind == "tekton" and executor == "local":
        kube = [n for n, spec in cfg.model.nodes.items() if spec.executor == "kubernetes"]
        target = kube[0] if kube else "NODE"
        hint = f"git-mirror --node {target} follower trigger --follower {fid} --confirm --wait"
        if not kube:
            hint = ("declare a node with executor: kubernetes under nodes:, then: " + hint)
        raise NotSupported(
            f"follower {fid} has a tekton trigger ({where}); tekton runs only on a node whose "
            f"executor is kubernetes, and node {node} is local: pass --node with a kubernetes node",
            hint=hint)
    raise NotSupported(
        f"follower {fid} has a{'n' if kind == 'exec' else ''} {kind} trigger ({where}), which "
        f"this build cannot run on node {node} (executor {executor})",
        hint=f"git-mirror --node local follower trigger --follower {fid} --confirm --wait"
        if kind == "exec" else f"git-mirror --node {node} status")


# -- exec -----------------------------------------------------------------------------------

def _hold_ref_writers(spec: RunSpec, wait: float = 30.0) -> tuple[int, ...]:
    """A descriptor holding the mirror's ``ref-writers`` flock shared, for the command to
    inherit (see :mod:`git_mirror.mirror.recovery`); none when the mirror is not a local path."""
    import time

    from git_mirror.mirror.recovery import open_writers, try_shared

    if not spec.push_url.startswith("file://"):
        return ()
    # <cache>/repos/<id>.git -> <cache>/state/<id> (mirror.layout.RepoLayout)
    state = Path(spec.push_url.removeprefix("file://")).parent.parent / "state" / spec.repository
    try:
        fd = open_writers(state)
    except OSError:
        return ()
    deadline = time.monotonic() + wait
    while not try_shared(fd):  # a sweep holds it exclusively for a moment only
        if time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return (fd,)


class ExecTrigger:
    """Runs the declared argv in a fresh checkout of the snapshot commit (local nodes)."""

    kind = "exec"

    def __init__(self, argv: list[str], *, timeout: float | None = None,
                 where: str = "trigger.exec") -> None:
        self.argv = list(argv)
        self.timeout = timeout
        self.where = where  # the YAML location of the command, for errors

    def describe(self) -> dict[str, Any]:
        """``{kind: exec, exec: ARGV}``."""
        return {"kind": self.kind, "exec": self.argv}

    def start(self, spec: RunSpec) -> RunHandle:
        """Check out the snapshot and start the command in it, in a process group of its own."""
        checkout = checkout_snapshot(spec)
        home, tmp = spec.work_dir / "home", spec.work_dir / "tmp"
        for d in (home, tmp):
            d.mkdir(parents=True, exist_ok=True)
        (home / ".gitconfig").write_text(
            "# Written by git-mirror for this run: the identity of lane commits.\n"
            f"[user]\n\tname = git-mirror follower {spec.follower}\n"
            f"\temail = {spec.follower}@git-mirror.invalid\n", encoding="utf-8")
        env = exec_env(spec, home=home, tmp=tmp)
        try:
            argv = resolve_argv(self.argv, checkout, env["PATH"], commit=spec.commit,
                                where=self.where)
        except TriggerError as exc:
            _log(spec, f"git-mirror: {exc.message}")
            raise
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log_path, "ab") as log:
            log.write(f"git-mirror: {spec.run}: exec {argv!r} in a checkout of "
                      f"{spec.snapshot_ref}\n".encode())
            log.flush()
            writers = _hold_ref_writers(spec)
            try:
                # A process group of its own: a timeout can stop the command and what it started.
                # It pushes lane commits into the mirror itself (file://): like a push through
                # serve, it holds the ref-writers flock shared while it runs, so no sync or
                # flush takes a lock file of its receive-pack for a stale one.
                proc = subprocess.Popen(argv, cwd=checkout, env=env, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, pass_fds=writers)
            except OSError as exc:
                log.write(f"git-mirror: cannot start {argv[0]}: {exc.strerror}\n".encode())
                raise TriggerError(f"cannot start the exec trigger {argv[0]!r}: {exc.strerror}",
                                   code=Code.EXEC_FAILED,
                                   hint="fix trigger.exec in the YAML (a relative path is a "
                                        "file of the snapshot commit, an absolute one a program "
                                        "of this machine), then trigger again") from exc
            finally:
                for fd in writers:
                    os.close(fd)  # the command keeps the flock for as long as it runs
        return RunHandle(spec, proc, {"checkout": str(checkout), "pid": proc.pid,
                                      "argv": argv})

    def status(self, handle: RunHandle) -> str:
        """``running``, ``succeeded`` or ``failed``, from the process's exit code."""
        proc: subprocess.Popen[bytes] = handle.native
        rc = proc.poll()
        return "running" if rc is None else "succeeded" if rc == 0 else "failed"

    def wait(self, handle: RunHandle, timeout: float) -> Outcome:
        """Wait for the command (bounded by its own timeout too); stop it when it runs over."""
        proc: subprocess.Popen[bytes] = handle.native
        limit = min(timeout, self.timeout or EXEC_TIMEOUT_SECONDS)
        try:
            rc = proc.wait(timeout=limit)
        except BaseException as exc:
            if not isinstance(exc, subprocess.TimeoutExpired):
                # Interrupted (Ctrl-C, SIGTERM): the command runs in its own process group, so it
                # would outlive us; stop it before the run is recorded as failed.
                _stop(proc)
                _log(handle.spec, "git-mirror: stopped: interrupted")
                raise
            _stop(proc)
            _log(handle.spec, f"git-mirror: stopped after {limit:g}s")
            return Outcome("failed", None, TriggerError(
                f"the exec trigger did not finish within {limit:g}s and was stopped",
                code=Code.TIMEOUT, hint=f"see the log: {handle.spec.log_path}"))
        _log(handle.spec, f"git-mirror: exit code {rc}")
        if rc == 0:
            return Outcome("succeeded", 0)
        spec = handle.spec
        return Outcome("failed", rc, TriggerError(
            f"the exec trigger exited with {rc}; its output is in {spec.log_path}",
            code=Code.RUN_FAILED,
            hint=f"git-mirror cleanup-runs --pipeline-run {spec.run} --confirm && "
                 f"git-mirror follower trigger --follower {spec.follower} --confirm --wait"))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _log(spec: RunSpec, line: str) -> None:
    with open(spec.log_path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def _exec_factory(cfg: LoadedConfig, fid: str, follower: Follower) -> Trigger:
    from git_mirror.config.models import ExecTrigger as ExecModel

    assert isinstance(follower.trigger, ExecModel)
    return ExecTrigger(follower.trigger.exec, where=f"followers.{fid}.trigger.exec at "
                                                   f"{cfg.where('followers', fid, 'trigger')}")


register_trigger("local", "exec", _exec_factory)


def checkout_snapshot(spec: RunSpec) -> Path:
    """A fresh checkout of the snapshot commit, fetched from the mirror by its snapshot ref.

    The new repository holds the snapshot ref and a detached HEAD: no branch, no remote, so
    nothing in it can follow a moving ref (R11).
    """
    checkout = spec.work_dir / "checkout"
    if checkout.exists():
        shutil.rmtree(checkout)
    checkout.mkdir(parents=True)
    try:
        git(["init", "--quiet", str(checkout)], what="git init")
        mirror_objects = Path(spec.push_url.removeprefix("file://")) / "objects"
        if spec.push_url.startswith("file://") and mirror_objects.is_dir():
            # Borrow the mirror's objects instead of copying them for every run: the fetch
            # below then only writes the snapshot ref. The mirror never runs gc on its own,
            # and the snapshot ref keeps every object of this commit reachable.
            info = checkout / ".git" / "objects" / "info"
            info.mkdir(parents=True, exist_ok=True)
            (info / "alternates").write_text(f"{mirror_objects}\n", encoding="utf-8")
        git(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", spec.push_url,
             f"+{spec.snapshot_ref}:{spec.snapshot_ref}"], cwd=checkout, allow_protocol="file",
            timeout=1800, what="git fetch of the snapshot")
        got = git(["rev-parse", "--verify", "-q", f"{spec.snapshot_ref}^{{commit}}"],
                  cwd=checkout, what="git rev-parse").text.strip()
        if got != spec.commit:
            raise TriggerError(f"snapshot {spec.snapshot_ref} is {got}, expected {spec.commit}",
                               code=Code.SNAPSHOT_MISMATCH,
                               hint="git-mirror snapshots list")
        git(["checkout", "--quiet", "--detach", spec.commit], cwd=checkout, what="git checkout")
    except GitError as exc:
        _log(spec, f"git-mirror: checkout of {spec.snapshot_ref} failed: {exc.message}")
        raise TriggerError(f"cannot check out {spec.snapshot_ref}: {exc.message}",
                           code=Code.CHECKOUT_FAILED,
                           hint=f"git-mirror snapshots list --repo {spec.repository}") from exc
    return checkout


def exec_env(spec: RunSpec, *, home: Path, tmp: Path) -> dict[str, str]:
    """The exec trigger's environment: an allow-list of the host, a private HOME and TMPDIR,
    git isolated from system config, and the ``GIT_MIRROR_*`` variables."""
    env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env.update({"HOME": str(home), "TMPDIR": str(tmp), "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_TERMINAL_PROMPT": "0"})
    env.update(spec.env())
    return env


def resolve_argv(argv: list[str], checkout: Path, path: str, *,
                 commit: str | None = None, where: str = "trigger.exec") -> list[str]:
    """argv[0]: a relative path (``./ci/build.sh``, ``ci/build.sh``) is a file of the checkout
    (the snapshot commit) and nothing else (R1: no fallback to the operator's files); an
    absolute path is a program the operator declared; a bare name is looked up on PATH. The
    other arguments are passed as they are. Either way the command runs in the checkout.

    A relative path that the commit lacks, or that leads out of the checkout (``..``, a
    symlink), is error ``exec-not-in-snapshot``. A file of the checkout committed without its
    executable bit, but starting with ``#!``, runs with the interpreter that line names, as
    the kernel would run it with the bit set.
    """
    first = argv[0]
    if "/" in first and not os.path.isabs(first):
        relative = first
        first = os.path.normpath(checkout / relative)
        root = os.path.realpath(checkout)
        real = os.path.realpath(first)
        if not os.path.isfile(real) or os.path.commonpath([root, real]) != root:
            at = f"commit {commit[:12]}" if commit else "the snapshot commit"
            lacks = ("leads out of the checkout" if os.path.isfile(real) else "is not a file of "
                     "the snapshot")
            raise TriggerError(
                f"the exec trigger {relative!r} ({where}) {lacks}: a relative path is a file of "
                f"{at} and nothing else; no file outside the snapshot is run",
                code=Code.EXEC_NOT_IN_SNAPSHOT,
                hint=f"commit {relative} to the followed branch (then trigger again), or "
                     f"declare an absolute path in {where} for a program of this machine")
        if not os.access(first, os.X_OK):
            return [*_shebang(Path(first)), first, *argv[1:]]
    elif "/" not in first:
        first = shutil.which(first, path=path) or first
    return [first, *argv[1:]]


def _shebang(script: Path) -> list[str]:
    """The interpreter (and its one optional argument) of a ``#!`` line; [] without one."""
    try:
        with open(script, "rb") as fh:
            line = fh.readline(256).decode("utf-8", "replace").strip()
    except OSError:
        return []
    if not line.startswith("#!"):
        return []
    interpreter, _, arg = line[2:].strip().partition(" ")
    return [interpreter, arg.strip()] if arg.strip() else [interpreter] if interpreter else []
