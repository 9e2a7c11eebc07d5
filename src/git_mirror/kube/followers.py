"""Followers on a kubernetes node: Tekton trigger, Argo CD closeout, run cleanup (R7-R12).

:class:`KubeBackend` serves executor ``kubernetes`` (the CLI registers it with
:func:`git_mirror.follower.backends.register_backend`). The mirror's refs live in
the node's PVC, so everything that reads or writes them runs as a Job
(:func:`git_mirror.kube.jobs.run_job`); the PipelineRuns and the Argo CD Application are read
and written through the client seam by this process.

``follower trigger --confirm``:

1. a sync Job: the controlled sync; its result names the branch tip and its snapshot ref;
2. a flush Job of the follower's lane: what an earlier run left in the mirror goes first;
3. a PipelineRun (:mod:`git_mirror.kube.tekton`) whose only source is that snapshot ref;
4. with ``--wait``: the PipelineRun is watched (bounded by its own timeout plus scheduling
   time); when it succeeded, a flush Job sends its lane commits upstream; when it failed,
   nothing is flushed and a status Job reports ``pendingFlush``.

Without ``--wait`` the command returns after step 3 (``run.status: "running"``); the flush
after the run is then left for ``flush --confirm --wait`` (closeout reports ``pendingFlush``
until it ran) or the next trigger's step 2. One run at a time: a trigger while a PipelineRun of
the follower is running is error ``busy``. Each trigger deletes the follower's finished
PipelineRuns beyond the newest :data:`KEEP_RUNS`, so normal following needs no cleanup.
Without ``--confirm`` nothing is created: the output shows the PipelineRun and the Jobs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from git_mirror.errors import BusyError, Code, GitMirrorError, UsageError
from git_mirror.follower.follower import describe_trigger, get_follower, lane_ref
from git_mirror.follower.results import (
    BranchView,
    CleanupResult,
    CloseoutHistory,
    CloseoutResult,
    FlushState,
    FlushSummary,
    FollowerItem,
    FollowerList,
    FollowerStatus,
    KeptRun,
    LaneFlags,
    RunStatus,
    SyncSummary,
    TriggerResult,
)
from git_mirror.follower.triggers import NotSupported
from git_mirror.kube import tekton
from git_mirror.kube.jobs import SCHEDULING_SLACK_SECONDS, job_name, run_job
from git_mirror.kube.node import kube_node
from git_mirror.kube.nodestatus import node_status
from git_mirror.kube.render import job_manifest

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.config.models import Follower, TektonSpec
    from git_mirror.kube.client import KubeClient, Manifest

POLL_SECONDS = 2.0
KEEP_RUNS = 30  # finished PipelineRuns kept per follower; older ones go when a run starts
STEPS = ["sync (Job)", "snapshot of the branch tip", "flush lane (Job)",
         "PipelineRun on the snapshot", "flush lane (Job, after a successful run)"]
SHA = re.compile(r"^[0-9a-fA-F]{4,64}$")


def _tekton(cfg: LoadedConfig, fid: str, follower: Follower, node: str) -> TektonSpec:
    from git_mirror.config.models import TektonTrigger

    if not isinstance(follower.trigger, TektonTrigger):
        raise NotSupported(
            f"follower {fid} has an exec trigger ({cfg.where('followers', fid, 'trigger')}), "
            f"which runs on a local node; node {node} runs tekton triggers",
            hint=f"git-mirror --node local follower trigger --follower {fid} --confirm --wait")
    return follower.trigger.tekton


def _cli(node: str) -> str:
    return f"git-mirror --node {node}"


def _client(cfg: LoadedConfig, node: str) -> KubeClient:
    from git_mirror.kube.client import client_for

    return client_for(cfg, node)


def _error_of(result: dict[str, Any], what: str, hint: str) -> GitMirrorError:
    """A Job's failed result as an error (its own code, message and hint)."""
    err = result.get("error") or {}
    return GitMirrorError(f"{what}: {err.get('message') or 'failed without a message'}",
                          code=Code.parse(err.get("code"), Code.JOB_FAILED),
                          hint=err.get("hint") or hint,
                          details={"job": result.get("job")})


