"""After a client's ``git receive-pack`` ends: what landed, and whether a flush is due.

Decided from the refs, never from how the process ended: a client may hang up as soon as it
has read the push report, and a ``receive-pack`` that was stopped or failed may still have
moved refs. One ``for-each-ref`` of the lanes and their stage refs answers both questions:

* the updates the ``pre-receive`` hook accepted (it writes them to a file serve names per
  request) that the refs or the lane's reflog show as done go to the audit journal as
  operation ``push``, with the token's name and the request id;
* a lane that differs from its stage ref holds commits upstream has not seen: flush.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from git_mirror.git.oid import is_zero
from git_mirror.git.reflog import read_reflog
from git_mirror.git.refs import RefUpdate, list_refs
from git_mirror.mirror import audit
from git_mirror.mirror.layout import RepoLayout

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


def _accepted(record: Path | None) -> list[tuple[str, str, str]]:
    if record is None:
        return []
    try:
        text = record.read_text(encoding="utf-8")
    except OSError:
        return []
    finally:
        record.unlink(missing_ok=True)
    out = []
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2]))
    return out


STALE_SECONDS = 3600.0


def _sweep(directory: Path) -> None:
    """Records a killed serve left behind (an hour old) go; a live push's is seconds old."""
    import time

    limit = time.time() - STALE_SECONDS
    try:
        for entry in directory.iterdir():
            if entry.stat().st_mtime < limit:
                entry.unlink(missing_ok=True)
    except OSError:
        pass


def after_receive_pack(cfg: LoadedConfig, rid: str, record: Path | None, *,
                       token: str | None, request_id: str | None) -> bool:
    """Record what the push changed; True when some lane is ahead of (or differs from) its
    stage ref, so that a flush is due."""
    layout = RepoLayout.of(cfg, rid)
    accepted = _accepted(record)
    if record is not None:
        _sweep(record.parent)
    names = sorted({lane.ref for lane in layout.lanes} | {lane.stage_ref for lane in layout.lanes}
                   | {ref for _, _, ref in accepted})
    refs = list_refs(layout.git_dir, names) if names else {}
    landed: list[RefUpdate] = []
    for old, new, ref in accepted:
        done = refs.get(ref) == new
        if not done:  # moved on since (another push): the lane's reflog tells
            entries = read_reflog(layout.git_dir, ref, tail=True) or []
            done = any(e.old == old and e.new == new and e.message == "push" for e in entries)
        if done:
            landed.append(RefUpdate(ref, None if is_zero(new) else new,
                                    None if is_zero(old) else old))
    audit.record(layout.state_dir, rid, "push", landed, token=token, request_id=request_id)
    return any(refs.get(lane.ref) is not None and refs.get(lane.ref) != refs.get(lane.stage_ref)
               for lane in layout.lanes)
