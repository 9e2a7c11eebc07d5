"""Human-readable renderings of results (the JSON is the contract; this is for people)."""

from __future__ import annotations

from typing import Any

from git_mirror.cli.output import short, table


def status_text(data: dict[str, Any]) -> str:
    out = [f"node {data['node']}  config {data['config']['path']}  "
           f"pendingFlush={str(data['pendingFlush']).lower()}  githubInSync={str(data['githubInSync']).lower()}"]
    for repo in data["repositories"]:
        t, p = repo["transport"], repo["proxy"]
        last = repo.get("lastSync") or {}
        flushed = repo.get("lastFlush") or {}
        out.append("")
        out.append(f"{repo['id']}  {t['mode']} {t['url']}  proxy={p.get('name') or 'none'} ({p['mode']})  "
                   f"lastSync={last.get('at') or 'never'}{'' if last.get('ok', True) else ' FAILED'}  "
                   f"lastFlush={flushed.get('at') or 'never'}{'' if flushed.get('ok', True) else ' FAILED'}")
        for s in repo.get("secrets", []):
            out.append(f"  secret {s['role']}: {s['sourceRef']} {s.get('fingerprint') or s.get('error', '')}")
        if not repo["mirror"]["exists"]:
            out.append("  mirror not created yet: git-mirror apply --confirm")
            continue
        rows = [["source", s["branch"], short(s["mirrorCommit"]), short(s["githubCommit"]),
                 "yes" if s["githubInSync"] else "no", "yes" if s["snapshotRef"] else "no"]
                for s in repo["sources"]]
        rows += [["lane " + ln["name"], ln["ref"].removeprefix("refs/heads/"), short(ln["mirrorCommit"]),
                  short(ln["githubCommit"]), "yes" if ln["githubInSync"] else "no",
                  ("DIVERGED" if ln["diverged"] else "pending flush" if ln["pendingFlush"] else "")]
                 for ln in repo["lanes"]]
        if rows:
            out.append("  " + table(rows, ["kind", "branch", "mirror", "github(stage)", "in sync", "snapshot/flush"])
                       .replace("\n", "\n  "))
    return "\n".join(out)


def job_text(data: dict[str, Any]) -> str:
    """A node Job that was not waited for, or a dry run that shows the Job it would create."""
    job = data["job"]
    if data.get("dryRun"):
        return (f"dry run: would create Job {job['namespace']}/{job['name']} on node {data['node']}"
                f" (nothing created; add --confirm)\n{' '.join(data['wouldCreate']['spec']['template']['spec']['containers'][0]['command'])}")
    return f"Job {job['namespace']}/{job['name']} on node {data['node']}: {job['status']}"


def sync_text(data: dict[str, Any]) -> str:
    if "job" in data and "repositories" not in data:
        return job_text(data)
    head = "sync (dry run: nothing changed; add --confirm)" if data["dryRun"] else "sync"
    out = [head]
    for repo in data["repositories"]:
        mark = "ok" if repo["ok"] else f"FAILED [{repo['error']['code']}] {repo['error']['message']}"
        out.append(f"{repo['id']}: {mark}  {len(repo['updated'])} ref update(s), "
                   f"{len(repo['snapshots'])} snapshot(s)")
        for u in repo["updated"]:
            out.append(f"  {u['ref']}  {short(u['from'])} -> {short(u['to'])}")
        for s in repo["snapshots"]:
            out.append(f"  + {s['ref']}")
        for lane in repo["lanes"]:
            if lane["action"] not in ("in-sync", "absent"):
                out.append(f"  lane {lane['name']}: {lane['action']}")
        for warning in repo.get("warnings", []):
            out.append(f"  warning: {warning}")
        for name in repo.get("recovered", []):
            out.append(f"  removed stale lock file {name} (left by a killed git)")
    return "\n".join(out)


def apply_text(data: dict[str, Any]) -> str:
    head = "apply (dry run: nothing changed; add --confirm)" if data["dryRun"] else "apply"
    out = [f"{head} node {data['node']}"]
    hooks = data.get("hooks")
    if hooks:
        out.append(f"hook {hooks['path']}: {hooks['action']}")
        for stray in hooks.get("strayHooks", []):
            out.append(f"  other hook {stray['path']}: "
                       + (f"moved to {stray['movedTo']}" if stray.get("movedTo") else "would be moved aside"))
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


def flush_text(data: dict[str, Any]) -> str:
    if "job" in data and "repositories" not in data:
        return job_text(data)
    head = "flush (dry run: nothing pushed; add --confirm)" if data.get("dryRun") else "flush"
    out = [head]
    for repo in data.get("repositories", []):
        mark = "ok" if repo["ok"] else f"FAILED [{repo['error']['code']}] {repo['error']['message']}"
        out.append(f"{repo['id']}: {mark}")
        for lane in repo.get("lanes", []):
            if lane["action"] not in ("absent", "push"):
                out.append(f"  lane {lane['name']}: {lane['action']}")
        for warning in repo.get("warnings", []):
            out.append(f"  warning: {warning}")
        for name in repo.get("recovered", []):
            out.append(f"  removed stale lock file {name} (left by a killed git)")
    for key, verb in (("wouldPush", "would push"), ("pushed", "pushed")):
        for p in data.get(key, []):
            out.append(f"  {verb} {p.get('repository', '')} {p['ref']}  {short(p['from'])} -> {short(p['to'])}")
    if data.get("partialSuccess"):
        out.append(f"  partial success: {data['partialSuccess']}; recovered={data.get('partialSuccessRecovered')}")
    out.append(f"pendingFlush={str(data.get('pendingFlush')).lower()} "
               f"githubInSync={str(data.get('githubInSync')).lower()}")
    return "\n".join(out)
