"""``git-mirror``: the command line (CONTRACT section 3).

Every command parses its options, calls one operation, and renders the result object with
:mod:`git_mirror.cli.output`. Heavy modules are imported inside the commands, so that the
process start-up stays close to the interpreter's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import click

from git_mirror import __version__
from git_mirror.errors import Code

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig


class Rendered(Protocol):
    """A result object: an operation's outcome, serialised only here, at the edge."""

    def to_json(self) -> dict[str, Any]:
        """The command's JSON object."""


# What a command's body hands to :func:`finish`: a result object, or the JSON object itself
# where there is nothing to type (a command that only assembles what it says, and the
# results of a node's Jobs and of the kube layer, which arrive as JSON).
Outcome = Rendered | dict[str, Any]


@dataclass
class Ctx:
    """The global options, and the config and node they select (loaded once, on demand)."""

    config_path: str | None
    node: str | None
    lane: str | None
    json: bool
    _cfg: LoadedConfig | None = None
    quiet: bool = False

    def cfg(self) -> LoadedConfig:
        """The config of ``--config`` (else its default places), loaded on first use."""
        if self._cfg is None:
            from git_mirror.config import find_config_path, load_config

            self._cfg = load_config(find_config_path(self.config_path))
        return self._cfg

    def node_name(self) -> str:
        """The node of ``--node``, else ``local`` (or the first declared); a usage error when
        it is not declared."""
        from git_mirror.errors import UsageError

        cfg = self.cfg()
        nodes = cfg.model.nodes
        name = self.node or ("local" if not nodes or "local" in nodes else next(iter(nodes)))
        if nodes and name not in nodes:
            raise UsageError(f"node {name!r} is not declared under nodes: in {cfg.path} "
                             f"(declared: {', '.join(nodes)})", hint="git-mirror status")
        if not nodes and name != "local":
            raise UsageError(f"node {name!r} is not declared; without nodes: there is one node, "
                             "local", hint="git-mirror status")
        return name

    def executor(self) -> str:
        """The node's executor; "local" inside the node's own pods, which run it locally."""
        import os

        from git_mirror.kube import NODE_ENV

        nodes = self.cfg().model.nodes
        name = self.node_name()
        if os.environ.get(NODE_ENV) == name:
            return "local"
        return nodes[name].executor if name in nodes else "local"

    def node_job(self, operation: str, args: list[str], *, confirm: bool,
                 wait: bool) -> dict[str, Any]:
        """Run an operation as a Job on this (kubernetes) node; its result, as the Job's JSON.

        ``--lane`` goes along, and a dry run's hint keeps ``--config`` as given.
        """
        from git_mirror.kube.jobs import run_job

        return run_job(self.cfg(), node=self.node_name(), operation=operation, args=args,
                       global_args=["--lane", self.lane] if self.lane else [],
                       hint_args=["--config", self.config_path] if self.config_path else [],
                       confirm=confirm, wait=wait)


def finish(ctx: Ctx, op: Callable[[], Outcome],
           human: Callable[[dict[str, Any]], str] | None = None, *,
           warnings_to_stderr: bool = False) -> NoReturn:
    """Run ``op`` and exit with the code its result (or error) implies.

    The result becomes JSON here, once; ``human`` renders that JSON for people (the same
    renderer serves a local result and a node Job's). With ``warnings_to_stderr``, human mode
    prints the result's warnings on stderr.
    """
    from git_mirror.cli.output import emit, emit_error
    from git_mirror.errors import GitMirrorError, from_os_error

    try:
        outcome = op()
        data = outcome if isinstance(outcome, dict) else outcome.to_json()
    except GitMirrorError as exc:
        sys.exit(emit_error(exc, as_json=ctx.json))
    except OSError as exc:
        # A file system error no operation turned into its own (a read-only root filesystem
        # in a container, a full disk): still the JSON error object, never a traceback;
        # disk-full for a full disk (or quota), else io.
        name = click.get_current_context().info_name or "git-mirror"
        sys.exit(emit_error(from_os_error(exc, doing=f"{name} failed"), as_json=ctx.json))
    except (MemoryError, RecursionError) as exc:
        # Input too big or too deep for what reads it: said as an error, never a traceback.
        name = click.get_current_context().info_name or "git-mirror"
        sys.exit(emit_error(GitMirrorError(
            f"{name} failed: {type(exc).__name__}: the input was too large or too deeply "
            "nested to process", code=Code.RESOURCE, hint="check the config and its secret files, "
            "then run: git-mirror validate"), as_json=ctx.json))
    except (click.ClickException, click.exceptions.Exit):
        raise  # usage errors and exits keep click's handling in main()
    except Exception as exc:  # noqa: BLE001 - the last resort: never a traceback (CONTRACT 5)
        from git_mirror.cli.failures import as_error

        sys.exit(emit_error(as_error(exc), as_json=ctx.json))
    sys.exit(emit(data, as_json=ctx.json, human=human, warnings_to_stderr=warnings_to_stderr))


