"""The scale benchmark's processes: the llama-server replicas (with their prompt cache), tether's engine
pool in front of them, the warm-up of the shared prefix, and the counters read around each placement."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from ..processes import free_port, serving_process
from .llama_server import LlamaServer
from .modes import user_message
from .round_robin import chat_body

#: each replica's prompt cache: reuse a slot's prefix, keep idle slots' prompts in host memory; and
#: the endpoints the warm-up and the counters need (slot save/restore, Prometheus metrics)
PROMPT_CACHE_ARGS = ("--cache-prompt", "--cache-ram", "2048", "--metrics")
WARM_FILE = "shared-prefix.bin"
_ENGINE_PROMPT = re.compile(r"^llamacpp:prompt_tokens_total (\S+)$", re.MULTILINE)
_TETHER_REQUESTS = re.compile(r'^tether_upstream_requests_total\{replica="([^"]+)"\} (\S+)$', re.MULTILINE)


def replica_args(folder: Path, extra: Sequence[str]) -> tuple[str, ...]:
    """llama-server flags of a replica: the prompt cache, a folder for slot files, then the user's own."""
    slots = folder / "slots"
    slots.mkdir(exist_ok=True)
    return (*PROMPT_CACHE_ARGS, "--slot-save-path", str(slots), *extra)


@contextlib.contextmanager
def tether_pool(replicas: Sequence[LlamaServer], folder: Path) -> Iterator[str]:
    """tether with `--backend upstream` over the replicas, SQLite store (for the stored HTTP chain)."""
    port = free_port()
    flags = [arg for replica in replicas for arg in ("--upstream-url", replica.url)]
    command = [sys.executable, "-m", "tether.cli", "serve", "--backend", "upstream", *flags,
               "--store", f"sqlite:{folder / 'responses.sqlite3'}", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TETHER_DATA_DIR": str(folder)}
    with serving_process(command, folder / "tether.log", url + "/health", wait_s=60, env=env):
        yield url


def warm(replicas: Sequence[LlamaServer], base: dict[str, Any]) -> None:
    """Every slot of every replica holds the prefix all agents share (instructions and tools), as an
    engine serving many sessions of one agent would: one slot prefills it, the others load its state.
    (llama-server's host-memory cache does not hand a busy slot's prompt to requests that arrive at
    the same time, so without this the first placement's first turns would pay for going first.)"""
    body = chat_body({**base, "input": [user_message("Warm-up.")], "max_output_tokens": 1})
    with ThreadPoolExecutor(len(replicas)) as pool:  # the replicas prefill side by side
        list(pool.map(lambda replica: _spread(replica, body), replicas))


def _spread(replica: LlamaServer, body: dict[str, Any]) -> None:
    # A connection of its own for each call: llama-server may close a kept-alive one after a stream.
    httpx.post(replica.url + "/v1/chat/completions", json=body, timeout=600.0).raise_for_status()
    slots = httpx.get(replica.url + "/slots", timeout=10.0).json()
    used = [slot["id"] for slot in slots if "id_task" in slot]  # the slot that served the warm-up
    if not used:
        raise RuntimeError(f"{replica.url}/slots shows no slot that served the warm-up: {slots!r}")
    _slot_action(replica, used[0], "save")
    for slot in slots:
        if slot["id"] != used[0]:
            _slot_action(replica, slot["id"], "restore")


def _slot_action(replica: LlamaServer, slot: int, action: str) -> None:
    answer = httpx.post(f"{replica.url}/slots/{slot}", params={"action": action}, json={"filename": WARM_FILE},
                        timeout=60.0)
    answer.raise_for_status()


def engine_prompt_tokens(replicas: Sequence[LlamaServer]) -> int:
    """Prompt tokens the replicas evaluated so far (llama-server's own counter: cached tokens excluded)."""
    total = 0.0
    for replica in replicas:
        match = _ENGINE_PROMPT.search(httpx.get(replica.url + "/metrics", timeout=10.0).text)
        total += float(match[1]) if match else 0.0
    return int(total)


def tether_requests(url: str) -> dict[str, float]:
    """`tether_upstream_requests_total` by replica (its base URL, without `/v1`)."""
    text = httpx.get(url + "/metrics", timeout=10.0).text
    return {match[1].removesuffix("/v1"): float(match[2]) for match in _TETHER_REQUESTS.finditer(text)}
