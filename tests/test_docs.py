"""The docs say what the code does: the generated parts (JSON Schema, error and warning codes,
metrics) are current, every command and config key is in the reference, every relative link
leads somewhere, and the README opens with the two commands CI runs."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from git_mirror.errors import ERROR_CODES, Code
from tests.support.cli import CHECKOUT, run_cli

DOCS = CHECKOUT / "docs"
README = CHECKOUT / "README.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
REGENERATE = "uv run python scripts/gen-docs.py"


@pytest.fixture(scope="module")
def gen_docs() -> ModuleType:
    """``scripts/gen-docs.py`` as a module (its name is not an importable one)."""
    spec = importlib.util.spec_from_file_location("gen_docs", CHECKOUT / "scripts" / "gen-docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_docs"] = module
    spec.loader.exec_module(module)
    return module


def test_the_generated_docs_are_current(gen_docs: ModuleType) -> None:
    stale = [str(p.relative_to(CHECKOUT)) for p in gen_docs.stale()]
    assert not stale, f"stale: {', '.join(stale)}; run: {REGENERATE}"


def test_a_changed_registry_makes_the_errors_page_stale(gen_docs: ModuleType,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ERROR_CODES, Code.BUSY, "a meaning the page does not have")
    assert gen_docs.stale() == [DOCS / "errors.md"]


def test_the_check_command_names_the_stale_file_and_the_fix(gen_docs: ModuleType,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    assert gen_docs.main(["--check"]) == 0
    monkeypatch.setitem(ERROR_CODES, Code.BUSY, "a meaning the page does not have")
    assert gen_docs.main(["--check"]) == 1
    assert capsys.readouterr().err == f"docs/errors.md is stale: run {REGENERATE}\n"


def test_the_schema_file_is_what_the_schema_command_prints() -> None:
    res = run_cli("schema")
    assert res.code == 0
    assert (CHECKOUT / "schema" / "git-mirror.schema.json").read_text() == res.stdout


def test_the_error_tables_hold_every_code_once() -> None:
    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z-]+)` \|", text, re.MULTILINE)
    from git_mirror.errors import WARNING_CODES

    assert sorted(rows) == sorted([*map(str, ERROR_CODES), *map(str, WARNING_CODES)])
    assert re.search(r"^\| `config` \| 2 \|", text, re.MULTILINE)
    assert re.search(r"^\| `usage` \| 2 \|", text, re.MULTILINE)
    assert re.search(r"^\| `busy` \| 1 \|", text, re.MULTILINE)


def _commands(*path: str) -> Iterator[tuple[str, ...]]:
    """Every command and subcommand that ``--help`` lists, as word tuples."""
    res = run_cli(*path, "--help")
    assert res.code == 0, res.stderr
    listing = res.stdout.partition("\nCommands:\n")[2]
    for line in listing.splitlines():
        match = re.match(r"^  ([a-z][a-z-]*)\b", line)
        if match:
            yield (*path, match.group(1))
            yield from _commands(*path, match.group(1))


def test_every_command_is_in_the_reference() -> None:
    text = (DOCS / "commands.md").read_text(encoding="utf-8")
    found = list(_commands())
    assert len(found) >= 20, found  # the plugin commands (follower, closeout, ...) too
    missing = [" ".join(c) for c in found if f"`{' '.join(c)}" not in text]
    assert not missing, f"docs/commands.md does not describe: {missing}"


def _schema_keys(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                yield from value
            yield from _schema_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _schema_keys(item)


def test_every_config_key_is_in_the_reference() -> None:
    schema = json.loads((CHECKOUT / "schema" / "git-mirror.schema.json").read_text())
    text = (DOCS / "config.md").read_text(encoding="utf-8")
    code = " ".join(re.findall(r"`([^`\n]+)`", text))
    missing = sorted({k for k in _schema_keys(schema) if not re.search(rf"\b{k}\b", code)})
    assert not missing, f"docs/config.md does not describe: {missing}"


def _slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading (GitHub's rule)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _links(page: Path) -> Iterator[str]:
    """The targets of the page's links and images, outside fenced code."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    yield from re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(CHECKOUT)))
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z]+:", target):
            continue  # http:, https:, mailto:
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", dest.read_text(encoding="utf-8"), re.M)
            if anchor not in {_slug(h) for h in headings}:
                broken.append(target)
    assert not broken, f"{page.relative_to(CHECKOUT)}: broken links {broken}"


def test_every_reference_page_is_linked_from_the_readme_and_the_index() -> None:
    readme = README.read_text(encoding="utf-8")
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for page in DOCS.glob("*.md"):
        if page.name != "README.md":
            assert f"(docs/{page.name}" in readme, page.name
            assert f"({page.name}" in index, page.name


def test_the_readme_opens_with_the_two_commands_ci_runs() -> None:
    first_block = README.read_text(encoding="utf-8").split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:]]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    ci = (CHECKOUT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == "bash scripts/test.sh"
    assert "docs/dashboard.png" in README.read_text(encoding="utf-8")