def confirm_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--confirm`` and ``--dry-run``, for a command that changes something."""
    f = click.option("--confirm", is_flag=True, help="Make the change (default is a dry run).")(f)
    f = click.option("--dry-run", "dry_run", is_flag=True,
                     help="Only show the plan (the default).")(f)
    return f


def jobs_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--jobs N``: how many repositories are worked on at once."""
    return click.option("--jobs", type=click.IntRange(min=1, max=64), metavar="N",
                        help="Repositories worked on at once (default: the config's jobs, 8).")(f)


def jobs_args(jobs: int | None) -> list[str]:
    """``--jobs N`` as passed on to a node's Job (nothing when not given)."""
    return ["--jobs", str(jobs)] if jobs is not None else []


def want_confirm(dry_run: bool, confirm: bool) -> bool:
    """Whether to make the change; ``--dry-run`` with ``--confirm`` is a usage error."""
    from git_mirror.errors import UsageError

    if dry_run and confirm:
        raise UsageError("--dry-run and --confirm exclude each other", hint="pass only one of them")
    return confirm


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="git-mirror")
@click.option("--config", "config_path", metavar="PATH",
              help="Config file (default: $GIT_MIRROR_CONFIG, else ./git-mirror.yaml).")
@click.option("--node", metavar="NODE", help="Node to act on (default: local).")
@click.option("--lane", metavar="LANE", help="Limit lane operations to one lane.")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
@click.option("-v", "--verbose", is_flag=True,
              help="Log what is done (how upstream is reached, ...) to stderr as JSON lines.")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress on stderr (shown on a terminal for sync, flush and apply).")
@click.pass_context
def cli(click_ctx: click.Context, config_path: str | None, node: str | None, lane: str | None,
        as_json: bool, verbose: bool, quiet: bool) -> None:
    """git-mirror: one git mirror as the single source authority for CI/CD."""
    from git_mirror.cli.output import configure_logging

    configure_logging(verbose)
    click_ctx.obj = Ctx(config_path, node, lane, as_json, quiet=quiet)


pass_ctx = click.make_pass_decorator(Ctx)


@cli.command()
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@pass_ctx
def init(ctx: Ctx, force: bool) -> None:
    """Write a commented starter config."""
    def op() -> Outcome:
        from git_mirror.config import find_config_path
        from git_mirror.config.starter import write_starter

        path = write_starter(find_config_path(ctx.config_path), force=force)
        return {"ok": True, "path": str(path), "next": f"git-mirror --config {path} validate"}
    finish(ctx, op)