def _job_ref(result: dict[str, Any]) -> dict[str, Any] | None:
    """The Job that produced ``result`` (name, namespace, context, status), if one did."""
    job = result.get("job")
    return dict(job) if isinstance(job, dict) else None


def _logs_command(cfg: LoadedConfig, node: str, namespace: str, run: str) -> str:
    """The kubectl command that shows a PipelineRun's step logs (every step is a container)."""
    context = kube_node(cfg, node).context
    ctx = f" --context {context}" if context else ""
    return (f"kubectl{ctx} -n {namespace} logs -l {tekton.L_TEKTON_RUN}={run} "
            "--all-containers --prefix")


def _tip_of(synced: dict[str, Any], rid: str, branch: str) -> tuple[str, str] | None:
    """The branch tip and its snapshot ref, as a sync Job's result names them."""
    for repo in synced.get("repositories") or []:
        if repo.get("id") == rid:
            for src in repo.get("sources") or []:
                if src.get("branch") == branch:
                    return str(src["commit"]), str(src["snapshotRef"])
    return None


def _prune(client: KubeClient, ns: str, node: str, fid: str) -> list[str]:
    """Delete the follower's finished PipelineRuns beyond the newest :data:`KEEP_RUNS`."""
    runs = tekton.follower_runs(client, ns, node, fid)
    finished = [r for r in runs if tekton.run_state(r) != tekton.RUNNING]
    gone = []
    for run in finished[:-KEEP_RUNS] if KEEP_RUNS > 0 else finished:
        for api, kind, rns, name in tekton.run_objects(client, run):
            client.delete(api, kind, name, rns)
        gone.append(run["metadata"]["name"])
    return gone


