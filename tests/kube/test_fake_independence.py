"""The fake API server's checks are its own: no regular expression of the product's reappears
in the fakes, so that a wrong pattern in the product cannot be confirmed by the same pattern
in the fake."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAKES = ["fakekube.py", "faketekton.py", "kubehttp.py"]


def patterns(paths: list[Path]) -> set[str]:
    """String arguments of ``re.compile``/``match``/``fullmatch``/``search`` and of
    ``pattern=`` keywords."""
    out: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            regex_call = name in ("compile", "match", "fullmatch", "search")
            args = list(node.args[:1]) if regex_call else []
            args += [k.value for k in node.keywords if k.arg == "pattern"]
            out |= {a.value for a in args
                    if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return out


def test_no_product_pattern_in_the_fakes() -> None:
    product = patterns(list((ROOT / "src").rglob("*.py")))
    fakes = patterns([ROOT / "tests" / "support" / f for f in FAKES])
    assert product, "the scan found no pattern in src/: it would pass vacuously"
    assert product & fakes == set()
