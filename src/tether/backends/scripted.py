"""The scripted backend: a deterministic model for tests and benchmarks (a product feature, documented).

The k-th model turn of a conversation plays `turns[k]`, where k counts the model turns already in the
context (a model turn is a maximal run of consecutive model-produced items); past the end it answers
`done`. Text and tool-call arguments stream in small deltas at `tokens_per_second` after `ttft_ms`;
with `prefill_tokens_per_second` set it also waits for the prompt tokens it did not have cached, like
a real engine. Sessions keep their conversation's tokens "cached"; fresh sessions find their longest
known prefix in a process-wide prefix registry, as an engine's prefix cache would.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from ..api.ids import new_id
from ..api.items import Item, is_model_item, item_text
from ..api.tools import OfferedTool
from .base import Backend, BackendSession, Delta, Finished, GenerationParams, TextDelta, ToolCallDelta
from .tokens import approx_tokens, context_tokens, item_tokens, preamble_tokens

CHARS_PER_DELTA = 8
PREFIX_REGISTRY_SIZE = 4096


@dataclass(frozen=True, slots=True)
class ScriptedToolCall:
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ScriptedTurn:
    text: str = ""
    tool_calls: tuple[ScriptedToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Script:
    turns: tuple[ScriptedTurn, ...]
    tokens_per_second: float = 1000.0
    ttft_ms: float = 20.0
    prefill_tokens_per_second: float | None = None

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Script:
        if not isinstance(data, dict) or not isinstance(data.get("turns"), list):
            raise ValueError("a script is a JSON object with a 'turns' array")
        turns = []
        for index, raw in enumerate(data["turns"]):
            if not isinstance(raw, dict):
                raise ValueError(f"turns[{index}] must be an object")
            calls = []
            for call in raw.get("tool_calls") or []:
                arguments = call.get("arguments", {})
                if not isinstance(arguments, str):
                    arguments = orjson.dumps(arguments).decode()
                calls.append(ScriptedToolCall(str(call["name"]), arguments))
            if not calls and not isinstance(raw.get("text"), str):
                raise ValueError(f"turns[{index}] needs 'text' or 'tool_calls'")
            turns.append(ScriptedTurn(str(raw.get("text") or ""), tuple(calls)))
        prefill = data.get("prefill_tokens_per_second")
        return Script(
            turns=tuple(turns),
            tokens_per_second=float(data.get("tokens_per_second") or 1000.0),
            ttft_ms=float(data.get("ttft_ms") if data.get("ttft_ms") is not None else 20.0),
            prefill_tokens_per_second=float(prefill) if prefill else None,
        )

    @staticmethod
    def load(path: str | Path | None) -> Script:
        if path is None:
            text = resources.files("tether.backends").joinpath("demo_script.json").read_bytes()
        else:
            text = Path(path).read_bytes()
        return Script.from_dict(orjson.loads(text))

    def turn(self, k: int) -> ScriptedTurn:
        return self.turns[k] if k < len(self.turns) else ScriptedTurn(text="done")


def _digest(previous: bytes, item: Item) -> bytes:
    """Chains an item's content (not its id) onto a prefix digest, so re-sent history matches."""
    material = orjson.dumps(
        [item.get("type"), item.get("role"), item.get("name"), item.get("call_id"), item_text(item)]
    )
    return hashlib.blake2b(previous + material, digest_size=16).digest()


def _preamble_digest(instructions: str | None, tools: Sequence[OfferedTool]) -> bytes:
    material = orjson.dumps([instructions, [(t.name, t.description, t.parameters) for t in tools]])
    return hashlib.blake2b(material, digest_size=16).digest()


class PrefixRegistry:
    """Known prompt prefixes (digest -> tokens), least recently used dropped first."""

    def __init__(self, size: int = PREFIX_REGISTRY_SIZE) -> None:
        self._entries: OrderedDict[bytes, int] = OrderedDict()
        self._size = size

    def add(self, digest: bytes, tokens: int) -> None:
        self._entries[digest] = tokens
        self._entries.move_to_end(digest)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def get(self, digest: bytes) -> int | None:
        tokens = self._entries.get(digest)
        if tokens is not None:
            self._entries.move_to_end(digest)
        return tokens


@dataclass(slots=True)
class _Held:
    """What a session holds: a prefix digest, its tokens, and where the script stands."""

    preamble: bytes = b""
    digest: bytes = b""
    tokens: int = 0
    model_turns: int = 0
    last_was_model: bool = False
    fresh: bool = True


