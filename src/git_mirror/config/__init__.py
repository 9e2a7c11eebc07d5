"""The YAML config: models, loader (with file:line for every value) and secret references."""

from __future__ import annotations

from git_mirror.config.loader import LoadedConfig, find_config_path, load_config

__all__ = ["LoadedConfig", "find_config_path", "load_config"]
