"""Config text shared by the test suites (format strings: double braces are literal)."""

from __future__ import annotations

# What the hwlab repository follows: its sources, tags and lane.
HWLAB_SOURCES = """\
    sources:
      - branch: main
        snapshotGroup: hwlab-node-runtime
      - branch: release/*
    tags: true
    lanes:
      v03: {{ref: gitops/v03}}
"""

# The repository every test config declares ({url} is the upstream).
HWLAB_REPOSITORY = """\
repositories:
  hwlab:
    upstream: {url}
    transport: {{mode: file}}
""" + HWLAB_SOURCES
