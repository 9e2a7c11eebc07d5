"""Killing a git-mirror run, with all its git processes, at a chosen point.

The CLI runs in its own session (process group) with ``GIT_MIRROR_GIT_BINARY`` pointing at
a wrapper around the real git. The wrapper numbers every git call (under a flock: sync runs
two at once) and, as the test asks, sends SIGKILL to the whole group (``kill -9 0``):

* ``before N`` / ``after N``: before the N-th git call starts, or right after it ended;
* ``update-ref``: the first ``git update-ref`` runs with a ``reference-transaction`` hook
  that kills the group once the transaction is *prepared*, i.e. while git holds its
  ``.lock`` files, exactly as a kill at the wrong instant leaves them;
* ``linger``: every git call leaves a ``sleep`` behind, holding whatever it inherited.

Upstream hooks (``arm_upstream``) kill the group while ``git push`` runs: in ``pre-receive``
(nothing landed) or in ``post-receive`` (the push landed upstream, the mirror not told).
They act only while the test has armed them, and only on a process group that is not the
test's own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WRAPPER = r"""#!/bin/sh
d='{dir}'
exec 9>>"$d/counter.lock"
flock 9
n=$(( $(cat "$d/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$d/count"
flock -u 9
exec 9>&-
echo "$n $*" >> "$d/calls.log"
mode=$(cat "$d/mode" 2>/dev/null)
case "$mode" in
  "before $n") echo "$n" > "$d/killed"; kill -9 0 ;;
  "after $n") {git} "$@"; echo "$n" > "$d/killed"; kill -9 0 ;;
  update-ref)
    for a in "$@"; do
      if [ "$a" = update-ref ] && [ ! -e "$d/aimed" ]; then
        touch "$d/aimed"
        exec {git} -c core.hooksPath="$d/hooks" "$@"
      fi
    done ;;
  linger) sleep 60 & ;;
esac
exec {git} "$@"
"""

REF_TXN_HOOK = """#!/bin/sh
if [ "$1" = prepared ]; then
  echo update-ref > '{dir}/killed'
  kill -9 0
fi
cat >/dev/null
"""

UPSTREAM_HOOK = """#!/bin/sh
cat >/dev/null
if [ -e '{dir}/armed-{name}' ] && [ "$(cut -d' ' -f5 /proc/$$/stat)" != '{test_pgid}' ]; then
  rm -f '{dir}/armed-{name}'
  echo {name} > '{dir}/killed'
  kill -9 0
fi
"""


@dataclass
class Killer:
    dir: Path

    @classmethod
    def create(cls, root: Path) -> Killer:
        d = root / "killer"
        (d / "hooks").mkdir(parents=True)
        git = shutil.which("git") or "/usr/bin/git"
        wrapper = d / "git"
        wrapper.write_text(WRAPPER.format(dir=d, git=git), encoding="utf-8")
        wrapper.chmod(0o755)
        hook = d / "hooks" / "reference-transaction"
        hook.write_text(REF_TXN_HOOK.format(dir=d), encoding="utf-8")
        hook.chmod(0o755)
        return cls(d)

    def arm_upstream(self, upstream_git_dir: Path) -> None:
        """Install the upstream hooks (inactive until :meth:`arm`)."""
        hooks = upstream_git_dir / "hooks"
        hooks.mkdir(exist_ok=True)
        for name in ("pre-receive", "post-receive"):
            hook = hooks / name
            hook.write_text(UPSTREAM_HOOK.format(dir=self.dir, name=name,
                                                 test_pgid=os.getpgid(0)), encoding="utf-8")
            hook.chmod(0o755)

    def arm(self, hook: str) -> None:
        (self.dir / f"armed-{hook}").touch()

    def reset(self, mode: str = "") -> None:
        for name in ("count", "calls.log", "killed", "aimed", "armed-pre-receive",
                     "armed-post-receive"):
            (self.dir / name).unlink(missing_ok=True)
        (self.dir / "mode").write_text(mode, encoding="utf-8")

    @property
    def calls(self) -> list[str]:
        p = self.dir / "calls.log"
        return p.read_text(encoding="utf-8").splitlines() if p.exists() else []

    @property
    def killed(self) -> str | None:
        p = self.dir / "killed"
        return p.read_text(encoding="utf-8").strip() if p.exists() else None

    def run(self, config: Path, *args: str,
            timeout: float = 120) -> tuple[int, dict[str, Any] | None, str]:
        """Run the CLI in its own process group through the wrapper; (rc, JSON or None, stderr)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env["GIT_MIRROR_GIT_BINARY"] = str(self.dir / "git")
        proc = subprocess.Popen(
            [sys.executable, "-m", "git_mirror.cli.main", "--config", str(config), "--json", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        # Whatever the kill left running in the group is gone before the next step.
        deadline = time.monotonic() + 30
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        data = None
        if out.strip():
            try:
                data = json.loads(out)
            except ValueError:
                data = None
        return proc.returncode, data, err.decode("utf-8", "replace")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
