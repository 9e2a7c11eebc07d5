"""Load the YAML config, keep file:line for every key, validate, and explain errors.

Errors name the file, the line and the key path (``repositories.hwlab.transport.mode``) and
say what is expected. Validation happens in two passes: the pydantic models (types, unknown
keys, enums), then :mod:`git_mirror.config.checks` (rules across keys: transport against URL
scheme, overlapping refs, undeclared proxy names).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_mirror.errors import ConfigError

if TYPE_CHECKING:
    from git_mirror.config.models import Config

DEFAULT_NAME = "git-mirror.yaml"
ENV_VAR = "GIT_MIRROR_CONFIG"
KeyPath = tuple[str | int, ...]
# Bounds on what a config file may cost to read: its size, the nesting of its flow
# collections (ruamel's scanner slows down with their depth), and the number of values it
# expands to once every alias is followed (a 1 KB "billion laughs" file would be billions).
MAX_CONFIG_BYTES = 256 << 10  # ruamel reads about 100 KB a second: a few seconds at most
MAX_FLOW_DEPTH = 64
MAX_EXPANDED_NODES = 100_000


def find_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """``--config PATH``, else ``$GIT_MIRROR_CONFIG``, else ``./git-mirror.yaml``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(DEFAULT_NAME)


def dotted(path: KeyPath) -> str:
    """A key path as errors spell it: ``repositories.hwlab.sources[0].branch``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where it came from."""

    path: Path
    sha256: str
    model: Config
    lines: dict[KeyPath, int] = field(repr=False)

    @property
    def base_dir(self) -> Path:
        """The directory of the config file: relative paths in it resolve from here."""
        return self.path.resolve().parent

    @cached_property
    def cache_dir(self) -> Path:
        """``cache`` (``~`` expanded, relative to :attr:`base_dir`), else ``.git-mirror``
        beside the config file."""
        if self.model.cache:
            p = Path(os.path.expanduser(self.model.cache))
            return p if p.is_absolute() else self.base_dir / p
        return self.base_dir / ".git-mirror"

    def line_of(self, *path: str | int) -> int | None:
        """The line of the deepest key of ``path`` that the file has."""
        keys: KeyPath = tuple(path)
        while keys:
            if keys in self.lines:
                return self.lines[keys]
            keys = keys[:-1]
        return None

    def where(self, *path: str | int) -> str:
        """``FILE:LINE`` of the key ``path`` (its deepest key the file has), for messages."""
        line = self.line_of(*path)
        return f"{self.path}:{line}" if line else str(self.path)

    def resolve_path(self, value: str) -> Path:
        """A path written in the config: ``~`` expanded, relative to :attr:`base_dir`."""
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base_dir / p


def _positions(node: Any, prefix: KeyPath, out: dict[KeyPath, int]) -> None:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        for key in node:
            try:
                line = node.lc.key(key)[0] + 1
            except (KeyError, TypeError, AttributeError):
                line = node.lc.line + 1
            path = (*prefix, str(key))
            out[path] = line
            _positions(node[key], path, out)
    elif isinstance(node, CommentedSeq):
        for i, item in enumerate(node):
            try:
                line = node.lc.item(i)[0] + 1
            except (KeyError, TypeError, AttributeError):
                line = node.lc.line + 1
            path = (*prefix, i)
            out[path] = line
            _positions(item, path, out)


def _plain(node: Any) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap | dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq | list):
        return [_plain(v) for v in node]
    if node is not None and type(node).__module__.startswith("ruamel"):
        # ScalarFloat, ScalarBoolean, TaggedScalar... -> plain Python values
        for base in (bool, int, float, str):
            if isinstance(node, base):
                return base(node)
    return node


# A flow bracket, a quote that opens a quoted scalar, or a "#" that opens a comment.
_FLOW_TOKEN = re.compile(r"[\[\]{}]|(?:(?<=[\s\[{,:])|^)['\"]|(?:(?<=\s)|^)#", re.MULTILINE)