class ScriptedSession(BackendSession):
    def __init__(self, backend: ScriptedBackend) -> None:
        super().__init__()
        self.backend = backend
        self.held = _Held()
        self._stopping = False  # asked to end the running turn at its next token (steering)

    def fork(self) -> ScriptedSession:
        twin = ScriptedSession(self.backend)
        held = self.held
        twin.held = _Held(held.preamble, held.digest, held.tokens, held.model_turns, held.last_was_model, False)
        twin.items_seen = self.items_seen
        twin.pending = list(self.pending)
        return twin

    def _count_turns(self, items: Sequence[Item]) -> None:
        for item in items:
            model = is_model_item(item)
            if model and not self.held.last_was_model:
                self.held.model_turns += 1
            self.held.last_was_model = model

    def _render(self, items: list[Item], params: GenerationParams) -> tuple[int, int]:
        """Fold `items` into the held prompt; returns (prompt tokens, cached tokens)."""
        held = self.held
        preamble = _preamble_digest(params.instructions, params.preamble_tools)
        registry = self.backend.prefixes
        if held.fresh or preamble != held.preamble:
            # Nothing of ours matches: start over from the preamble, then look for a known prefix.
            held.preamble = preamble
            held.digest = preamble
            held.tokens = preamble_tokens(params.instructions, params.preamble_tools)
            cached = registry.get(preamble) or 0
            digest = preamble
            tokens = held.tokens
            for item in items:
                digest = _digest(digest, item)
                tokens += item_tokens(item)
                known = registry.get(digest)
                if known is not None:
                    cached = known
            held.fresh = False
        else:
            cached = held.tokens
            digest, tokens = held.digest, held.tokens
            for item in items:
                digest = _digest(digest, item)
                tokens += item_tokens(item)
        held.digest, held.tokens = digest, tokens
        registry.add(digest, tokens)
        self._count_turns(items)
        return tokens, min(cached, tokens)

    async def warm(self, new_items: Sequence[Item], params: GenerationParams) -> int:
        items = self.take_new(new_items)
        prompt, _ = self._render(items, params)
        return prompt

    async def generate(self, new_items: Sequence[Item], params: GenerationParams) -> AsyncIterator[Delta]:
        script = self.backend.script
        items = self.take_new(new_items)
        self.broken = True  # until the turn completes
        prompt_tokens, cached_tokens = self._render(items, params)
        turn = script.turn(self.held.model_turns)
        delay = script.ttft_ms / 1000.0
        if script.prefill_tokens_per_second:
            delay += (prompt_tokens - cached_tokens) / script.prefill_tokens_per_second
        slept = await sleep_until(time.perf_counter() + delay)
        pacer = Pacer(script.tokens_per_second)
        produced = 0
        limit = params.max_output_tokens
        if turn.text:
            for chunk in chunks(turn.text):
                cost = approx_tokens(chunk)
                if limit is not None and produced + cost > limit:
                    self.broken = self._stopping = False
                    yield Finished("length", prompt_tokens, cached_tokens, produced, slept)
                    return
                if self._stopping:
                    break  # steered: end here, at a token boundary, with the state matching the output
                produced += cost
                if (deadline := pacer.spend(cost)) is not None:
                    slept += await sleep_until(deadline)
                yield TextDelta(chunk)
        for index, call in enumerate(turn.tool_calls):
            if self._stopping:
                break
            call_id = new_id("call")
            name_sent = False
            for chunk in chunks(call.arguments) or [""]:
                cost = approx_tokens(chunk)
                produced += cost
                if (deadline := pacer.spend(cost)) is not None:
                    slept += await sleep_until(deadline)
                if not name_sent:
                    yield ToolCallDelta(index, chunk, name=call.name, call_id=call_id)
                    name_sent = True
                else:
                    yield ToolCallDelta(index, chunk)
        self.broken = False
        self._stopping = False
        yield Finished("stop", prompt_tokens, cached_tokens, produced, slept)

    def stop_soon(self) -> bool:
        self._stopping = True
        return True

    def commit(self, output: Sequence[Item]) -> None:
        """Fold the turn's output (as the turn engine assembled it) into the held prompt."""
        super().commit(output)
        held = self.held
        for item in output:
            held.digest = _digest(held.digest, item)
            held.tokens += item_tokens(item)
        self.backend.prefixes.add(held.digest, held.tokens)
        self._count_turns(output)


def chunks(text: str) -> list[str]:
    return [text[i : i + CHARS_PER_DELTA] for i in range(0, len(text), CHARS_PER_DELTA)]


async def sleep_until(deadline: float) -> float:
    """Sleeps until `deadline`; returns the seconds actually slept (the model's simulated time)."""
    before = time.perf_counter()
    if deadline - before > 0:
        await asyncio.sleep(deadline - before)
        return time.perf_counter() - before
    return 0.0


class Pacer:
    """Spends output tokens at a steady rate by the clock, so short sleeps don't add up to drift."""

    def __init__(self, tokens_per_second: float) -> None:
        self.start = time.perf_counter()
        self.rate = tokens_per_second
        self.spent = 0

    def spend(self, tokens: int) -> float | None:
        """Count `tokens` out; the time to sleep until before they are due, or None when they already are
        (no coroutine then: a fast model would spend most of its turn creating them)."""
        self.spent += tokens
        deadline = self.start + self.spent / self.rate
        return deadline if deadline - time.perf_counter() > 0.001 else None


class ScriptedBackend(Backend):
    name = "scripted"

    def __init__(self, script: Script) -> None:
        self.script = script
        self.prefixes = PrefixRegistry()

    def new_session(self) -> ScriptedSession:
        return ScriptedSession(self)

    def count_tokens(self, items: Sequence[Item], params: GenerationParams) -> int:
        return context_tokens(items, params.instructions, params.preamble_tools)

    def model_ids(self) -> list[str]:
        return ["tether-scripted"]
