"""The JSON Schema of the config file, for editors (``git-mirror schema``)."""

from __future__ import annotations

from typing import Any


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the YAML config, keys as the file spells them
    (camelCase), built from the pydantic models; ``schema/git-mirror.schema.json`` is this."""
    from git_mirror.config.models import adapter

    schema = adapter().json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://git-mirror.dev/schema/config-v1.json"
    schema["title"] = "git-mirror config"
    return schema