def flow_depth_exceeds(text: str, limit: int = MAX_FLOW_DEPTH) -> bool:
    """True when ``[``/``{`` collections nest deeper than ``limit`` (outside quoted scalars
    and comments), read in one pass over the text, before any YAML parser sees it."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    pos: int | None = 0
    while pos is not None and (m := _FLOW_TOKEN.search(text, pos)) is not None:
        ch = m.group()
        pos = m.end()
        if ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth = max(0, depth - 1)
        else:
            pos = _SKIP[ch](text, pos)
    return False


def _end_of_comment(text: str, pos: int) -> int:
    """Where the comment running at ``pos`` ends: its line's end, or the text's."""
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def _end_of_single_quoted(text: str, pos: int) -> int | None:
    """Just past the quote that closes the single-quoted scalar running at ``pos`` (``''``
    is a quote inside it); None when it never closes."""
    while True:
        end = text.find("'", pos)
        if end < 0:
            return None
        pos = end + 1
        if not text.startswith("'", pos):
            return pos
        pos += 1


def _end_of_double_quoted(text: str, pos: int) -> int | None:
    """Just past the quote that closes the double-quoted scalar running at ``pos`` (a quote
    after an odd number of backslashes is escaped); None when it never closes."""
    while True:
        end = text.find('"', pos)
        if end < 0:
            return None
        backslashes = len(text[pos:end]) - len(text[pos:end].rstrip("\\"))
        pos = end + 1
        if backslashes % 2 == 0:
            return pos


# What to skip after each token that opens text whose brackets do not count.
_SKIP: dict[str, Callable[[str, int], int | None]] = {
    "#": _end_of_comment, "'": _end_of_single_quoted, '"': _end_of_double_quoted,
}


def expanded_size(doc: Any, limit: int = MAX_EXPANDED_NODES) -> int:
    """How many values ``doc`` holds with every alias followed; stops counting past ``limit``.

    Shared (aliased) nodes are sized once, so this costs what the file holds, not what it
    expands to; a node that contains itself counts as past the limit.
    """
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, dict | list):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in busy:
            return limit + 1
        busy.add(key)
        total = 1
        for child in (node.values() if isinstance(node, dict) else node):
            total += size(child)
            if total > limit:
                break
        busy.discard(key)
        sizes[key] = total
        return total

    try:
        return size(doc)
    except RecursionError:
        return limit + 1


def parse_yaml(text: str, path: Path) -> tuple[Any, dict[KeyPath, int]]:
    """The YAML ``text`` as plain Python values, and the line of every key path in it.

    Refused with a ConfigError naming ``path``: flow collections nested too deep, invalid or
    duplicate-key YAML, and aliases that expand past :data:`MAX_EXPANDED_NODES` values.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    if flow_depth_exceeds(text):
        raise ConfigError(f"flow collections ([...] or {{...}}) nest deeper than "
                          f"{MAX_FLOW_DEPTH} levels", file=str(path))
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        doc = yaml.load(text)
    except RecursionError:
        raise ConfigError("the YAML nests too deeply to be a config", file=str(path)) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"not valid YAML: {exc.problem or exc}", file=str(path),
                          line=line) from None
    except YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(path)) from None
    if expanded_size(doc) > MAX_EXPANDED_NODES:
        raise ConfigError(f"the YAML holds more than {MAX_EXPANDED_NODES} values once its "
                          "aliases (*name) are followed (or an alias contains itself)",
                          file=str(path), hint="write the values out, or use fewer nested "
                                               "aliases; then run: git-mirror validate")
    lines: dict[KeyPath, int] = {}
    _positions(doc, (), lines)
    return _plain(doc), lines


def _expected(err: Any) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value"))
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return "unknown key (not part of the config schema; check its spelling and indentation)"
    if kind in ("missing", "missing_argument"):
        return "required key is missing"
    if kind == "literal_error":
        return msg.replace("Input should be", "expected")
    if kind == "value_error":  # a model's own check: its message says what is expected
        msg = msg.removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


def _error_path(loc: tuple[Any, ...]) -> KeyPath:
    path: list[str | int] = []
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, str) and part[:1].isupper() and part.endswith("Trigger"):
            continue  # union branch names inserted by pydantic
        if isinstance(part, str) and part.startswith(("function-", "union[", "literal[")):
            continue
        path.append(part)
    return tuple(path)


