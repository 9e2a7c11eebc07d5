"""The follower commands (CONTRACT section 3): ``follower list|status|trigger|cleanup-state``,
``closeout`` and ``cleanup-runs``.

Registered on the main group by :func:`register`. Each command picks the backend of the
node's executor (:mod:`git_mirror.follower.backends`) and renders its typed result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from git_mirror.cli.human import push_line
from git_mirror.cli.main import Ctx, Outcome, confirm_options, finish, pass_ctx, want_confirm
from git_mirror.cli.output import short, table

if TYPE_CHECKING:
    from git_mirror.follower.backends import FollowerBackend
    from git_mirror.follower.results import CloseoutResult


def _backend(ctx: Ctx, command: str, args: str = "") -> FollowerBackend:
    """The backend of the node's executor; ``not-supported`` for an executor without one.

    The kubernetes backend is wired here, when a follower command runs, not when the CLI
    starts: its package costs every other command's start-up time. Its import is a normal
    one: a kube package that cannot be imported fails the command.
    """
    from git_mirror.follower.backends import backend_for, register_backend
    from git_mirror.kube.followers import KubeBackend

    register_backend("kubernetes", KubeBackend())
    return backend_for(ctx.executor(), ctx.node_name(), command, args)


def register(cli: click.Group) -> None:
    """Add the follower, closeout and cleanup-runs commands to ``cli``."""
    cli.add_command(follower)
    cli.add_command(closeout)
    cli.add_command(cleanup_runs)


@click.group()
def follower() -> None:
    """Branch followers: sync, snapshot, trigger, flush (R7, R10, R11)."""


@follower.command("list")
@click.option("--follower", "fid", metavar="ID", help="Only this follower.")
@pass_ctx
def follower_list(ctx: Ctx, fid: str | None) -> None:
    """List the declared followers with their last run."""
    def op() -> Outcome:
        backend = _backend(ctx, "follower list")
        return backend.follower_list(ctx.cfg(), node=ctx.node_name(), only=fid)
    finish(ctx, op, _list_text)


@follower.command("status")
@click.option("--follower", "fid", required=True, metavar="ID", help="The follower's id.")
@click.option("--pipeline-run", metavar="NAME", help="One run, as observed now.")
@click.option("--wait", is_flag=True, help="First wait until the last run has finished.")
@pass_ctx
def follower_status(ctx: Ctx, fid: str, pipeline_run: str | None, wait: bool) -> None:
    """A follower's last run, branch tip, snapshot and lane, from the cache; with
    --pipeline-run, that one run as observed now."""
    def op() -> Outcome:
        backend = _backend(ctx, "follower status", f"--follower {fid}")
        if pipeline_run is not None:
            return backend.run_status(ctx.cfg(), fid, pipeline_run, node=ctx.node_name(),
                                      wait=wait)
        return backend.status(ctx.cfg(), fid, node=ctx.node_name(), wait=wait)
    finish(ctx, op, _status_text)


@follower.command("trigger")
@click.option("--follower", "fid", required=True, metavar="ID", help="The follower's id.")
@click.option("--wait", is_flag=True, help="Run in the foreground and wait for the outcome.")
@confirm_options
@pass_ctx
def follower_trigger(ctx: Ctx, fid: str, wait: bool, dry_run: bool, confirm: bool) -> None:
    """Sync, snapshot the branch tip, run the trigger on that snapshot, flush (dry run unless
    --confirm; in the background unless --wait)."""
    def op() -> Outcome:
        do = want_confirm(dry_run, confirm)
        backend = _backend(ctx, "follower trigger", f"--follower {fid} --confirm --wait")
        return backend.trigger(ctx.cfg(), fid, confirm=do, wait=wait,
                               node=ctx.node_name())
    finish(ctx, op, _trigger_text)


@follower.command("cleanup-state")
@click.option("--follower", "fid", required=True, metavar="ID", help="The follower's id.")
@click.option("--wait", is_flag=True, hidden=True, expose_value=False,
              help="Accepted for symmetry; cleanup never waits.")
@confirm_options
@pass_ctx
def follower_cleanup_state(ctx: Ctx, fid: str, dry_run: bool, confirm: bool) -> None:
    """Remove a follower's stale state: finished runs, logs, checkouts (dry run unless
    --confirm)."""
    def op() -> Outcome:
        do = want_confirm(dry_run, confirm)
        backend = _backend(ctx, "follower cleanup-state", f"--follower {fid}")
        return backend.cleanup_state(ctx.cfg(), fid, confirm=do, node=ctx.node_name())
    finish(ctx, op, _cleanup_text)


@click.command("closeout")
@click.option("--follower", "fid", required=True, metavar="ID", help="The follower's id.")
@click.option("--merge-commit", metavar="SHA", help="The PR's merge commit.")
@click.option("--pipeline-run", metavar="NAME",
              help="The run to judge (default: the latest succeeded run that built the merge).")
@click.option("--history", is_flag=True,
              help="List the closeout ledger of the follower (of --merge-commit, if given).")
@click.option("--mirror-only", is_flag=True, hidden=True,
              help="Judge on this node's own cache with the runs given (a kubernetes node's "
                   "closeout Job runs this).")
@click.option("--runs-json", hidden=True, help="The follower's runs, oldest first (JSON).")
@click.option("--deployed", hidden=True, help="The deployed revision (Argo CD's).")
@click.option("--deployed-source", hidden=True, help="Where the deployed revision comes from.")
@click.option("--no-record", is_flag=True, hidden=True, help="Do not append to the ledger.")
@pass_ctx
def closeout(ctx: Ctx, fid: str, merge_commit: str | None, pipeline_run: str | None,
             history: bool, mirror_only: bool, runs_json: str | None, deployed: str | None,
             deployed_source: str | None, no_record: bool) -> None:
    """Prove a delivery from the cache: the branch tip and the judged run's built commit
    contain the merge commit, the run succeeded, the deployed revision contains the lane commit
    it published, pendingFlush is false and githubInSync is true (R10, R12). Every result is
    appended to a ledger that --history lists."""
    def op() -> Outcome:
        from git_mirror.errors import UsageError

        if history:
            backend = _backend(ctx, "closeout", f"--follower {fid} --history")
            return backend.closeout_history(ctx.cfg(), fid, merge_commit,
                                            node=ctx.node_name())
        if merge_commit is None:
            raise UsageError("closeout needs --merge-commit SHA (or --history)",
                             hint=f"git-mirror closeout --follower {fid} --merge-commit SHA")
        if mirror_only:
            return _mirror_only(ctx, fid, merge_commit, pipeline_run, runs_json, deployed,
                                deployed_source, record=not no_record)
        backend = _backend(ctx, "closeout", f"--follower {fid} --merge-commit {merge_commit}")
        return backend.closeout(ctx.cfg(), fid, merge_commit, pipeline_run=pipeline_run,
                                node=ctx.node_name())
    finish(ctx, op, _closeout_text)


def _mirror_only(ctx: Ctx, fid: str, merge_commit: str, pipeline_run: str | None,
                 runs_json: str | None, deployed: str | None, deployed_source: str | None, *,
                 record: bool) -> CloseoutResult:
    """``closeout --mirror-only``: the local proof on this node's cache, with the runs and
    the deployed revision a kubernetes node's closeout passes (its Job runs this)."""
    import json

    from git_mirror.errors import UsageError
    from git_mirror.follower.closeout import closeout as local_closeout

    if ctx.executor() != "local":
        raise UsageError("--mirror-only reads the cache of the node it runs on: a "
                         "local node, or a kubernetes node's own pod",
                         hint=f"git-mirror --node {ctx.node_name()} closeout "
                              f"--follower {fid} --merge-commit {merge_commit}")
    runs = None
    if runs_json is not None:
        try:
            runs = json.loads(runs_json)
        except ValueError as exc:
            raise UsageError(f"--runs-json is not JSON: {exc}", hint="git-mirror --help") from exc
        if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
            raise UsageError("--runs-json must be a list of objects", hint="git-mirror --help")
    return local_closeout(ctx.cfg(), fid, merge_commit, node=ctx.node_name(),
                          pipeline_run=pipeline_run, runs=runs, deployed=deployed,
                          deployed_source=deployed_source, record=record,
                          run_label="PipelineRun" if runs is not None else "run")


