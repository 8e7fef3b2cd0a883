"""One rollout: a workload replayed through one mode, turn by turn, with what each turn cost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .modes import Conversation, Mode, function_calls, send_turn, tool_output
from .profiles import ModelProfile
from .server import ServerProcess
from .workloads import Workload

SETTLE_S = 0.05  # lets post-terminal work (persisting) land before the CPU time is read


@dataclass(slots=True)
class TurnRecord:
    wait_ms: float
    model_ms: float
    overhead_ms: float
    bytes_sent: int
    bytes_received: int
    payload_bytes: int
    uncached_tokens: int
    context_tokens: int


@dataclass(slots=True)
class RolloutRecord:
    mode: str
    network: str
    workload: str
    profile: str
    repeat: int
    rollout_s: float = 0.0
    server_cpu_ms: float = 0.0
    server_ms: float = 0.0  # tether_turn_server_seconds summed over the rollout
    turns: list[TurnRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run_rollout(
    mode: Mode,
    endpoint: str,
    server: ServerProcess,
    workload: Workload,
    profile: ModelProfile,
    record: RolloutRecord,
    on_turn: Callable[[], None] = lambda: None,
    *,
    remote: bool = False,
) -> RolloutRecord:
    """Replays `workload` through `mode` against `endpoint` (the server, or a proxy in front of it:
    `remote`, a client elsewhere)."""
    cpu_before = server.cpu_seconds()
    metric_before = server.server_seconds().get(mode.transport, 0.0)
    start = time.perf_counter()
    transport = await mode.open(endpoint, remote=remote)
    try:
        conversation = Conversation(workload.base())
        new_items = list(workload.input)
        for index in range(workload.model_turns):
            result = await send_turn(transport, mode, conversation, new_items)
            usage = result.response.get("usage") or {}
            model_s = profile.model_seconds(usage)
            cached = int((usage.get("input_tokens_details") or {}).get("cached_tokens", 0))
            record.turns.append(TurnRecord(
                wait_ms=result.wait_s * 1000, model_ms=model_s * 1000, overhead_ms=(result.wait_s - model_s) * 1000,
                bytes_sent=result.bytes_sent, bytes_received=result.bytes_received, payload_bytes=result.payload_bytes,
                uncached_tokens=int(usage.get("input_tokens", 0)) - cached,
                context_tokens=int(usage.get("input_tokens", 0)),
            ))
            on_turn()
            calls = function_calls(result.response.get("output", []))
            outputs = workload.outputs(index)
            if not calls:
                break
            if len(calls) != len(outputs):
                raise RuntimeError(f"turn {index}: the model made {len(calls)} calls, the workload has {len(outputs)}")
            new_items = [tool_output(str(call["call_id"]), text) for call, text in zip(calls, outputs, strict=True)]
        record.rollout_s = time.perf_counter() - start  # before the close handshake, which no agent waits for
    finally:
        await transport.close()
    await asyncio.sleep(SETTLE_S)
    record.server_cpu_ms = (server.cpu_seconds() - cpu_before) * 1000
    record.server_ms = (server.server_seconds().get(mode.transport, 0.0) - metric_before) * 1000
    return record
