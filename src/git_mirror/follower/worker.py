"""The detached process that finishes a background run (``follower trigger`` without --wait).

Started by :func:`git_mirror.follower.follower.trigger` with the follower lock inherited as an
open file: it runs the trigger, flushes after success and writes the outcome into the run
record, exactly as ``--wait`` does in the foreground. It starts only after its parent wrote
``go`` on its stdin, at which point the run record names this process as its owner.
"""

from __future__ import annotations

import select
import signal
import sys
from collections.abc import Sequence

from git_mirror.errors import Code

GO_TIMEOUT_SECONDS = 60.0


def _terminate(signum: int, _frame: object) -> None:
    """The SIGTERM handler (signal's handler signature): exit as 128 + the signal."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str]) -> int:
    """``worker CONFIG FOLLOWER RUN``: 0 when the run succeeded, 1 otherwise."""
    if len(argv) != 3:
        sys.stderr.write("usage: python -m git_mirror.follower.worker CONFIG FOLLOWER RUN\n")
        return 2
    config_path, fid, name = argv
    # SIGTERM unwinds like an exception: the trigger's command is stopped and the run record
    # says failed, instead of a record left "running".
    signal.signal(signal.SIGTERM, _terminate)
    ready, _, _ = select.select([sys.stdin], [], [], GO_TIMEOUT_SECONDS)
    if not ready or sys.stdin.readline().strip() != "go":
        sys.stderr.write("git-mirror: worker not released by its parent; nothing ran\n")
        return 3

    from git_mirror.config import load_config
    from git_mirror.errors import GitMirrorError
    from git_mirror.follower import state as st
    from git_mirror.follower.follower import complete_run
    from git_mirror.follower.triggers import trigger_for

    try:
        cfg = load_config(config_path)
    except GitMirrorError as exc:
        sys.stderr.write(f"git-mirror: {exc.message}\n")
        return 1
    state = st.FollowerState.of(cfg, fid)
    record = state.load_record(name)
    if record is None:
        sys.stderr.write(f"git-mirror: run record {name} not found\n")
        return 1
    if record.config_sha256 != cfg.sha256:
        record = record.with_(status=st.FAILED, finished_at=st.now_iso(), error={
            "code": Code.CONFIG_CHANGED,
            "message": f"{cfg.path} changed between the trigger and the run; nothing ran",
            "hint": f"git-mirror follower trigger --follower {fid} --confirm"})
        state.save(record)
        return 1
    try:
        trig = trigger_for(cfg, fid, node=str(record.node or "local"), executor="local")
        record = complete_run(cfg, state, record, trig)
    except GitMirrorError as exc:
        # complete_run saved where the run got to before it raised: go on from there.
        record = (state.load_record(name) or record).with_(
            status=st.FAILED, finished_at=st.now_iso(), error=exc.to_json())
        state.save(record)
    return 0 if record.status == st.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