@click.command("cleanup-runs")
@click.option("--pipeline-run", "name", required=True, metavar="NAME", help="The run to remove.")
@confirm_options
@pass_ctx
def cleanup_runs(ctx: Ctx, name: str, dry_run: bool, confirm: bool) -> None:
    """Remove a finished run's record, log and checkout before a retry (R9; dry run unless
    --confirm)."""
    def op() -> Outcome:
        do = want_confirm(dry_run, confirm)
        backend = _backend(ctx, "cleanup-runs", f"--pipeline-run {name} --confirm")
        return backend.cleanup_runs(ctx.cfg(), name, confirm=do, node=ctx.node_name())
    finish(ctx, op, _cleanup_text)


# -- human text ---------------------------------------------------------------------------

def _b(value: Any) -> str:
    return "-" if value is None else str(value).lower()


def _list_text(data: dict[str, Any]) -> str:
    rows = [[f["id"], f["repository"], f["branch"], f["lane"], f["trigger"],
             (f["lastRun"] or {}).get("name") or "-", (f["lastRun"] or {}).get("status") or "-"]
            for f in data["followers"]]
    if not rows:
        return "no followers declared (followers: in the config)"
    return table(rows, ["follower", "repository", "branch", "lane", "trigger", "last run",
                        "status"])


