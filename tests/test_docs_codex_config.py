"""The Codex config in the README parses and points Codex at tether with WebSocket mode and remote compaction on."""

from __future__ import annotations

import tomllib

from .readme_codex import readme_codex_config


def test_readme_codex_config_block() -> None:
    config = tomllib.loads(readme_codex_config())
    provider = config["model_providers"][config["model_provider"]]
    assert provider["base_url"] == "http://127.0.0.1:8000/v1"  # tether serve's default address
    assert provider["wire_api"] == "responses"
    assert provider["supports_websockets"] is True
    # Without it Codex compacts locally for a non-OpenAI provider, rewriting the prefix (a full re-prefill).
    assert provider["capabilities"] == {"remote_compaction": "v2"}
    assert isinstance(provider["env_key"], str) and provider["env_key"]
    assert isinstance(config["model"], str) and config["model"]
    assert config["features"]["plugins"] is False