@cli.command()
@pass_ctx
def validate(ctx: Ctx) -> None:
    """Check the config; nothing else."""
    def op() -> Outcome:
        cfg = ctx.cfg()
        return {"ok": True, "config": {"path": str(cfg.path), "sha256": cfg.sha256},
                "repositories": sorted(cfg.model.repositories),
                "nodes": sorted(cfg.model.nodes) or ["local"],
                "followers": sorted(cfg.model.followers)}
    finish(ctx, op,
           lambda d: f"{d['config']['path']}: valid ({len(d['repositories'])} repositories)")


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the config file."""
    import json

    from git_mirror.config.schema import config_schema

    click.echo(json.dumps(config_schema(), indent=2))


@cli.command()
@click.option("--repo", metavar="ID", help="Only this repository.")
@jobs_option
@pass_ctx
def status(ctx: Ctx, repo: str | None, jobs: int | None) -> None:
    """Report from the cache only: no network (R14)."""
    from git_mirror.cli.human import status_text

    def op() -> Outcome:
        if ctx.executor() == "kubernetes":
            from git_mirror.kube.nodestatus import node_status

            return node_status(ctx.cfg(), ctx.node_name(), repo=repo,
                               global_args=["--lane", ctx.lane] if ctx.lane else [],
                               hint_args=["--config", ctx.config_path] if ctx.config_path else [])
        from git_mirror.mirror.status import status as run

        return run(ctx.cfg(), repo=repo, node=ctx.node_name(), lane=ctx.lane, jobs=jobs)
    finish(ctx, op, status_text, warnings_to_stderr=True)


@cli.command()
@confirm_options
@jobs_option
@pass_ctx
def apply(ctx: Ctx, dry_run: bool, confirm: bool, jobs: int | None) -> None:
    """Converge the node to the YAML (dry run unless --confirm)."""
    from git_mirror.cli.human import apply_text

    def op() -> Outcome:
        do = want_confirm(dry_run, confirm)
        if ctx.executor() == "kubernetes":
            from git_mirror.kube.apply import apply_kubernetes

            return apply_kubernetes(ctx.cfg(), node=ctx.node_name(), confirm=do)
        from git_mirror.cli.progress import watching
        from git_mirror.mirror.local_apply import apply_local

        with watching(ctx, do):
            return apply_local(ctx.cfg(), confirm=do, node=ctx.node_name(), jobs=jobs)
    finish(ctx, op, apply_text)


@cli.command()
@pass_ctx
def render(ctx: Ctx) -> None:
    """Print the manifests apply would apply for a kubernetes node."""
    def op() -> Outcome:
        from git_mirror.kube.render import render_node

        data = render_node(ctx.cfg(), node=ctx.node_name())
        if ctx.json:
            data.pop("yaml")  # the manifests are there as data already
        return data
    # stdout is the manifests only (it goes to kubectl or a file); warnings go to stderr.
    finish(ctx, op, lambda d: d.get("yaml", ""), warnings_to_stderr=True)


def repo_operation(ctx: Ctx, command: str, run: Callable[[bool], Rendered], *,
                   repo: str | None, wait: bool, dry_run: bool, confirm: bool,
                   jobs: int | None) -> NoReturn:
    """The body of ``sync`` and ``flush``: on a kubernetes node a Job of the node runs the
    command; on a local one ``run(confirm)`` does, with progress on a terminal."""
    from git_mirror.cli.human import flush_text, sync_text

    def op() -> Outcome:
        do = want_confirm(dry_run, confirm)
        if ctx.executor() == "kubernetes":
            return ctx.node_job(command, ["--confirm", "--wait",
                                          *(["--repo", repo] if repo else []), *jobs_args(jobs)],
                                confirm=do, wait=wait)
        from git_mirror.cli.progress import watching

        with watching(ctx, do):
            return run(do)
    finish(ctx, op, sync_text if command == "sync" else flush_text, warnings_to_stderr=True)


def repo_operation_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``sync`` and ``flush``: ``--repo``, ``--wait``, ``--confirm``/``--dry-run``
    and ``--jobs``, then the context."""
    f = pass_ctx(f)
    f = jobs_option(f)
    f = confirm_options(f)
    f = click.option("--wait", is_flag=True,
                     help="Wait for a busy repository instead of failing.")(f)
    return click.option("--repo", metavar="ID", help="Only this repository.")(f)


@cli.command()
@repo_operation_options
def sync(ctx: Ctx, repo: str | None, wait: bool, dry_run: bool, confirm: bool,
         jobs: int | None) -> None:
    """Fetch the declared refs from upstream and snapshot every source tip (R4)."""
    def run(do: bool) -> Rendered:
        from git_mirror.mirror.sync import sync as run_sync

        return run_sync(ctx.cfg(), repo=repo, confirm=do, wait=wait, node=ctx.node_name(),
                        lane=ctx.lane, jobs=jobs)
    repo_operation(ctx, "sync", run, repo=repo, wait=wait, dry_run=dry_run, confirm=confirm,
                   jobs=jobs)


@cli.command()
@repo_operation_options
def flush(ctx: Ctx, repo: str | None, wait: bool, dry_run: bool, confirm: bool,
          jobs: int | None) -> None:
    """Push lane refs back upstream, fast-forward only (R5, R15)."""
    def run(do: bool) -> Rendered:
        from git_mirror.mirror.flush import flush as run_flush

        return run_flush(ctx.cfg(), repo=repo, lane=ctx.lane, confirm=do, wait=wait,
                         node=ctx.node_name(), jobs=jobs)
    repo_operation(ctx, "flush", run, repo=repo, wait=wait, dry_run=dry_run, confirm=confirm,
                   jobs=jobs)


@cli.command()
@pass_ctx
def serve(ctx: Ctx) -> None:
    """Serve the mirror to CI over smart HTTP, with scheduled sync, webhooks and metrics."""
    def op() -> Outcome:
        from git_mirror.server.run import serve as run

        return run(ctx.cfg(), node=ctx.node_name())
    finish(ctx, op)


@cli.group()
def snapshots() -> None:
    """List and prune snapshot refs."""


@snapshots.command("list")
@click.option("--repo", metavar="ID")
@click.option("--group", metavar="GROUP")
@click.option("--branch", metavar="BRANCH")
@pass_ctx
def snapshots_list(ctx: Ctx, repo: str | None, group: str | None, branch: str | None) -> None:
    """List snapshot refs."""
    from git_mirror.cli.human import snapshots_text

    def op() -> Outcome:
        from git_mirror.mirror.snapshots import list_snapshots

        return list_snapshots(ctx.cfg(), repo=repo, group=group, branch=branch)
    finish(ctx, op, snapshots_text)