@dataclass
class _Trigger:
    """One confirmed ``follower trigger`` on a kubernetes node: its steps, each filling
    ``res`` as it goes (a failed step raises; what was done so far stays in ``res``)."""

    cfg: LoadedConfig
    client: KubeClient
    node: str
    fid: str
    follower: Follower
    spec: TektonSpec
    ns: str
    res: TriggerResult

    def run(self, *, wait: bool) -> None:
        """Sync, flush the lane, start the PipelineRun; with ``wait``, watch it and flush."""
        earlier = self._check_idle()
        commit, snapshot = self._sync()
        self._flush_lane(after=False)
        lane_before = self.res.lane_tip
        if earlier:
            # The previous run went on without --wait: what it published is in the lane now.
            tekton.record_published(self.client, earlier[-1], lane_before)
        self.res.details["pruned"] = _prune(self.client, self.ns, self.node, self.fid)
        name = self._start(commit, snapshot, lane_before)
        if not wait:
            cli = _cli(self.node)
            self.res.details["hint"] = f"{cli} follower status --follower {self.fid} --wait"
            self.res.details["note"] = (
                "the run goes on in the cluster; after it succeeded, "
                f"`{cli} flush --confirm --wait` sends its lane commits upstream (closeout "
                "reports pendingFlush until then)")
            return
        run = self._watch(name)
        try:
            self._flush_lane(after=True)
        finally:
            # The flush does not move the mirror's lane: its tip is what the run published.
            self._record_published(run)

    def _check_idle(self) -> list[Manifest]:
        """The follower's PipelineRuns; ``busy`` while one of them is running."""
        earlier = tekton.follower_runs(self.client, self.ns, self.node, self.fid)
        live = [r for r in earlier if tekton.run_state(r) == tekton.RUNNING]
        if live:
            name = live[-1]["metadata"]["name"]
            raise BusyError(f"follower {self.fid} has a run in progress (PipelineRun "
                            f"{self.ns}/{name})",
                            hint=f"{_cli(self.node)} follower status --follower {self.fid} --wait")
        return earlier

    def _sync(self) -> tuple[str, str]:
        """The sync Job; the branch tip and its snapshot ref it made."""
        rid = self.follower.repository
        synced = run_job(self.cfg, node=self.node, operation="sync",
                         args=["--repo", rid, "--confirm", "--wait"], confirm=True, wait=True,
                         client=self.client)
        self.res.details["jobs"].append(_job_ref(synced))
        self.res.sync = SyncSummary.from_job(synced)
        if not synced.get("ok"):
            raise _error_of(synced, "the sync before the run failed",
                            f"{_cli(self.node)} sync --repo {rid} --confirm --wait")
        tip = _tip_of(synced, rid, self.follower.branch)
        if tip is None:
            raise GitMirrorError(f"branch {self.follower.branch} of {rid} does not exist "
                                 "upstream: there is nothing to build", code=Code.NO_BRANCH,
                                 hint=f"{_cli(self.node)} status --repo {rid}")
        self.res.commit, self.res.snapshot_ref = tip
        return tip

    def _flush_lane(self, *, after: bool) -> None:
        """One flush Job of the follower's lane, before the run or after it succeeded."""
        rid, lane = self.follower.repository, self.follower.lane
        result = run_job(self.cfg, node=self.node, operation="flush",
                         args=["--repo", rid, "--confirm", "--wait"], confirm=True,
                         wait=True, global_args=["--lane", lane], client=self.client)
        self.res.details["jobs"].append(_job_ref(result))
        summary = FlushSummary.from_job(result)
        if after:
            self.res.flush_after = summary
        else:
            self.res.flush_before = summary
        self.res.take_flags(LaneFlags.from_result(result, rid, lane))
        if not result.get("ok"):
            failed = (f"run {self.res.details['pipelineRun']['name']} succeeded, but the flush "
                      "after it failed" if after else "the flush before the run failed")
            raise _error_of(result, failed, f"{_cli(self.node)} --lane {lane} flush --repo "
                                            f"{rid} --confirm --wait")

    def _start(self, commit: str, snapshot: str, lane_before: str | None) -> str:
        """Create the PipelineRun whose only source is ``snapshot``; its name."""
        name = tekton.run_name(self.fid, commit)
        manifest = tekton.pipeline_run_manifest(
            self.cfg, self.node, self.fid, self.follower, self.spec, name=name,
            snapshot_ref=snapshot, commit=commit, lane_ref=self.res.lane_ref,
            lane_before=lane_before)
        created = self.client.create(manifest)
        self.res.run = tekton.run_summary(created).to_json()
        self.res.details["pipelineRun"] = {"name": name, "namespace": self.ns,
                                           "params": manifest["spec"]["params"]}
        return name

    def _watch(self, name: str) -> Manifest:
        """Wait for the PipelineRun; ``timeout`` when it runs on, ``run-failed`` when it
        failed (with the lane flags read by a status, and what it published)."""
        limit = tekton.timeout_seconds(self.spec.timeout) + SCHEDULING_SLACK_SECONDS
        run = tekton.wait_for_run(self.client, name, self.ns, timeout=limit, poll=POLL_SECONDS)
        summary = tekton.run_summary(run)
        self.res.run = summary.to_json()
        cli = _cli(self.node)
        if summary.status == tekton.RUNNING:
            raise GitMirrorError(f"PipelineRun {self.ns}/{name} did not finish within "
                                 f"{int(limit)} s", code=Code.TIMEOUT,
                                 hint=f"{cli} follower status --follower {self.fid} --wait")
        if summary.status == tekton.FAILED:
            rid = self.follower.repository
            status = node_status(self.cfg, self.node, repo=rid, client=self.client)
            if _job_ref(status) is not None:  # read from serve: no Job ran
                self.res.details["jobs"].append(_job_ref(status))
            self.res.take_flags(LaneFlags.from_result(status, rid, self.follower.lane))
            self._record_published(run)
            reason = summary.reason or "Failed"
            raise GitMirrorError(
                f"PipelineRun {self.ns}/{name} failed ({reason}): {summary.message or ''}"
                .rstrip(": "), code=Code.RUN_FAILED,
                hint=f"{cli} cleanup-runs --pipeline-run {name} --confirm && "
                     f"{cli} follower trigger --follower {self.fid} --confirm --wait",
                details={"run": name, "logs": _logs_command(self.cfg, self.node, self.ns, name)})
        return run

    def _record_published(self, run: Manifest) -> None:
        """Record on the PipelineRun, and show, the lane commit it published."""
        assert self.res.run is not None
        self.res.run["publishedLaneCommit"] = tekton.record_published(self.client, run,
                                                                      self.res.lane_tip)


