"""Tests of kubernetes nodes (against a FAKE API server; see tests/support/fakekube.py)."""
