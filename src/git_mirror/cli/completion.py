"""Shell completion: ``git-mirror completion bash|zsh|fish`` and what it completes.

The script a shell sources calls ``git-mirror`` back with ``_GIT_MIRROR_COMPLETE`` set
(click's protocol). Commands and options come from the command tree; the values of
``--repo``, ``--lane``, ``--node``, ``--follower`` and ``--pipeline-run`` come from the config
(``--config`` on the line being completed, else ``$GIT_MIRROR_CONFIG``, else
``./git-mirror.yaml``) and, for runs, from the cache. A config that cannot be read completes
nothing and prints nothing: completion never gets in the way.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from click.shell_completion import CompletionItem, get_completion_class

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig

PROG = "git-mirror"
COMPLETE_VAR = "_GIT_MIRROR_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
# `git mirror ...`: git's own bash completion calls _git_<command> with its words and cword.
GIT_BASH_ADAPTER = """
_git_mirror() {
    local idx=${__git_cmd_idx:-1}
    local COMP_WORDS=(git-mirror "${words[@]:idx+1}")
    local COMP_CWORD=$((cword - idx))
    _git_mirror_completion git-mirror
}
"""


def _config(ctx: click.Context) -> LoadedConfig | None:
    from git_mirror.config import find_config_path, load_config

    root = ctx.find_root()
    path = root.params.get("config_path")
    try:
        return load_config(find_config_path(path))
    except Exception:  # noqa: BLE001 - the shell's TAB: nothing may fail or print there
        return None


def _items(values: dict[str, str], incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(v, help=h or None) for v, h in sorted(values.items())
            if v.startswith(incomplete)]


def repositories(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    """Repository ids of the config, each with its upstream."""
    cfg = _config(ctx)
    if cfg is None:
        return []
    return _items({rid: r.upstream for rid, r in cfg.model.repositories.items()}, incomplete)


def lanes(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    """Lane names of the config, each with the repositories that declare it."""
    cfg = _config(ctx)
    if cfg is None:
        return []
    found: dict[str, list[str]] = {}
    for rid, repo in cfg.model.repositories.items():
        for name in repo.lanes:
            found.setdefault(name, []).append(rid)
    return _items({name: "lane of " + ", ".join(rids) for name, rids in found.items()}, incomplete)


def nodes(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    """Node names of the config (``local`` when it declares none), with their executor."""
    cfg = _config(ctx)
    if cfg is None:
        return []
    declared = {name: f"{n.executor} node" for name, n in cfg.model.nodes.items()}
    return _items(declared or {"local": "this machine"}, incomplete)


def followers(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    """Follower ids of the config, each with what it follows and where it writes."""
    cfg = _config(ctx)
    if cfg is None:
        return []
    return _items({fid: f"{f.repository} {f.branch} -> lane {f.lane}"
                   for fid, f in cfg.model.followers.items()}, incomplete)


def runs(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    """Run names of the declared followers, from the cache (newest last)."""
    from git_mirror.follower.state import FollowerState

    cfg = _config(ctx)
    if cfg is None:
        return []
    only = ctx.params.get("fid")
    names: dict[str, str] = {}
    for fid in cfg.model.followers:
        if only and fid != only:
            continue
        for name in FollowerState.of(cfg, fid).run_names():
            names[name] = f"run of {fid}"
    return _items(names, incomplete)


def files(_ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    """File names: left to the shell."""
    return [CompletionItem(incomplete, type="file")]


# Where the values of an option come from: the context of the line and the word so far.
Source = Callable[[click.Context, str], list[CompletionItem]]
# Option (by its parameter name) -> its source.
SOURCES: dict[str, Source] = {
    "repo": repositories, "lane": lanes, "node": nodes, "fid": followers,
    "pipeline_run": runs, "name": runs, "config_path": files,
}


def _shell_complete(source: Source) -> Callable[[click.Context, click.Parameter, str],
                                                list[CompletionItem]]:
    """``source`` as click calls a ``shell_complete`` (the option itself as well)."""
    def complete(ctx: click.Context, _param: click.Parameter,
                 incomplete: str) -> list[CompletionItem]:
        return source(ctx, incomplete)
    return complete


def _attach(command: click.Command) -> None:
    """Give every option named in :data:`SOURCES`, in every command, its completion."""
    for param in command.params:
        source = SOURCES.get(param.name or "")
        if isinstance(param, click.Option) and source is not None:
            # Same as passing shell_complete= when the option was declared.
            param._custom_shell_complete = _shell_complete(source)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _attach(sub)


# click's help of the command; "\b" keeps the lines after it as they are.
COMPLETION_HELP = """Print the completion script of SHELL (bash, zsh or fish); in bash,
    ``git mirror`` completes too (with git's own completion loaded).

    \b
    bash:  eval "$(git-mirror completion bash)"   (or save it as
           ~/.local/share/bash-completion/completions/git-mirror)
    zsh:   eval "$(git-mirror completion zsh)"    (after compinit)
    fish:  git-mirror completion fish > ~/.config/fish/completions/git-mirror.fish
    """


@click.command("completion", help=COMPLETION_HELP)
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(click_ctx: click.Context, shell: str) -> None:
    """Print the completion script of ``shell`` (see :data:`COMPLETION_HELP`)."""
    cls = get_completion_class(shell)
    assert cls is not None  # the three are click's own
    root = click_ctx.find_root().command
    source = cls(root, {}, PROG, COMPLETE_VAR).source()
    click.echo(source + (GIT_BASH_ADAPTER if shell == "bash" else ""))


def hoist_in_completion(environ: Any) -> None:
    """Global options typed after the command (``sync --config X --repo <TAB>``), moved in
    front as :func:`~git_mirror.cli.main.hoist_global_options` does for a real run, so that
    the values are completed from that config. Only the finished words move."""
    from git_mirror.cli.main import hoist_global_options

    mode = environ.get(COMPLETE_VAR, "")
    words_text = environ.get("COMP_WORDS")
    if not words_text:
        return
    try:
        words = shlex.split(words_text)
    except ValueError:
        return
    if mode.startswith(("bash", "zsh")):
        try:
            cword = int(environ.get("COMP_CWORD", ""))
        except ValueError:
            return
        done, rest = words[1:cword], words[cword:]
    elif mode.startswith("fish"):
        cut = len(words) - 1 if environ.get("COMP_CWORD") else len(words)
        done, rest = words[1:cut], words[cut:]
    else:
        return
    moved = hoist_global_options(done)
    if moved != done:
        environ["COMP_WORDS"] = shlex.join([words[0], *moved, *rest])


def register(cli: click.Group) -> None:
    """Add ``completion`` and the value completions (idempotent)."""
    cli.add_command(completion)
    _attach(cli)
    if COMPLETE_VAR in os.environ:
        hoist_in_completion(os.environ)
