"""Human-readable renderings of results (the JSON is the contract; this is for people).

Each renderer reads the command's JSON object: the same text for a result made here and for
one a node's Job sent back as JSON.
"""

from __future__ import annotations

from typing import Any

from git_mirror.cli.output import short, table


def _flag(value: Any) -> str:
    return str(value).lower()


def _last_run(name: str, run: dict[str, Any] | None) -> str:
    run = run or {}
    return f"{name}={run.get('at') or 'never'}{'' if run.get('ok', True) else ' FAILED'}"


def _status_rows(repo: dict[str, Any]) -> list[list[str]]:
    """One table row per source branch and per lane of a repository."""
    rows = [["source", s["branch"], short(s["mirrorCommit"]), short(s["githubCommit"]),
             "yes" if s["githubInSync"] else "no", "yes" if s["snapshotRef"] else "no"]
            for s in repo["sources"]]
    rows += [["lane " + ln["name"], ln["ref"].removeprefix("refs/heads/"),
              short(ln["mirrorCommit"]), short(ln["githubCommit"]),
              "yes" if ln["githubInSync"] else "no",
              ("DIVERGED" if ln["diverged"] else "pending flush" if ln["pendingFlush"] else "")]
             for ln in repo["lanes"]]
    return rows


def _repo_status_lines(repo: dict[str, Any]) -> list[str]:
    t, p = repo["transport"], repo["proxy"]
    out = ["", f"{repo['id']}  {t['mode']} {t['url']}  "
               f"proxy={p.get('name') or 'none'} ({p['mode']})  "
               f"{_last_run('lastSync', repo.get('lastSync'))}  "
               f"{_last_run('lastFlush', repo.get('lastFlush'))}"]
    for s in repo.get("secrets", []):
        out.append(f"  secret {s['role']}: {s['sourceRef']} "
                   f"{s.get('fingerprint') or s.get('error', '')}")
    if not repo["mirror"]["exists"]:
        out.append("  mirror not created yet: git-mirror apply --confirm")
        return out
    rows = _status_rows(repo)
    if rows:
        out.append("  " + table(rows, ["kind", "branch", "mirror", "github(stage)", "in sync",
                                       "snapshot/flush"]).replace("\n", "\n  "))
    return out


def status_text(data: dict[str, Any]) -> str:
    """``status``: the node's flags, then each repository's transport, secrets and refs."""
    out = [f"node {data['node']}  config {data['config']['path']}  "
           f"pendingFlush={_flag(data['pendingFlush'])}  "
           f"githubInSync={_flag(data['githubInSync'])}"]
    for repo in data["repositories"]:
        out += _repo_status_lines(repo)
    return "\n".join(out)


def job_text(data: dict[str, Any]) -> str:
    """A node Job that was not waited for, or a dry run that shows the Job it would create."""
    job = data["job"]
    if data.get("dryRun"):
        command = data["wouldCreate"]["spec"]["template"]["spec"]["containers"][0]["command"]
        return (f"dry run: would create Job {job['namespace']}/{job['name']} on node "
                f"{data['node']} (nothing created; add --confirm)\n{' '.join(command)}")
    return f"Job {job['namespace']}/{job['name']} on node {data['node']}: {job['status']}"


def _repo_lines(repo: dict[str, Any], counts: str, refs: list[str],
                quiet_actions: tuple[str, ...]) -> list[str]:
    """A repository of a sync or flush: how it went, the ``refs`` lines, its lanes that did
    something, its warnings and the stale lock files removed."""
    mark = ("ok" if repo["ok"]
            else f"FAILED [{repo['error']['code']}] {repo['error']['message']}")
    out = [f"{repo['id']}: {mark}{counts}", *refs]
    for lane in repo.get("lanes", []):
        if lane["action"] not in quiet_actions:
            out.append(f"  lane {lane['name']}: {lane['action']}")
    for warning in repo.get("warnings", []):
        out.append(f"  warning: {warning}")
    for name in repo.get("recovered", []):
        out.append(f"  removed stale lock file {name} (left by a killed git)")
    return out


