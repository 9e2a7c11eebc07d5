"""Writes the parts of the documentation that are generated from the code.

    uv run python scripts/gen-docs.py            # rewrite them
    uv run python scripts/gen-docs.py --check    # write nothing; exit 1 naming what is stale

- ``schema/git-mirror.schema.json``: the config's JSON Schema (what ``git-mirror schema``
  prints), for editors;
- in ``docs/errors.md``: the table of error codes (``git_mirror.errors.ERROR_CODES``, with the
  exit code of the error class that carries each) and of warning codes (``WARNING_CODES``);
- in ``docs/metrics.md``: the table of the metrics ``serve`` exposes
  (``git_mirror.server.metrics.Metrics``).

A generated part of a Markdown file sits between ``<!-- BEGIN GENERATED NAME ... -->`` and
``<!-- END GENERATED NAME -->``; the text around it is written by hand and kept as it is.
``tests/test_docs.py`` runs :func:`stale` and fails while anything here is out of date.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "uv run python scripts/gen-docs.py"
SCHEMA = ROOT / "schema" / "git-mirror.schema.json"
ERRORS = ROOT / "docs" / "errors.md"
METRICS = ROOT / "docs" / "metrics.md"


def schema_text() -> str:
    """The JSON Schema exactly as ``git-mirror schema`` prints it."""
    from git_mirror.config.schema import config_schema

    return json.dumps(config_schema(), indent=2) + "\n"


def _exit_codes() -> dict[str, int]:
    """The exit code of each error code that an error class carries (others exit 1)."""
    from git_mirror.errors import GitMirrorError

    out: dict[str, int] = {}
    todo: list[type[GitMirrorError]] = [GitMirrorError]
    while todo:
        cls = todo.pop()
        out.setdefault(str(cls.code), cls.exit_code)
        todo.extend(cls.__subclasses__())
    return out


def error_table() -> str:
    """One row per error code of the registry, in its order: code, exit code, meaning."""
    from git_mirror.errors import ERROR_CODES

    exits = _exit_codes()
    rows = ["| code | exit | meaning |", "|---|---|---|"]
    rows += [f"| `{code}` | {exits.get(str(code), 1)} | {_cell(meaning)} |"
             for code, meaning in ERROR_CODES.items()]
    return "\n".join(rows)


def warning_table() -> str:
    """One row per warning code of the registry, in its order: code, meaning."""
    from git_mirror.errors import WARNING_CODES

    rows = ["| warning | meaning |", "|---|---|"]
    rows += [f"| `{code}` | {_cell(meaning)} |" for code, meaning in WARNING_CODES.items()]
    return "\n".join(rows)


def metrics_table() -> str:
    """One row per metric of a fresh ``Metrics``: the name scraped, type, labels, help."""
    from prometheus_client.metrics import MetricWrapperBase

    from git_mirror.server.metrics import Metrics

    def walk(obj: object) -> Iterator[MetricWrapperBase]:
        # Metrics holds metrics and groups of them (the sync and flush RunMetrics), in order.
        for value in vars(obj).values():
            if isinstance(value, MetricWrapperBase):
                yield value
            elif type(value).__module__ == Metrics.__module__:
                yield from walk(value)

    rows = ["| metric | type | labels | what |", "|---|---|---|---|"]
    for metric in walk(Metrics()):
        family = metric.describe()[0]
        name = family.name + ("_total" if family.type == "counter" else "")
        # prometheus_client keeps a metric's label names only in this attribute.
        labels = ", ".join(f"`{label}`" for label in getattr(metric, "_labelnames", ()))
        rows.append(f"| `{name}` | {family.type} | {labels or '-'} | "
                    f"{_cell(family.documentation)} |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    """``text`` as a Markdown table cell."""
    return text.replace("|", "\\|")


def splice(text: str, name: str, body: str, *, where: Path) -> str:
    """``text`` with the generated block ``name`` holding ``body``."""
    begin = re.compile(rf"^<!-- BEGIN GENERATED {re.escape(name)}\b[^\n]*-->\n", re.MULTILINE)
    end = f"<!-- END GENERATED {name} -->"
    start = begin.search(text)
    stop = text.find(end, start.end()) if start else -1
    if start is None or stop < 0:
        raise SystemExit(f"{where}: the markers of the generated block {name!r} are missing")
    return text[:start.end()] + body + "\n" + text[stop:]


# Each Markdown file with generated blocks: the blocks it holds, by name.
BLOCKS: dict[Path, dict[str, Callable[[], str]]] = {
    ERRORS: {"error-codes": error_table, "warning-codes": warning_table},
    METRICS: {"metrics": metrics_table},
}


def generated() -> dict[Path, str]:
    """Every generated file's text as the code says it should be now."""
    out = {SCHEMA: schema_text()}
    for path, blocks in BLOCKS.items():
        text = path.read_text(encoding="utf-8")
        for name, make in blocks.items():
            text = splice(text, name, make(), where=path)
        out[path] = text
    return out


def stale() -> list[Path]:
    """The generated files whose text on disk is not what :func:`generated` gives."""
    return [path for path, text in generated().items()
            if not path.exists() or path.read_text(encoding="utf-8") != text]


def main(argv: list[str]) -> int:
    """Rewrite the generated files (``--check``: report the stale ones, exit 1 if any)."""
    if argv not in ([], ["--check"]):
        print(f"usage: {COMMAND} [--check]", file=sys.stderr)
        return 2
    if argv == ["--check"]:
        out_of_date = stale()
        for path in out_of_date:
            print(f"{path.relative_to(ROOT)} is stale: run {COMMAND}", file=sys.stderr)
        return 1 if out_of_date else 0
    for path, text in generated().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
