"""The scale benchmark's placements and its agent loops: N agents at once, each a multi-turn tool loop
driven by `modes.Conversation` (the same loop for every placement), timed at the client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .clients import Transport
from .modes import HTTP_STORED, WS_CACHED, Conversation, Mode, function_calls, send_turn
from .round_robin import ReplicaRotation, RoundRobinTransport
from .scale_workload import ScaleShape, agent_base, first_input, next_items, step_outputs
from .workloads import Workload


@dataclass(frozen=True, slots=True)
class Placement:
    name: str
    label: str
    mode: Mode  # what a turn's request carries
    via_tether: bool  # through tether's engine pool, else straight to the replicas in rotation


WS_AFFINITY = Placement("ws_affinity", "tether WebSocket (store:false), pool affinity by lane", WS_CACHED, True)
HTTP_AFFINITY = Placement("http_affinity", "tether HTTP previous_response_id (store:true), affinity by stored replica",
                          HTTP_STORED, True)
ROUND_ROBIN = Placement("round_robin", "load-balancer round-robin, full history to /v1/chat/completions",
                        Mode("round_robin", "chat completions, full history", "http", store=False, chained=False),
                        False)
PLACEMENTS: tuple[Placement, ...] = (WS_AFFINITY, HTTP_AFFINITY, ROUND_ROBIN)


@dataclass(frozen=True, slots=True)
class TurnSample:
    placement: str
    agent: int
    turn: int  # 0 = the first
    prompt_tokens: int  # the engine's count
    cached_tokens: int  # what the engine served from its cache
    output_tokens: int
    tool_calls: int
    ttft_s: float  # to the first output delta
    turn_s: float  # to the terminal event
    started_s: float  # since the agent's start
    replica: str | None  # round-robin: where the turn ran (tether's placements: in its /metrics)


@dataclass(frozen=True, slots=True)
class AgentRun:
    placement: str
    agent: int
    rollout_s: float
    turns: list[TurnSample]


Opener = Callable[[int], Awaitable[Transport]]  # the agent's index -> its client


def opener(placement: Placement, tether_url: str, replicas: Sequence[str]) -> Opener:
    async def open_transport(agent: int) -> Transport:
        if placement.via_tether:
            return await placement.mode.open(tether_url)
        return RoundRobinTransport(ReplicaRotation(replicas, start=agent))

    return open_transport


async def run_agent(placement: Placement, open_transport: Opener, workload: Workload, shape: ScaleShape,
                    agent: int, model: str) -> AgentRun:
    transport = await open_transport(agent)
    conversation = Conversation(agent_base(workload, shape, model))
    new_items = first_input(workload, shape, placement.name, agent)
    samples: list[TurnSample] = []
    start = time.perf_counter()
    try:
        for turn in range(shape.turns):
            at = time.perf_counter() - start
            result = await send_turn(transport, placement.mode, conversation, new_items)
            response: dict[str, Any] = result.response
            usage = response.get("usage") or {}
            calls = function_calls(response.get("output", []))
            samples.append(TurnSample(
                placement.name, agent, turn, int(usage.get("input_tokens", 0)),
                int((usage.get("input_tokens_details") or {}).get("cached_tokens", 0)),
                int(usage.get("output_tokens", 0)), len(calls),
                result.first_delta_s if result.first_delta_s is not None else result.wait_s, result.wait_s, at,
                response.get("replica"),
            ))
            new_items = next_items(calls, step_outputs(workload, turn, shape))
        rollout = time.perf_counter() - start
    finally:
        await transport.close()
    return AgentRun(placement.name, agent, rollout, samples)


async def run_placement(placement: Placement, open_transport: Opener, workload: Workload, shape: ScaleShape,
                        agents: int, model: str) -> tuple[list[AgentRun], float]:
    """Every agent at once; their runs and the placement's wall time."""
    start = time.perf_counter()
    runs = await asyncio.gather(*(run_agent(placement, open_transport, workload, shape, agent, model)
                                  for agent in range(agents)))
    return list(runs), time.perf_counter() - start
