"""git-mirror: one git mirror as the single source authority for CI/CD."""

from __future__ import annotations

__version__ = "0.1.0"

