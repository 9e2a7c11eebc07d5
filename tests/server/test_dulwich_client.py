"""A git client that is not git's own: dulwich clones, fetches and pushes through serve.

dulwich reads the push report and hangs up at once. Every push the mirror accepted must still
reach upstream by itself (flush after push, decided from the refs), and be in the audit
journal with its token and request id.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path

from dulwich import porcelain
from dulwich.client import get_transport_and_path
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.pack import UnpackedObject
from dulwich.refs import Ref
from dulwich.repo import Repo as DRepo

from tests.support.cli import run_cli
from tests.support.gitutil import Repo
from tests.support.server import CI_TOKEN, Served, wait_for

LANE = Ref(b"refs/heads/gitops/v03")
PUSHES = 12
FLUSH_DEADLINE = 30.0


def lane_commit(repo: DRepo, parent: ObjectID, n: int) -> ObjectID:
    """A commit on top of ``parent`` that adds one file (objects written by dulwich)."""
    head = repo[parent]
    assert isinstance(head, Commit)
    base = repo[head.tree]
    assert isinstance(base, Tree)
    blob = Blob.from_string(f"deploy {n}\n".encode())
    tree = Tree()
    for item in base.items():
        tree.add(item.path, item.mode, item.sha)
    tree.add(f"deploy-{n}.txt".encode(), 0o100644, blob.id)
    commit = Commit()
    commit.tree, commit.parents = tree.id, [parent]
    commit.author = commit.committer = b"dulwich client <ci@example.com>"
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = f"deploy {n}\n".encode()
    for obj in (blob, tree, commit):
        repo.object_store.add_object(obj)
    return commit.id


def push_and_hang_up(url: str, repo: DRepo, new: ObjectID) -> None:
    """One push of the lane; the connection is closed as soon as the report is read."""
    client, path = get_transport_and_path(url, username="ci", password=CI_TOKEN)

    def pack_data(have: AbstractSet[ObjectID], want: AbstractSet[ObjectID], *,
                  ofs_delta: bool = False, progress: Callable[[bytes], None] | None = None,
                  ) -> tuple[int, Iterator[UnpackedObject]]:
        # No progress is asked for: the report is all this client reads.
        return repo.generate_pack_data(set(have), set(want), ofs_delta=ofs_delta)

    try:
        result = client.send_pack(path.encode(), lambda refs: {**refs, LANE: new},
                                  generate_pack_data=pack_data)
    finally:
        client.close()
    assert result.ref_status is not None
    assert result.ref_status.get(LANE) is None, result.ref_status  # None: accepted


def test_dulwich_clone_fetch_and_many_pushes_are_all_flushed(
        tmp_path: Path, served: Served, upstream: Repo) -> None:
    url = served.repo_url()
    repo = porcelain.clone(url, str(tmp_path / "clone"), checkout=False,
                           errstream=io.BytesIO())
    mirror = served.mirror()
    assert repo.refs[Ref(b"refs/remotes/origin/main")].decode() == mirror.rev("refs/heads/main")
    fetched = porcelain.fetch(repo, url, errstream=io.BytesIO(), outstream=io.StringIO())
    lane_tip = fetched.refs[LANE]
    assert lane_tip is not None and lane_tip.decode() == mirror.rev(LANE.decode())
    assert lane_tip in repo.object_store

    pushed: list[str] = []
    for n in range(PUSHES):
        new = lane_commit(repo, lane_tip, n)
        push_and_hang_up(url, repo, new)
        lane_tip = new
        pushed.append(new.decode())
        assert mirror.rev(LANE.decode()) == new.decode()
        # Accepted by the mirror: upstream must get it without another push or command.
        want = new.decode()
        wait_for(lambda: upstream.rev(LANE.decode()) == want,  # noqa: B023 (called here)
                 timeout=FLUSH_DEADLINE)

    # A fetch by dulwich sees its own pushes.
    fetched = porcelain.fetch(repo, url, errstream=io.BytesIO(), outstream=io.StringIO())
    assert fetched.refs[LANE] == lane_tip
    repo.close()
    # Every push is in the audit journal, with the token's name and a request id.
    entries = run_cli("--config", served.runtime.cfg.path, "--json", "log", "--operation",
                      "push").json["entries"]
    assert [e["to"] for e in entries] == pushed
    assert all(e["token"] == "ci" and e["requestId"] for e in entries)
    assert len({e["requestId"] for e in entries}) == PUSHES
    # No receive-pack was killed because its client hung up: each one ended by itself.
    runs = [json.loads(ln) for ln in served.logs().splitlines() if '"git request"' in ln]
    pushes = [r for r in runs if r["service"] == "git-receive-pack" and not r["advertise"]]
    assert len(pushes) == PUSHES
    assert [r["exitCode"] for r in pushes] == [0] * PUSHES
