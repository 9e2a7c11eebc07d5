"""A follower config and its build script for tests of followers and closeout.

The build script is what a real pipeline does on a local node: it records what it saw (its
HEAD, the refs of its checkout, its environment), then commits a deploy file on top of the
lane fetched from ``GIT_MIRROR_PUSH_URL`` and pushes it there. What it does beyond that is
read from a "mode" file the test writes, so that one config serves every scenario:

``ok`` (default), ``fail`` (exit 3 before pushing), ``push-then-fail``, ``sleep`` (2 s, then
ok), ``hang`` (60 s), ``push-source`` (pushes to a source branch: exit 5 when refused),
``move-branch`` (moves upstream main before building, then ok), ``upstream-lane-moves`` (ok,
but someone else moves the upstream lane before the flush).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import BASE_CONFIG
from tests.support.cli import CliResult
from tests.support.gitutil import Repo

FOLLOWER = "hwlab-runtime"
LANE = "refs/heads/gitops/v03"
SNAP_PREFIX = "refs/unidesk/snapshots/hwlab-node-runtime/main/"

SCRIPT = """\
#!/bin/sh
set -eu
obs="{obs}/$GIT_MIRROR_RUN"
mkdir -p "$obs"
echo $$ > "$obs/pid"
git rev-parse HEAD > "$obs/head"
git for-each-ref --format='%(refname)' > "$obs/refs"
git symbolic-ref -q HEAD > "$obs/symbolic-head" || echo detached > "$obs/symbolic-head"
git remote > "$obs/remotes"
pwd > "$obs/pwd"
env | sort > "$obs/env"
mode=$(cat "{mode}" 2>/dev/null || echo ok)
case "$mode" in
  fail) echo "build broke on purpose" >&2; exit 3 ;;
  sleep) sleep 2 ;;
  hang) sleep 60 ;;
  push-source)
    git commit -q --allow-empty -m "not for a source branch"
    if git push -q "$GIT_MIRROR_PUSH_URL" HEAD:refs/heads/main 2> "$obs/refused"; then exit 0; fi
    exit 5 ;;
  move-branch)
    up="{upstream}"
    new=$(git --git-dir="$up" commit-tree "refs/heads/main^{{tree}}" -p refs/heads/main \\
          -m "moved during the run")
    git --git-dir="$up" update-ref refs/heads/main "$new"
    echo "$new" > "$obs/moved-to" ;;
esac
git fetch -q "$GIT_MIRROR_PUSH_URL" "$GIT_MIRROR_LANE_REF"
git checkout -q --detach FETCH_HEAD
echo "image: hwlab@$GIT_MIRROR_COMMIT run $GIT_MIRROR_RUN" > deploy.yaml
git add deploy.yaml
git commit -q -m "deploy $GIT_MIRROR_COMMIT"
git push -q "$GIT_MIRROR_PUSH_URL" "HEAD:$GIT_MIRROR_LANE_REF"
git rev-parse HEAD > "$obs/pushed"
if [ "$mode" = push-then-fail ]; then exit 4; fi
if [ "$mode" = upstream-lane-moves ]; then
  up="{upstream}"
  other=$(git --git-dir="$up" commit-tree "$GIT_MIRROR_LANE_REF^{{tree}}" \\
          -p "$GIT_MIRROR_LANE_REF" -m "pushed upstream by someone else")
  git --git-dir="$up" update-ref "$GIT_MIRROR_LANE_REF" "$other"
  echo "$other" > "$obs/upstream-lane"
fi
"""

FOLLOWERS = """\
followers:
  {follower}:
    repository: hwlab
    branch: main
    lane: v03
    trigger: {{exec: ["{script}"]}}
  hwlab-tekton:
    repository: hwlab
    branch: main
    lane: v03
    trigger: {{tekton: {{pipeline: hwlab-build}}}}
"""


@dataclass
class Build:
    """The build script of a test and what it observed, per run."""

    script: Path
    obs: Path
    mode_file: Path

    def mode(self, mode: str) -> None:
        self.mode_file.write_text(mode + "\n", encoding="utf-8")

    def seen(self, run: str, what: str) -> str:
        return (self.obs / run / what).read_text(encoding="utf-8").strip()

    def started(self, run: str, timeout: float = 60) -> int:
        """The pid of ``run``'s build command once it has written it; fails after ``timeout``."""
        pid_file = self.obs / run / "pid"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                text = pid_file.read_text(encoding="utf-8").strip()
                if text.isdigit():
                    return int(text)
            time.sleep(0.05)
        raise AssertionError(f"the build command of {run} did not start within {timeout} s")

    def ran(self) -> list[str]:
        return sorted(p.name for p in self.obs.iterdir()) if self.obs.exists() else []


def make_build(tmp_path: Path, upstream: Repo) -> Build:
    script = tmp_path / "ci" / "build.sh"
    script.parent.mkdir(parents=True, exist_ok=True)
    obs, mode = tmp_path / "observed", tmp_path / "ci" / "mode"
    script.write_text(SCRIPT.format(obs=obs, mode=mode, upstream=upstream.path), encoding="utf-8")
    script.chmod(0o755)
    return Build(script, obs, mode)


def follower_config(upstream: Repo, script: Path, extra: str = "") -> str:
    return (BASE_CONFIG.format(url=upstream.url)
            + FOLLOWERS.format(follower=FOLLOWER, script=script) + extra)


def run_record(config: Path, run: str) -> dict[str, object]:
    runs = config.parent / ".git-mirror" / "state" / "followers" / FOLLOWER / "runs"
    path = runs / f"{run}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def wait_for_status(cli: Callable[..., CliResult], status: str,
                    timeout: float = 60.0) -> dict[str, object]:
    """Poll ``follower status`` until the last run has ``status`` (bounded)."""
    deadline = time.monotonic() + timeout
    data: dict[str, object] = {}
    while time.monotonic() < deadline:
        res = cli("--json", "follower", "status", "--follower", FOLLOWER)
        assert res.code == 0, res.stdout
        data = res.json
        run = data.get("run")
        if isinstance(run, dict) and run.get("status") == status:
            return data
        time.sleep(0.2)
    raise AssertionError(f"the run did not reach {status} within {timeout}s: {data}")