@snapshots.command("prune")
@click.option("--repo", metavar="ID")
@click.option("--wait", is_flag=True)
@click.option("--protect-json", hidden=True,
              help="Snapshot refs that must stay, with the reason (JSON; a kubernetes node's "
                   "prune Job gets those its PipelineRuns use).")
@confirm_options
@pass_ctx
def snapshots_prune(ctx: Ctx, repo: str | None, wait: bool, protect_json: str | None,
                    dry_run: bool, confirm: bool) -> None:
    """Prune snapshots by the declared retention (--confirm to delete); never the ones runs
    use."""
    from git_mirror.cli.human import prune_text

    def op() -> Outcome:
        import json

        from git_mirror.errors import UsageError
        from git_mirror.follower.retention import prune_snapshots

        do = want_confirm(dry_run, confirm)
        if ctx.executor() == "kubernetes":
            from git_mirror.kube.retention import prune_on_node

            return prune_on_node(ctx.cfg(), ctx.node_name(), repo=repo, confirm=do, wait=wait)
        extra: dict[str, str] = {}
        if protect_json is not None:
            try:
                extra = {str(k): str(v) for k, v in dict(json.loads(protect_json)).items()}
            except (ValueError, TypeError) as exc:
                raise UsageError(f"--protect-json is not a JSON object: {exc}",
                                 hint="git-mirror snapshots prune --help") from exc
        return prune_snapshots(ctx.cfg(), repo=repo, confirm=do, wait=wait, protected=extra)
    finish(ctx, op, prune_text)


@cli.command()
@click.option("--dir", "directory", default="demo", show_default=True, type=click.Path(),
              help="Where to build the demo (upstream, config, cache).")
@pass_ctx
def demo(ctx: Ctx, directory: str) -> None:
    """Run the main job on an embedded default: a local upstream, apply, sync, status."""
    def op() -> Outcome:
        from git_mirror.demo import run_demo

        return run_demo(directory)
    finish(ctx, op, lambda d: d.get("text", ""))


def _register_later_commands() -> None:
    """Commands whose operations live in the follower and kube packages.

    Imported here, after this module's group and helpers exist (they import them); a module
    that fails to import fails the CLI, it never drops its commands.
    """
    import git_mirror.cli.completion as completion
    import git_mirror.cli.followers as followers
    import git_mirror.cli.trust as trust

    trust.register(cli)
    followers.register(cli)
    completion.register(cli)


# The global options: those that take a value, and the flags. They may also follow the command
# (``git-mirror status --json``, ``git-mirror flush --lane v03 --confirm``), as users write them.
_GLOBAL_VALUED = ("--config", "--node", "--lane")
_GLOBAL_FLAGS = ("--json", "-v", "--verbose", "-q", "--quiet")


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """``args`` with the global options found after the command moved in front of it.

    Those already in front stay first, so one given after the command wins (click keeps
    the last value). Nothing after ``--`` moves.
    """
    args = list(args)
    pos = 0
    while pos < len(args) and args[pos].startswith("-") and args[pos] != "--":
        pos += 2 if args[pos] in _GLOBAL_VALUED else 1
    if pos >= len(args) or args[pos] == "--":
        return args
    head, rest = args[:pos], args[pos:]
    hoisted: list[str] = []
    kept: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            kept.extend(rest[i:])
            break
        if arg in _GLOBAL_FLAGS:
            hoisted.append(arg)
        elif arg in _GLOBAL_VALUED and i + 1 < len(rest):
            hoisted.extend(rest[i:i + 2])
            i += 1
        elif arg.split("=", 1)[0] in _GLOBAL_VALUED and "=" in arg:
            hoisted.append(arg)
        else:
            kept.append(arg)
        i += 1
    return head + hoisted + kept


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (tests call it with ``argv``)."""
    _register_later_commands()
    args = hoist_global_options(argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=args, prog_name="git-mirror", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except click.exceptions.Abort:
        return 1
    except OSError as exc:  # stdout itself cannot take the result (a full disk, a closed pipe)
        from git_mirror.cli.failures import output_failed

        return output_failed(exc)
    except click.ClickException as exc:
        if "--json" in args:
            from git_mirror.cli.output import emit_error
            from git_mirror.errors import UsageError

            return emit_error(UsageError(exc.format_message(), hint="git-mirror --help"),
                              as_json=True)
        exc.show()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