class KubeBackend:
    """The follower commands on a kubernetes node."""

    # -- trigger ----------------------------------------------------------------------------
    def trigger(self, cfg: LoadedConfig, fid: str, *, confirm: bool, wait: bool,
                node: str) -> TriggerResult:
        """``follower trigger`` (see the module docstring); a plan without ``confirm``."""
        follower = get_follower(cfg, fid)
        spec = _tekton(cfg, fid, follower, node)
        ns = tekton.run_namespace(cfg, node, spec)
        url = tekton.service_url(cfg, node, follower.repository)
        res = TriggerResult(
            node=node, follower=fid, repository=follower.repository, branch=follower.branch,
            lane=follower.lane, lane_ref=lane_ref(cfg, follower),
            trigger=describe_trigger(follower), dry_run=not confirm, push_url=url,
            executor="kubernetes", repo_url=url,
            run={"name": None, "namespace": ns, "status": "not-started"},
            details={"jobs": [], "steps": STEPS, "wait": wait})
        if not confirm:
            self._plan(cfg, fid, follower, spec, node, res)
            return res
        client = _client(cfg, node)
        try:
            _Trigger(cfg, client, node, fid, follower, spec, ns, res).run(wait=wait)
        except GitMirrorError as exc:
            res.error = exc
        return res

    @staticmethod
    def _plan(cfg: LoadedConfig, fid: str, follower: Follower, spec: TektonSpec,
              node: str, res: TriggerResult) -> None:
        """The dry run: no API call at all; the commit is known only after the sync."""
        from git_mirror.mirror.layout import RepoLayout

        layout = RepoLayout.of(cfg, follower.repository)
        source = layout.source_for(follower.branch)
        group = source.group if source else follower.repository
        placeholder = "<commit>"
        snap = layout.snapshot_ref(group, follower.branch, placeholder)
        manifest = tekton.pipeline_run_manifest(
            cfg, node, fid, follower, spec, name=tekton.run_name(fid, "0000000"),
            snapshot_ref=snap, commit=placeholder, lane_ref=res.lane_ref)
        manifest["metadata"]["labels"][tekton.L_COMMIT] = placeholder
        target = kube_node(cfg, node)
        rid = follower.repository
        lane_args = ["--lane", follower.lane]
        res.details["wouldCreate"] = manifest
        res.details["wouldRunJobs"] = [
            job_manifest(cfg, node, "sync", ["--repo", rid, "--confirm", "--wait"],
                         job_name(node, target.namespace, "sync")),
            job_manifest(cfg, node, "flush", ["--repo", rid, "--confirm", "--wait"],
                         job_name(node, target.namespace, "flush"), global_args=lane_args)]
        res.details["note"] = ("dry run: nothing created; the sync Job finds the branch tip, "
                               f"and {placeholder} stands for it")
        res.details["hint"] = f"{_cli(node)} follower trigger --follower {fid} --confirm --wait"

    # -- list and status ----------------------------------------------------------------------
    def follower_list(self, cfg: LoadedConfig, *, node: str, only: str | None) -> FollowerList:
        """The declared followers with the last PipelineRun of each tekton one."""
        from git_mirror.follower.triggers import trigger_kind

        if only is not None:
            get_follower(cfg, only)
        client = _client(cfg, node)
        items = []
        for fid, f in sorted(cfg.model.followers.items()):
            if only is not None and fid != only:
                continue
            last = None
            if trigger_kind(f) == "tekton":
                ns = tekton.run_namespace(cfg, node, _tekton(cfg, fid, f, node))
                runs = tekton.follower_runs(client, ns, node, fid)
                last = tekton.run_summary(runs[-1]).to_json() if runs else None
            items.append(FollowerItem(fid, f.repository, f.branch, f.lane, trigger_kind(f), last))
        return FollowerList(node, items, executor="kubernetes")

    def status(self, cfg: LoadedConfig, fid: str, *, node: str, wait: bool) -> FollowerStatus:
        """The follower's PipelineRuns (waiting for the last one with ``wait``), and its
        branch and lane as the node's status says."""
        follower = get_follower(cfg, fid)
        spec = _tekton(cfg, fid, follower, node)
        ns = tekton.run_namespace(cfg, node, spec)
        client = _client(cfg, node)
        runs = tekton.follower_runs(client, ns, node, fid)
        last = runs[-1] if runs else None
        if last is not None and wait and tekton.run_state(last) == tekton.RUNNING:
            limit = tekton.timeout_seconds(spec.timeout) + SCHEDULING_SLACK_SECONDS
            last = tekton.wait_for_run(client, last["metadata"]["name"], ns, timeout=limit,
                                       poll=POLL_SECONDS)
            runs = tekton.follower_runs(client, ns, node, fid)
        rid = follower.repository
        status = node_status(cfg, node, repo=rid, client=client)
        if not status.get("ok", True) and status.get("error"):
            raise _error_of(status, f"status of node {node}", f"{_cli(node)} status")
        repo: dict[str, Any] = next(
            (r for r in status.get("repositories") or [] if r.get("id") == rid), {})
        view = BranchView.of(repo, follower.branch, follower.lane, flags=status)
        return FollowerStatus(
            node=node, executor="kubernetes", follower=fid, repository=rid,
            branch=follower.branch, trigger=describe_trigger(follower), view=view,
            lane=view.lane or {"name": follower.lane, "ref": lane_ref(cfg, follower)},
            last_run=tekton.run_summary(last).to_json() if last is not None else None,
            running=[r["metadata"]["name"] for r in runs
                     if tekton.run_state(r) == tekton.RUNNING],
            runs=len(runs), job=status.get("job"), status_via=status.get("via"),
            config_applied=status.get("configApplied"))

    # -- closeout -----------------------------------------------------------------------------
    def closeout(self, cfg: LoadedConfig, fid: str, merge_commit: str, *,
                 pipeline_run: str | None, node: str) -> CloseoutResult:
        """See :func:`git_mirror.kube.closeout.closeout`."""
        from git_mirror.kube.closeout import closeout

        follower = get_follower(cfg, fid)
        spec = _tekton(cfg, fid, follower, node)
        if not SHA.match(merge_commit):
            raise UsageError(f"--merge-commit {merge_commit!r} is not a commit id (4 to 64 hex "
                             "digits)", hint="pass the PR's merge commit SHA")
        return closeout(cfg, fid, follower, spec, merge_commit, pipeline_run=pipeline_run,
                        node=node, client=_client(cfg, node))

    def closeout_history(self, cfg: LoadedConfig, fid: str, merge_commit: str | None, *,
                         node: str) -> CloseoutHistory:
        """The node's closeout ledger (in its PVC), read by a short Job."""
        follower = get_follower(cfg, fid)
        _tekton(cfg, fid, follower, node)
        args = ["--follower", fid, "--history"]
        if merge_commit is not None:
            args += ["--merge-commit", merge_commit]
        result = run_job(cfg, node=node, operation="closeout", args=args, confirm=True,
                         wait=True, client=_client(cfg, node))
        if "closeouts" not in result:
            raise _error_of(result, f"the closeout ledger of node {node}",
                            f"{_cli(node)} status")
        return CloseoutHistory.from_json(result)

    def run_status(self, cfg: LoadedConfig, fid: str, name: str, *, node: str,
                   wait: bool) -> RunStatus:
        """One PipelineRun as observed now: the run, and what the mirror says of its commits
        (a closeout Job that judges it alone and records nothing)."""
        import json

        from git_mirror.kube.closeout import find_run

        follower = get_follower(cfg, fid)
        spec = _tekton(cfg, fid, follower, node)
        client = _client(cfg, node)
        run = find_run(cfg, client, name, node)
        summary = tekton.run_summary(run)
        if summary.follower != fid:
            raise GitMirrorError(f"PipelineRun {summary.namespace}/{name} belongs to follower "
                                 f"{summary.follower}, not {fid}", code=Code.NOT_FOUND,
                                 hint=f"{_cli(node)} follower list")
        if wait and summary.status == tekton.RUNNING:
            limit = tekton.timeout_seconds(spec.timeout) + SCHEDULING_SLACK_SECONDS
            summary = tekton.run_summary(tekton.wait_for_run(
                client, name, str(summary.namespace), timeout=limit, poll=POLL_SECONDS))
        commit = summary.commit or "0000000"
        mirror = run_job(cfg, node=node, operation="closeout",
                         args=["--follower", fid, "--merge-commit", commit, "--mirror-only",
                               "--no-record", "--pipeline-run", name, "--runs-json",
                               json.dumps([tekton.run_summary(r).for_job() for r in
                                           tekton.follower_runs(client, str(summary.namespace),
                                                                node, fid)],
                                          separators=(",", ":"))],
                         confirm=True, wait=True, client=client)
        if "checks" not in mirror:
            raise _error_of(mirror, f"the mirror's view of {name} on node {node}",
                            f"{_cli(node)} status")
        judged = mirror.get("pipelineRun") or {}
        published = judged.get("publishedLaneCommit")
        lane = mirror.get("lane") or {}
        if not published:
            state = "not-published"
        elif mirror.get("deployedContainsRun"):
            state = "flushed"
        else:
            state = "pending" if mirror.get("pendingFlush") else "superseded"
        return RunStatus(
            node=node, executor="kubernetes", follower=fid, repository=follower.repository,
            branch=follower.branch, lane=lane,
            pipeline_run={**summary.to_json(), "publishedLaneCommit": published,
                          "publishedLaneCommitSource": judged.get("publishedLaneCommitSource")},
            flush=FlushState(state, lane.get("githubCommit"), lane.get("mirrorCommit"),
                             mirror.get("deployedContainsRun") if published else None,
                             mirror.get("pendingFlush"), local=False),
            current_branch_tip=mirror.get("branchTip"),
            pending_flush=mirror.get("pendingFlush"), github_in_sync=mirror.get("githubInSync"),
            job=mirror.get("job"))

    # -- cleanup ------------------------------------------------------------------------------
    def cleanup_runs(self, cfg: LoadedConfig, name: str, *, confirm: bool,
                     node: str) -> CleanupResult:
        """Delete a finished PipelineRun and what Tekton made for it (TaskRuns, pods)."""
        from git_mirror.kube.closeout import find_run

        client = _client(cfg, node)
        run = find_run(cfg, client, name, node)
        summary = tekton.run_summary(run)
        if summary.status == tekton.RUNNING:
            raise GitMirrorError(f"PipelineRun {summary.namespace}/{name} is still running",
                                 code=Code.RUN_RUNNING,
                                 hint=f"{_cli(node)} follower status --follower "
                                      f"{summary.follower} --wait")
        objects = tekton.run_objects(client, run)
        listed = [f"{api} {kind} {ns}/{n}" for api, kind, ns, n in objects]
        out = CleanupResult(node=node, executor="kubernetes", dry_run=not confirm,
                            follower=summary.follower,
                            pipeline_run={"name": name, "status": summary.status,
                                          "namespace": summary.namespace},
                            would_remove=[] if confirm else listed)
        if confirm:
            for api, kind, ns, n in objects:
                client.delete(api, kind, n, ns)
            out.removed = listed
            out.next = (f"{_cli(node)} follower trigger --follower {summary.follower} "
                        "--confirm --wait")
        return out

    def cleanup_state(self, cfg: LoadedConfig, fid: str, *, confirm: bool,
                      node: str) -> CleanupResult:
        """Delete the follower's finished PipelineRuns; a running one stays."""
        follower = get_follower(cfg, fid)
        spec = _tekton(cfg, fid, follower, node)
        ns = tekton.run_namespace(cfg, node, spec)
        client = _client(cfg, node)
        kept, doomed = [], []
        for run in tekton.follower_runs(client, ns, node, fid):
            if tekton.run_state(run) == tekton.RUNNING:
                kept.append(KeptRun(run["metadata"]["name"], "running"))
            else:
                doomed.extend(tekton.run_objects(client, run))
        listed = [f"{api} {kind} {rns}/{n}" for api, kind, rns, n in doomed]
        out = CleanupResult(node=node, executor="kubernetes", dry_run=not confirm,
                            follower=fid, would_remove=[] if confirm else listed, kept=kept)
        if confirm:
            for api, kind, rns, n in doomed:
                client.delete(api, kind, n, rns)
            out.removed = listed
        return out
