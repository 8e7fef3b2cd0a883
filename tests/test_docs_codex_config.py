"""The Codex config in docs/codex.md parses and points Codex at tether with WebSocket mode on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "codex.md"


def test_codex_config_block() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1
    config = tomllib.loads(blocks[0])
    provider = config["model_providers"][config["model_provider"]]
    assert provider["base_url"].endswith("/v1")
    assert provider["base_url"].startswith(("http://", "https://"))
    assert provider["wire_api"] == "responses"
    assert provider["supports_websockets"] is True
    assert isinstance(provider["env_key"], str) and provider["env_key"]
    assert isinstance(config["model"], str)
