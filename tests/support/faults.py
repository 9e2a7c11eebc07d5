"""Transport-level faults at the upstream: a wrapper around its ``git-upload-pack``.

Over file://, the fetching git starts ``git-upload-pack <upstream path>``; git looks that
program up as ``remote.<url>.uploadpack`` in the fetching repository's config (the URL acts
as the remote's name). Pointing that at a wrapper makes the *upstream side* of every
ls-remote and fetch misbehave, exactly where a real network or server fault happens, with no
change to the code under test. The upstream's ``post-receive`` hook marks that a push landed
(and logs each one), so the wrapper can fail only the reads that come after a push.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.gitutil import Repo


@dataclass
class UploadPackFault:
    dir: Path
    upstream: Repo
    mirror: Repo

    @property
    def failures(self) -> int:
        p = self.dir / "count"
        return int(p.read_text()) if p.exists() else 0

    @property
    def pushes(self) -> list[str]:
        """One line per ref update upstream received (``old new ref``)."""
        p = self.dir / "received.log"
        return p.read_text().splitlines() if p.exists() else []

    def blocked(self) -> bool:
        return (self.dir / "blocked").exists()

    def remove(self) -> None:
        """Take the wrapper out: upstream behaves again."""
        self.mirror.git("config", "--unset", f"remote.{self.upstream.url}.uploadpack")


def inject(tmp_path: Path, upstream: Repo, mirror: Repo, *, fail: int = 0,
           block: bool = False) -> UploadPackFault:
    """After upstream receives a push: fail the next ``fail`` reads, or block every read.

    A blocked read waits (at most 60 s) for the test to kill the reader, then fails.
    """
    d = tmp_path / "fault"
    d.mkdir()
    hook = upstream.path / "hooks" / "post-receive"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\ncat >> '{d}/received.log'\ntouch '{d}/pushed'\n", encoding="utf-8")
    hook.chmod(0o755)
    wrapper = d / "git-upload-pack"
    wrapper.write_text(f"""#!/bin/sh
d='{d}'
if [ -e "$d/pushed" ]; then
  if [ {1 if block else 0} = 1 ]; then
    touch "$d/blocked"
    i=0
    while [ $i -lt 600 ] && [ ! -e "$d/release" ]; do sleep 0.1; i=$((i + 1)); done
    exit 1
  fi
  n=$(cat "$d/count" 2>/dev/null || echo 0)
  if [ "$n" -lt {fail} ]; then
    echo $((n + 1)) > "$d/count"
    echo "fatal: injected upload-pack fault" >&2
    exit 1
  fi
fi
exec git upload-pack "$@"
""", encoding="utf-8")
    wrapper.chmod(0o755)
    mirror.git("config", f"remote.{upstream.url}.uploadpack", str(wrapper))
    return UploadPackFault(d, upstream, mirror)
