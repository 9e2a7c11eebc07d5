"""flush against raw git: one lane commit, and 100 lane refs, over a file:// upstream.

For each size, the same state is built twice per round: every lane gets one new commit in the
mirror, then either ``flush(confirm=True)`` runs (in-process: the operation, not the
interpreter's start-up), or the raw equivalent does: one ``git push --atomic --porcelain``
of the same refs and one ``git fetch`` of them back into the stage refs. Medians are printed
side by side with their ratio (target: within 1.3x). A benchmark, not a test::

    uv run python -m bench.bench_flush [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": os.devnull,
       "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
       "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}


def g(git_dir: Path, *args: str, input: bytes | None = None) -> str:
    res = subprocess.run(["git", f"--git-dir={git_dir}", *args], input=input, capture_output=True,
                         env=ENV, check=True)
    return res.stdout.decode().strip()


def lane_ref(i: int) -> str:
    return f"refs/heads/gitops/l{i:03d}"


def build(root: Path, lanes: int) -> tuple[Path, Path, Path]:
    """An upstream with main and ``lanes`` lane branches; a config; apply and sync done."""
    from git_mirror.config import load_config
    from git_mirror.mirror.local_apply import apply_local
    from git_mirror.mirror.sync import sync

    upstream = root / "upstream.git"
    subprocess.run(["git", "init", "--bare", "--quiet", str(upstream)], env=ENV, check=True)
    tree = g(upstream, "mktree", input=b"")
    base = g(upstream, "commit-tree", tree, "-m", "base")
    lines = [f"create refs/heads/main {base}"]
    lines += [f"create {lane_ref(i)} {base}" for i in range(lanes)]
    g(upstream, "update-ref", "--stdin", input=("\n".join(lines) + "\n").encode())
    cfg_text = ["version: 1", "repositories:", "  app:", f"    upstream: file://{upstream}",
                "    transport: {mode: file}", "    sources: [{branch: main}]", "    lanes:"]
    cfg_text += [f"      l{i:03d}: {{ref: gitops/l{i:03d}}}" for i in range(lanes)]
    cfg_path = root / "git-mirror.yaml"
    cfg_path.write_text("\n".join(cfg_text) + "\n", encoding="utf-8")
    cfg = load_config(cfg_path)
    apply_local(cfg, confirm=True)
    res = sync(cfg, confirm=True)
    assert res.ok, res.to_json()
    return cfg_path, upstream, cfg.cache_dir / "repos" / "app.git"


def advance(mirror: Path, lanes: int, tag: str) -> dict[str, str]:
    """One new commit on every lane of the mirror (setup, not timed)."""
    tree = g(mirror, "mktree", input=b"")
    tips = dict(line.split(" ", 1)[::-1] for line in
                g(mirror, "for-each-ref", "--format=%(objectname) %(refname)",
                  "refs/heads/gitops/").splitlines())
    new: dict[str, str] = {}
    for i in range(lanes):
        ref = lane_ref(i)
        new[ref] = g(mirror, "commit-tree", tree, "-p", tips[ref], "-m", f"{tag} {ref}")
    g(mirror, "update-ref", "--stdin",
      input="".join(f"update {ref} {oid} {tips[ref]}\n" for ref, oid in new.items()).encode())
    return new


def raw_flush(mirror: Path, url: str, new: dict[str, str]) -> None:
    """The same refs pushed and fetched back with plain git: the floor flush is held to."""
    env = {**ENV, "GIT_ALLOW_PROTOCOL": "file"}
    subprocess.run(["git", f"--git-dir={mirror}", "-c", "protocol.version=2", "push", "--atomic",
                    "--porcelain", "--no-verify", url,
                    *(f"{oid}:{ref}" for ref, oid in new.items())],
                   capture_output=True, env=env, check=True)
    subprocess.run(["git", f"--git-dir={mirror}", "-c", "protocol.version=2", "fetch", "--atomic",
                    "--no-tags", "--no-write-fetch-head", "--quiet", url,
                    *(f"+{ref}:refs/mirror-stage/heads/{ref.removeprefix('refs/heads/')}"
                      for ref in new)],
                   capture_output=True, env=env, check=True)


def measure(lanes: int, rounds: int) -> tuple[float, float, int]:
    from git_mirror.config import load_config
    from git_mirror.git import run
    from git_mirror.mirror.flush import flush

    with tempfile.TemporaryDirectory(prefix="bench-flush-") as tmp:
        cfg_path, upstream, mirror = build(Path(tmp), lanes)
        cfg = load_config(cfg_path)
        ours: list[float] = []
        raw: list[float] = []
        procs = 0
        for r in range(rounds + 1):  # round 0 warms caches and is not counted
            # Alternate which side goes first, so neither always meets a warmer cache.
            for side in (("raw", "ours") if r % 2 else ("ours", "raw")):
                new = advance(mirror, lanes, f"{side} {r}")
                if side == "raw":
                    t0 = time.perf_counter()
                    raw_flush(mirror, f"file://{upstream}", new)
                    if r:
                        raw.append(time.perf_counter() - t0)
                    continue
                before = run.spawned()
                t0 = time.perf_counter()
                res = flush(cfg, confirm=True)
                elapsed = time.perf_counter() - t0
                procs = run.spawned() - before
                data = res.to_json()
                assert data["ok"], data
                assert len(data["pushed"]) == lanes, data
                assert data["pendingFlush"] is False, data
                assert g(upstream, "rev-parse", lane_ref(0)) == new[lane_ref(0)]
                if r:
                    ours.append(elapsed)
        return statistics.median(ours), statistics.median(raw), procs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    rows = []
    for lanes in (1, 100):
        ours, raw, procs = measure(lanes, args.rounds)
        rows.append((f"{lanes} lane ref{'s' if lanes > 1 else ''}", ours, raw, procs))
    print(f"{'flush of':<14} {'git-mirror':>12} {'raw push+fetch':>15} {'ratio':>7} "
          f"{'git procs':>10}")
    for name, ours, raw, procs in rows:
        print(f"{name:<14} {ours * 1000:>10.1f}ms {raw * 1000:>13.1f}ms {ours / raw:>6.2f}x "
              f"{procs:>10}")
    print("target: ratio <= 1.30 (medians; in-process flush vs two raw git commands)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