def validate_data(data: Any, path: Path, lines: dict[KeyPath, int]) -> Config:
    """Validate parsed YAML into a :class:`Config`; raise ConfigError naming file:line:key."""
    from pydantic import ValidationError

    from git_mirror.config.models import adapter

    if data is None:
        raise ConfigError("the file is empty; run `git-mirror init` for a starter config",
                          file=str(path), line=1)
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level", file=str(path), line=1)
    try:
        return adapter().validate_python(data)
    except ValidationError as exc:
        errors = exc.errors()
        # The most specific error first: unknown keys and wrong values beat "missing".
        errors.sort(key=lambda e: (e.get("type") in ("missing", "missing_argument"),
                                   -len(e.get("loc", ()))))
        first = errors[0]
        key_path = _error_path(tuple(first.get("loc", ())))
        line = _line(lines, key_path)
        more = ""
        if len(errors) > 1:
            more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise ConfigError(_expected(first) + more, file=str(path), line=line,
                          key=dotted(key_path) or None) from None


def _line(lines: dict[KeyPath, int], key_path: KeyPath) -> int | None:
    keys = key_path
    while keys:
        if keys in lines:
            return lines[keys]
        keys = keys[:-1]
    return 1 if lines else None


def _compiled_path(path: Path, raw: bytes) -> Path | None:
    """Where the validated form of exactly these bytes at this path is kept, if anywhere.

    Validating needs ruamel.yaml and pydantic, which cost most of a short command's run time;
    a config that validated once is loaded again from this private cache (a directory of the
    user's own, not writable by others), keyed by the version, the path and the content.
    """
    if os.environ.get("GIT_MIRROR_NO_CONFIG_CACHE"):
        return None
    from git_mirror import __version__

    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(root):
        return None
    key = hashlib.sha256(f"{__version__}\0{path.resolve()}\0".encode() + raw).hexdigest()
    return Path(root) / "git-mirror" / "config" / f"{key}.pickle"


def _trusted_dir(directory: Path) -> bool:
    try:
        st = directory.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _load_compiled(file: Path) -> tuple[Config, dict[KeyPath, int]] | None:
    import pickle

    if not _trusted_dir(file.parent):
        return None
    try:
        with open(file, "rb") as fh:
            model, lines = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError):
        return None
    from git_mirror.config.models import Config

    if not isinstance(model, Config) or not isinstance(lines, dict):
        return None
    return model, lines


def _store_compiled(file: Path, model: Config, lines: dict[KeyPath, int]) -> None:
    import pickle
    import tempfile

    try:
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _trusted_dir(file.parent):
            return
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump((model, lines), fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, file)
    except OSError:
        return


def _read_bounded(path: Path) -> bytes:
    """The file's bytes; a file larger than :data:`MAX_CONFIG_BYTES` is refused unread.

    Opened without blocking, so that a named pipe nobody writes to reads as empty instead of
    hanging; reads then block as usual (``--config <(...)`` works).
    """
    import fcntl

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        try:
            size = os.fstat(fh.fileno()).st_size
        except OSError:
            size = 0
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"the file is {size} bytes; a config may be {MAX_CONFIG_BYTES} "
                              "bytes at most", file=str(path))
        raw = fh.read(MAX_CONFIG_BYTES + 1)  # devices and pipes have no size to ask
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"the file is larger than {MAX_CONFIG_BYTES} bytes, the most a "
                          "config may be", file=str(path))
    return raw


def load_config(path: Path | str) -> LoadedConfig:
    """Read, parse and validate the config at ``path``."""
    from git_mirror.config.checks import check_config

    path = Path(path)
    try:
        raw = _read_bounded(path)
    except FileNotFoundError:
        raise ConfigError(
            "config file not found", file=str(path),
            hint="create one with: git-mirror init (or pass --config PATH / set GIT_MIRROR_CONFIG)",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", file=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("the file is not UTF-8 text", file=str(path)) from None
    digest = hashlib.sha256(raw).hexdigest()
    compiled = _compiled_path(path, raw)
    if compiled is not None and compiled.exists():
        hit = _load_compiled(compiled)
        if hit is not None:
            return LoadedConfig(path=path, sha256=digest, model=hit[0], lines=hit[1])
    data, lines = parse_yaml(text, path)
    model = validate_data(data, path, lines)
    loaded = LoadedConfig(path=path, sha256=digest, model=model, lines=lines)
    check_config(loaded)
    if compiled is not None:
        _store_compiled(compiled, model, lines)
    return loaded
