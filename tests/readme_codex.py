"""The Codex CLI `config.toml` block that the README documents, for the tests that check and use it."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_codex_config() -> str:
    section = README.read_text().split("## Codex CLI against tether", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the README's Codex section must hold exactly one toml block"
    return str(blocks[0])
