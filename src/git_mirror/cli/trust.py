"""``verify`` (integrity from the cache) and ``log`` (the audit journal of ref changes).

Registered on the main group by :func:`register`. On a kubernetes node both run as a Job
against the node's cache, as ``status`` does.
"""

from __future__ import annotations

from typing import Any

import click

from git_mirror.cli.main import Ctx, Outcome, finish, pass_ctx, want_confirm
from git_mirror.cli.output import short


def register(cli: click.Group) -> None:
    """Add ``verify`` and ``log`` to the main group."""
    cli.add_command(verify)
    cli.add_command(log_command)


@click.command()
@click.option("--repo", metavar="ID", help="Only this repository.")
@click.option("--repair", is_flag=True,
              help="Quarantine forged refs (moved to refs/mirror-quarantine/, recorded).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for a sync or flush that holds the repository's lock.")
@click.option("--confirm", is_flag=True, help="With --repair: carry it out (default is a dry run).")
@click.option("--dry-run", "dry_run", is_flag=True, help="With --repair: only show the plan.")
@pass_ctx
def verify(ctx: Ctx, repo: str | None, repair: bool, wait: bool, confirm: bool,
           dry_run: bool) -> None:
    """Check the ref protection and every protected ref, from the cache (no network)."""
    def op() -> Outcome:
        from git_mirror.errors import UsageError

        do = want_confirm(dry_run, confirm)
        if do and not repair:
            raise UsageError("--confirm goes with --repair: verify alone changes nothing",
                             hint="git-mirror verify --repair --confirm")
        if ctx.executor() == "kubernetes":
            args = [*(["--repo", repo] if repo else []), *(["--repair"] if repair else []),
                    *(["--confirm"] if do else [])]
            return ctx.node_job("verify", args, confirm=True, wait=True)
        from git_mirror.mirror.verify import verify as run

        return run(ctx.cfg(), repo=repo, repair=repair, confirm=do, wait=wait,
                   node=ctx.node_name())
    finish(ctx, op, verify_text)


def verify_text(data: dict[str, Any]) -> str:
    """``verify``'s JSON for a person: the hook, each repository, the problems, what next."""
    hooks = data.get("hooks") or {}
    out = [f"hook {hooks.get('path')}: {'ours' if hooks.get('ok') else 'NOT OURS'} "
           f"({hooks.get('sha256') or 'missing'})"]
    for repo in data.get("repositories", []):
        if not repo.get("exists", True):
            out.append(f"{repo['id']}: no mirror yet")
            continue
        state = "ok" if repo["ok"] else f"{len(repo['problems'])} problem(s)"
        out.append(f"{repo['id']}: {state}, {repo['checkedRefs']} ref(s) checked")
        for q in repo.get("quarantined", []):
            out.append(f"  quarantined {q['ref']} ({short(q['commit'])}) as {q['quarantinedAs']}")
        for q in repo.get("wouldQuarantine", []):
            out.append(f"  would quarantine {q['ref']} ({short(q['commit'])})")
    for p in data.get("problems", []):
        out.append(f"problem [{p['kind']}]: {p['message']}\n  fix: {p['fix']}")
    if data.get("dryRun") and data.get("wouldQuarantine"):
        out.append("dry run: nothing moved; add --confirm")
    if data.get("next"):
        out.append(f"next: {data['next']}")
    return "\n".join(out)


@click.command("log")
@click.option("--repo", metavar="ID", help="Only this repository.")
@click.option("--ref", metavar="REF",
              help="Only this ref (a full name; a glob like 'refs/heads/*').")
@click.option("--operation", metavar="OP",
              help="Only sync, flush, push, prune, apply or quarantine.")
@click.option("--limit", type=click.IntRange(min=0), default=200, show_default=True,
              help="The newest N entries.")
@pass_ctx
def log_command(ctx: Ctx, repo: str | None, ref: str | None, operation: str | None,
                limit: int) -> None:
    """What happened to each ref: the audit journal, oldest first."""
    def op() -> Outcome:
        if ctx.executor() == "kubernetes":
            args = [*(["--repo", repo] if repo else []), *(["--ref", ref] if ref else []),
                    *(["--operation", operation] if operation else []), "--limit", str(limit)]
            return ctx.node_job("log", args, confirm=True, wait=True)
        from git_mirror.mirror.audit import AuditLog, read

        return AuditLog(ctx.node_name(), read(ctx.cfg(), repo=repo, ref=ref,
                                              operation=operation, limit=limit))
    finish(ctx, op, log_text)


def log_text(data: dict[str, Any]) -> str:
    """``log``'s JSON for a person: one line per journal entry, oldest first."""
    lines = []
    for e in data.get("entries", []):
        where = " (upstream)" if e.get("where") == "upstream" else ""
        who = f"  token={e['token']}" if e.get("token") else ""
        moved = f"  -> {e['quarantinedAs']}" if e.get("quarantinedAs") else ""
        lines.append(f"{e.get('at')}  {e.get('repository')}  {e.get('operation'):<10}  "
                     f"{e.get('ref')}{where}  {_value(e.get('from'))} -> {_value(e.get('to'))}"
                     f"{moved}{who}  request={e.get('requestId')}")
    return "\n".join(lines) if lines else "no ref changes recorded"


def _value(v: Any) -> str:
    if v is None:
        return "-"
    text = str(v)
    return text[:12] if len(text) in (40, 64) else text