def sync_text(data: dict[str, Any]) -> str:
    """``sync``: per repository, the refs moved, the snapshots made, the lanes that moved."""
    if "job" in data and "repositories" not in data:
        return job_text(data)
    out = ["sync (dry run: nothing changed; add --confirm)" if data["dryRun"] else "sync"]
    for repo in data["repositories"]:
        counts = (f"  {len(repo['updated'])} ref update(s), "
                  f"{len(repo['snapshots'])} snapshot(s)")
        refs = [f"  {u['ref']}  {short(u['from'])} -> {short(u['to'])}" for u in repo["updated"]]
        refs += [f"  + {s['ref']}" for s in repo["snapshots"]]
        out += _repo_lines(repo, counts, refs, ("in-sync", "absent"))
    return "\n".join(out)


def push_line(push: dict[str, Any], verb: str, *, named: bool = True) -> str:
    """One lane push of a flush: ``<verb> <repository> <ref>  <from> -> <to>``.

    ``named=False`` leaves the repository out, where it goes without saying (the flush
    after a follower's run: the follower's own repository); so does a push without one.
    """
    repository = push.get("repository") if named else None
    return (f"  {verb} {f'{repository} ' if repository else ''}{push['ref']}  "
            f"{short(push['from'])} -> {short(push['to'])}")


def flush_text(data: dict[str, Any]) -> str:
    """``flush``: per repository, how it went; then what was (or would be) pushed."""
    if "job" in data and "repositories" not in data:
        return job_text(data)
    out = ["flush (dry run: nothing pushed; add --confirm)" if data.get("dryRun") else "flush"]
    for repo in data.get("repositories", []):
        out += _repo_lines(repo, "", [], ("absent", "push"))
    for key, verb in (("wouldPush", "would push"), ("pushed", "pushed")):
        out += [push_line(p, verb) for p in data.get(key, [])]
    if data.get("partialSuccess"):
        out.append(f"  partial success: {data['partialSuccess']}; "
                   f"recovered={data.get('partialSuccessRecovered')}")
    out.append(f"pendingFlush={_flag(data.get('pendingFlush'))} "
               f"githubInSync={_flag(data.get('githubInSync'))}")
    return "\n".join(out)


def _hook_lines(hooks: dict[str, Any] | None) -> list[str]:
    if not hooks:
        return []
    out = [f"hook {hooks['path']}: {hooks['action']}"]
    for stray in hooks.get("strayHooks", []):
        out.append(f"  other hook {stray['path']}: "
                   + (f"moved to {stray['movedTo']}" if stray.get("movedTo")
                      else "would be moved aside"))
    return out


def apply_text(data: dict[str, Any]) -> str:
    """``apply``: the hook, each repository's settings, manifests, warnings, orphans."""
    head = "apply (dry run: nothing changed; add --confirm)" if data["dryRun"] else "apply"
    out = [f"{head} node {data['node']}", *_hook_lines(data.get("hooks"))]
    for repo in data["repositories"]:
        out.append(f"{repo['id']}: {repo['action']}  {repo['path']}")
        if repo["action"] != "create":
            for c in repo["changes"]:
                out.append(f"  {c['key']}: {c['from']!r} -> {c['to']!r}")
    for m in data.get("manifests", []):
        out.append(f"{m['kind']}/{m['name']}: {m['action']}"
                   + (f"  ({', '.join(m['changes'][:6])})" if m["changes"] else ""))
    for p in data.get("pruned", []):
        out.append(f"{p['kind']}/{p['name']}: {'would prune' if data['dryRun'] else 'pruned'}")
    for w in data.get("warnings", []):
        out.append(f"warning [{w['code']}]: {w['message']}")
    for name in data.get("orphaned", []):
        out.append(f"{name}: orphaned (not in YAML; left in place, remove it by hand if unwanted)")
    return "\n".join(out)


def snapshots_text(data: dict[str, Any]) -> str:
    """``snapshots list``: one line per snapshot ref."""
    return "\n".join(f"{s['repository']}  {s['ref']}" for s in data["snapshots"])


def prune_text(data: dict[str, Any]) -> str:
    """``snapshots prune``: how many were (or would be) pruned and kept."""
    return (f"{'would prune' if data['dryRun'] else 'pruned'} {len(data['pruned'])}, "
            f"kept {data['kept']}")
