"""Config text shared by the test suites."""

from __future__ import annotations

# The repository every test config declares (a format string: {url} is the upstream).
HWLAB_REPOSITORY = """\
repositories:
  hwlab:
    upstream: {url}
    transport: {{mode: file}}
    sources:
      - branch: main
        snapshotGroup: hwlab-node-runtime
      - branch: release/*
    tags: true
    lanes:
      v03: {{ref: gitops/v03}}
"""
