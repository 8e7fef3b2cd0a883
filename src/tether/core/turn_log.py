"""One structured log line per turn (logger `tether.turns`, JSON at INFO): what a fleet's operators
join on (response id, lane, process, engine replica, client turn id) and what they tune by (tokens,
cached share, server and model time, why the cache missed)."""

from __future__ import annotations

import logging
import os
from typing import Any

import orjson

log = logging.getLogger("tether.turns")
PROCESS = f"{os.uname().nodename}:{os.getpid()}"


def turn_fields(
    *,
    response_id: str,
    status: str,
    transport: str,
    lane: str | None,
    usage: dict[str, Any] | None,
    server_seconds: float,
    model_seconds: float,
    replica: str | None,
    client_turn_id: str | None,
    cache: str | None,
) -> dict[str, Any]:
    usage = usage or {}
    prompt = int(usage.get("input_tokens") or 0)
    cached = int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0)
    return {
        "response_id": response_id,
        "status": status,
        "transport": transport,
        "lane": lane,
        "process": PROCESS,
        "replica": replica,
        "client_turn_id": client_turn_id,
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "uncached_tokens": prompt - cached,
        "output_tokens": int(usage.get("output_tokens") or 0),
        "server_ms": round(server_seconds * 1000, 3),
        "model_ms": round(model_seconds * 1000, 3),
        "cache": cache,
    }


def log_turn(fields: dict[str, Any]) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info("%s", orjson.dumps(fields).decode())
