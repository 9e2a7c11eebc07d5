"""serve refuses pushes (503, with the reason) while the ref protection is not intact, until
``apply --confirm`` restores it; pushes are then taken, flushed, and in the audit journal."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.gitutil import Repo, run_git
from tests.support.server import CI_TOKEN, Served, wait_for

LANE = "refs/heads/gitops/v03"
BEARER = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
          "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {CI_TOKEN}"}


def test_a_patched_hook_stops_pushes_until_apply_restores_it(
        tmp_path: Path, served: Served, upstream: Repo) -> None:
    config = served.runtime.cfg.path
    work = tmp_path / "work"
    run_git("clone", "-q", "--branch", "gitops/v03", served.repo_url(), str(work))
    (work / "deploy.yaml").write_text("image: v2\n")
    run_git("add", "deploy.yaml", cwd=work)
    run_git("commit", "-qm", "deploy v2", cwd=work)
    before = served.mirror().rev(LANE)

    hook = config.parent / ".git-mirror" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(hook, 0o755)

    res = run_git("push", served.repo_url(), f"HEAD:{LANE}", cwd=work, env=BEARER, check=False)
    assert res.returncode != 0
    assert b"not the one git-mirror installs" in res.stderr
    assert b"git-mirror apply --confirm" in res.stderr
    # A forged snapshot is refused the same way: nothing gets past a patched hook.
    head = run_git("rev-parse", "HEAD", cwd=work).stdout.decode().strip()
    snap = f"refs/unidesk/snapshots/hwlab-node-runtime/main/{head}"
    assert run_git("push", served.repo_url(), f"HEAD:{snap}", cwd=work, env=BEARER,
                   check=False).returncode != 0
    assert served.mirror().rev(LANE) == before and served.mirror().rev(snap) is None
    with served.client() as c:
        adv = c.get("/hwlab.git/info/refs", params={"service": "git-receive-pack"},
                    headers={"Authorization": f"Bearer {CI_TOKEN}"})
        assert adv.status_code == 503
        assert "not the one git-mirror installs" in adv.text
        # Reads go on.
        refs = c.get("/hwlab.git/info/refs", params={"service": "git-upload-pack"})
        assert refs.status_code == 200
        status = c.get("/api/status").json()
        assert status["integrity"]["ok"] is False
        assert status["error"]["code"] == "integrity"

    assert run_cli("--config", config, "apply", "--confirm").code == 0
    run_git("push", "-q", served.repo_url(), f"HEAD:{LANE}", cwd=work, env=BEARER)
    tip = run_git("rev-parse", "HEAD", cwd=work).stdout.decode().strip()
    assert served.mirror().rev(LANE) == tip
    wait_for(lambda: upstream.rev(LANE) == tip, timeout=30)
    pushes = run_cli("--config", config, "--json", "log", "--operation", "push").json["entries"]
    assert [(p["ref"], p["from"], p["to"], p["token"]) for p in pushes] == [
        (LANE, before, tip, "ci")]
    assert run_cli("--config", config, "--json", "verify").code == 0