def _status_text(data: dict[str, Any]) -> str:
    if "currentBranchTip" in data:
        return _run_status_text(data)
    run = data.get("lastRun") or {}
    lane = data.get("lane") or {}
    out = [f"follower {data['follower']}  {data['repository']} {data['branch']} -> lane "
           f"{lane.get('name')} ({lane.get('ref')})  trigger {data['trigger']['kind']}",
           f"  branch tip {short(data['branchTip'])}  snapshot {data['snapshotRef'] or '-'}",
           f"  lane mirror {short(lane.get('mirrorCommit'))}  github(stage) "
           f"{short(lane.get('githubCommit'))}",
           f"  pendingFlush={_b(data['pendingFlush'])}  githubInSync={_b(data['githubInSync'])}"]
    if run:
        out.append(f"  last run {run.get('name')}: {run.get('status')}"
                   + (f" (exit {run['exitCode']})" if run.get("exitCode") is not None else "")
                   + (f"  log {run['log']}" if run.get("log") else "")
                   + (f" ({run['reason']})" if run.get("reason") else ""))
    else:
        out.append("  no run yet")
    return "\n".join(out)


def _trigger_text(data: dict[str, Any]) -> str:
    run = data["run"]
    if data["dryRun"]:
        head = "follower trigger (dry run: nothing synced, run or flushed; add --confirm)"
        return "\n".join([head, f"  would: {', '.join(data.get('steps', []))}",
                          f"  trigger {data['trigger']}",
                          f"  cached tip {short(data['commit'])}  "
                          f"snapshot {data['snapshotRef'] or '-'}"])
    out = [f"follower trigger {data['follower']}: run {run['name'] or '-'} {run['status']}",
           f"  snapshot {data['snapshotRef'] or '-'}  commit {short(data['commit'])}"]
    if run.get("log"):
        out.append(f"  log {run['log']}")
    after = data.get("flushAfter") or {}
    out += [push_line(p, "flushed", named=False) for p in after.get("pushed") or []]
    if data.get("hint"):
        out.append(f"  follow it: {data['hint']}")
    out.append(f"  lane tip {short(data['laneTip'])}  pendingFlush={_b(data['pendingFlush'])}  "
               f"githubInSync={_b(data['githubInSync'])}")
    return "\n".join(out)


def _run_status_text(data: dict[str, Any]) -> str:
    run = data["pipelineRun"]
    flush = data.get("flush") or {}
    return "\n".join([
        f"run {run['name']} of follower {data['follower']}: {run['status']}"
        + (f" ({run['reason']})" if run.get("reason") else ""),
        f"  snapshot {run.get('snapshotRef') or '-'}",
        f"  built commit {run.get('commit') or '-'}",
        f"  published lane commit {run.get('publishedLaneCommit') or '-'}",
        f"  flush: {flush.get('state') or '-'}  "
        f"(upstream lane {short(flush.get('upstreamLaneCommit'))})",
        f"  current branch tip {short(data.get('currentBranchTip'))} (now; not this run's source)"])


def _history_text(data: dict[str, Any]) -> str:
    rows = [[e.get("at") or "-", short(e.get("mergeCommit")),
             (e.get("pipelineRun") or {}).get("name") or "-", short(e.get("syncRevision")),
             "ok" if e.get("ok") else "FAILED"] for e in data["closeouts"]]
    if not rows:
        return f"no closeout of {data['follower']} on record ({data['ledger']})"
    return table(rows, ["at", "merge", "run", "deployed", "result"])


def _closeout_text(data: dict[str, Any]) -> str:
    if "closeouts" in data:
        return _history_text(data)
    run = data["pipelineRun"]
    out = [f"closeout {data['follower']}: {'OK' if data['ok'] else 'FAILED'}",
           f"  merge commit {data['mergeCommit']}  branch tip {short(data['branchTip'])}",
           f"  run {run['name'] or '-'} {run['status'] or '-'}  built {short(run.get('commit'))}"
           f"  published {short(run.get('publishedLaneCommit'))}",
           f"  deployed {short(data['syncRevision'])} ({data.get('syncRevisionSource') or '-'})"]
    out += [f"  [{'pass' if c['ok'] else 'FAIL'}] {c['name']}: {c['message']}"
            for c in data["checks"]]
    return "\n".join(out)


def _cleanup_text(data: dict[str, Any]) -> str:
    what = (data.get("pipelineRun", {}).get("name") if "pipelineRun" in data
            else data.get("follower"))
    if data["dryRun"]:
        paths = data["wouldRemove"]
        out = [f"cleanup {what} (dry run: nothing removed; add --confirm): {len(paths)} path(s)"]
        out += [f"  would remove {p}" for p in paths]
    else:
        paths = data["removed"]
        out = [f"cleanup {what}: removed {len(paths)} path(s)"] + [f"  removed {p}" for p in paths]
    out += [f"  kept {k['run']} ({k['reason']})" for k in data.get("kept", [])]
    return "\n".join(out)
