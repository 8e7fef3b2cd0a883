"""`truncation` on the embedded engine: "auto" drops the oldest turns to fit the context window,
"disabled" (the default) fails the response with `context_length_exceeded`."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai import OpenAI

from .llamacpp_support import MODEL, final_response, llama_server, sse_turn

pytestmark = pytest.mark.llamacpp


def long_history() -> list[dict[str, str]]:
    filler = "The quick brown fox jumps over the lazy dog near the river bank. " * 12
    items = []
    for turn in range(6):
        items.append({"role": "user", "content": f"Note {turn}: {filler}"})
        items.append({"role": "assistant", "content": f"Noted {turn}."})
    items.append({"role": "user", "content": "Say hello."})
    return items


def test_truncation_auto_fits_and_disabled_fails(tmp_path: Path) -> None:
    with llama_server(tmp_path, "--ctx", "768") as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")
        total = client.responses.input_tokens.count(model=MODEL, input=long_history()).input_tokens
        assert total > 768  # the whole history cannot fit
        # The code is the one Codex acts on; this SDK's enum of error codes lacks it, so no strict check here.
        failed = client.responses.create(model=MODEL, input=long_history(), max_output_tokens=16, temperature=0)
        assert failed.status == "failed"
        assert failed.error is not None and failed.error.code == "context_length_exceeded"
        done = final_response(sse_turn(client, model=MODEL, input=long_history(), max_output_tokens=16,
                                       temperature=0, truncation="auto"))
        assert done["status"] in ("completed", "incomplete"), done
        assert done["truncation"] == "auto"
        assert done["output"][0]["content"][0]["text"]
        assert 0 < done["usage"]["input_tokens"] <= 768 - 16
