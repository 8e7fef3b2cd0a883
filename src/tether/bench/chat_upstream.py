"""A deterministic OpenAI-compatible chat-completions server for benchmarks (`python -m tether.bench.chat_upstream`).

It plays a `Script` (the scripted backend's turn format and pacing) behind `POST /v1/chat/completions`,
streamed as SSE or as one JSON body, with tool calls and usage, and lists its model at `GET /v1/models`.
Turn k plays `turns[k]`, where k is the number of assistant turns already in `messages` (a run of
consecutive assistant messages is one turn, however a client split text and tool calls). After
`ttft_ms` (plus, with `prefill_tokens_per_second`, the prompt tokens no known prefix covers, like an
engine's prefix cache) text and tool-call arguments stream at `tokens_per_second`.

So that a benchmark can tell a proxy's time from the model's, every completion's own time (from the
request's arrival to its last byte) is kept in a ledger, read with `GET /bench/ledger?after=SEQ`, and
sent as the `x-model-seconds` header of a non-streamed answer.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..api.ids import new_id
from ..backends.scripted import Pacer, PrefixRegistry, Script, ScriptedTurn, chunks, sleep_until
from ..backends.tokens import ITEM_OVERHEAD_TOKENS, approx_tokens

LEDGER_SIZE = 10_000
DEFAULT_MODEL = "bench-model"
JSON = "application/json"

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One completion as the upstream saw it."""

    seq: int
    turn: int
    stream: bool
    messages: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    #: request arrival to last byte, as this server measured it
    model_seconds: float


class RequestError(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def message_text(message: Message) -> str:
    """The text of a chat message: a string, or the text of its content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _tool_calls(message: Message) -> list[tuple[str, str]]:
    calls = message.get("tool_calls") or []
    out = []
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            out.append((str(function.get("name", "")), str(function.get("arguments", ""))))
    return out


def message_tokens(message: Message) -> int:
    tokens = ITEM_OVERHEAD_TOKENS + approx_tokens(message_text(message))
    return tokens + sum(approx_tokens(name + arguments) for name, arguments in _tool_calls(message))


def tools_tokens(tools: Sequence[Any]) -> int:
    return sum(ITEM_OVERHEAD_TOKENS + approx_tokens(orjson.dumps(tool).decode()) for tool in tools)


def _digest(previous: bytes, message: Message) -> bytes:
    """Chains a message's content onto a prefix digest; ids are left out so re-sent history matches."""
    material = orjson.dumps([message.get("role"), message_text(message), _tool_calls(message)])
    return hashlib.blake2b(previous + material, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Prompt:
    turn: int
    tokens: int
    cached: int
    digest: bytes


def _units(messages: Sequence[Message]) -> list[Message]:
    """Messages with each run of consecutive assistant messages merged into one: one model turn, however
    a client split its text and tool calls into messages, is one unit of the prompt and of the script."""
    units: list[Message] = []
    for message in messages:
        if message.get("role") == "assistant" and units and units[-1].get("role") == "assistant":
            last = units[-1]
            calls = [*(last.get("tool_calls") or []), *(message.get("tool_calls") or [])]
            text = message_text(last) + message_text(message)
            units[-1] = {"role": "assistant", "content": text, "tool_calls": calls}
        else:
            units.append(message)
    return units


def measure_prompt(messages: Sequence[Message], tools: Sequence[Any], registry: PrefixRegistry) -> Prompt:
    """Counts the prompt's tokens and how many of them the longest known prefix covers; registers the prompt."""
    digest = hashlib.blake2b(orjson.dumps(tools), digest_size=16).digest()
    tokens = tools_tokens(tools)
    cached = registry.get(digest) or 0
    turn = 0
    for unit in _units(messages):
        digest = _digest(digest, unit)
        tokens += message_tokens(unit)
        turn += unit.get("role") == "assistant"
        known = registry.get(digest)
        if known is not None:
            cached = known
    registry.add(digest, tokens)
    return Prompt(turn, tokens, min(cached, tokens), digest)


@dataclass(slots=True)
class _Played:
    text: str = ""
    tool_calls: list[dict[str, Any]] | None = None
    tokens: int = 0
    finish_reason: str = "stop"


class ChatUpstream:
    """The server's state: the script, the prefix registry and the ledger."""

    def __init__(self, script: Script, model: str = DEFAULT_MODEL, dump: Path | None = None) -> None:
        self.script = script
        self.model = model
        self.dump = dump
        self.prefixes = PrefixRegistry()
        self.ledger: deque[LedgerEntry] = deque(maxlen=LEDGER_SIZE)
        self.seq = 0

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.completions, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/bench/ledger", self.read_ledger, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
            ]
        )

    async def health(self, request: Request) -> Response:
        return Response(b"{}", media_type=JSON)

    async def models(self, request: Request) -> Response:
        model = {"id": self.model, "object": "model", "created": 0, "owned_by": "tether-bench"}
        return Response(orjson.dumps({"object": "list", "data": [model]}), media_type=JSON)

    async def read_ledger(self, request: Request) -> Response:
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            return _error(RequestError("'after' must be an integer", "after"))
        entries = [asdict(entry) for entry in self.ledger if entry.seq > after]
        return Response(orjson.dumps({"last": self.seq, "entries": entries}), media_type=JSON)

    async def completions(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = _parse(await request.body())
        except RequestError as exc:
            return _error(exc)
        messages, tools = body["messages"], body.get("tools") or []
        if self.dump is not None:
            with self.dump.open("ab") as out:
                out.write(orjson.dumps(body) + b"\n")
        prompt = measure_prompt(messages, tools, self.prefixes)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        turn = self.script.turn(prompt.turn)
        header = _Header(new_id("chatcmpl"), int(time.time()), str(body.get("model") or self.model))
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = self._stream(header, turn, prompt, limit, include_usage, messages, started)
            return StreamingResponse(chunks, media_type="text/event-stream", headers={"cache-control": "no-cache"})
        played = _Played()
        async for _ in self._play(turn, prompt, limit, played):
            pass
        self._finish(prompt, played, messages, stream=False, started=started)
        seconds = time.perf_counter() - started
        message: Message = {"role": "assistant", "content": played.text or None}
        if played.tool_calls:
            message["tool_calls"] = played.tool_calls
        answer = header.body("chat.completion") | {
            "choices": [{"index": 0, "message": message, "finish_reason": played.finish_reason, "logprobs": None}],
            "usage": _usage(prompt, played.tokens),
        }
        return Response(orjson.dumps(answer), media_type=JSON, headers={"x-model-seconds": f"{seconds:.6f}"})

    async def _play(
        self, turn: ScriptedTurn, prompt: Prompt, limit: int | None, played: _Played
    ) -> AsyncIterator[dict[str, Any]]:
        """Paces the turn and yields chat deltas; `played` collects the whole answer."""
        script = self.script
        delay = script.ttft_ms / 1000.0
        if script.prefill_tokens_per_second:
            delay += (prompt.tokens - prompt.cached) / script.prefill_tokens_per_second
        await asyncio.sleep(delay)
        pacer = Pacer(script.tokens_per_second)
        yield {"role": "assistant", "content": ""}
        for chunk in chunks(turn.text):
            cost = approx_tokens(chunk)
            if limit is not None and played.tokens + cost > int(limit):
                played.finish_reason = "length"
                return
            played.tokens += cost
            if (deadline := pacer.spend(cost)) is not None:
                await sleep_until(deadline)
            played.text += chunk
            yield {"content": chunk}
        calls: list[dict[str, Any]] = []
        for index, call in enumerate(turn.tool_calls):
            call_id = new_id("call")
            function = {"name": call.name, "arguments": call.arguments}
            calls.append({"id": call_id, "type": "function", "function": function})
            opening = {"name": call.name, "arguments": ""}
            yield {"tool_calls": [{"index": index, "id": call_id, "type": "function", "function": opening}]}
            for chunk in chunks(call.arguments):
                cost = approx_tokens(chunk)
                played.tokens += cost
                if (deadline := pacer.spend(cost)) is not None:
                    await sleep_until(deadline)
                yield {"tool_calls": [{"index": index, "function": {"arguments": chunk}}]}
        if calls:
            played.tool_calls = calls
            played.finish_reason = "tool_calls"

    async def _stream(
        self,
        header: _Header,
        turn: ScriptedTurn,
        prompt: Prompt,
        limit: int | None,
        include_usage: bool,
        messages: list[Message],
        started: float,
    ) -> AsyncIterator[bytes]:
        played = _Played()
        async for delta in self._play(turn, prompt, limit, played):
            yield _sse(header.chunk([{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}]))
        yield _sse(header.chunk([{"index": 0, "delta": {}, "finish_reason": played.finish_reason, "logprobs": None}]))
        if include_usage:
            yield _sse(header.chunk([]) | {"usage": _usage(prompt, played.tokens)})
        yield b"data: [DONE]\n\n"
        self._finish(prompt, played, messages, stream=True, started=started)

    def _finish(
        self, prompt: Prompt, played: _Played, messages: list[Message], *, stream: bool, started: float
    ) -> None:
        # An engine keeps what it generated cached too: the next turn's prompt starts with prompt + answer.
        answer: Message = {"role": "assistant", "content": played.text, "tool_calls": played.tool_calls}
        self.prefixes.add(_digest(prompt.digest, answer), prompt.tokens + message_tokens(answer))
        self.seq += 1
        entry = LedgerEntry(
            self.seq, prompt.turn, stream, len(messages), prompt.tokens, prompt.cached, played.tokens,
            time.perf_counter() - started,
        )
        self.ledger.append(entry)


@dataclass(frozen=True, slots=True)
class _Header:
    id: str
    created: int
    model: str

    def body(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "system_fingerprint": None}

    def chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return self.body("chat.completion.chunk") | {"choices": choices}


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _usage(prompt: Prompt, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt.tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt.tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": prompt.cached},
    }


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"The body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise RequestError("The body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise RequestError("'messages' must be a non-empty array of message objects.", "messages")
    if not isinstance(body.get("tools") or [], list):
        raise RequestError("'tools' must be an array.", "tools")
    if (body.get("n") or 1) != 1:
        raise RequestError("Only n=1 is supported.", "n")
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise RequestError("'max_completion_tokens' must be a positive integer.", "max_completion_tokens")
    return body


def _error(exc: RequestError, status: int = 400) -> Response:
    error = {"message": str(exc), "type": "invalid_request_error", "param": exc.param, "code": None}
    return Response(orjson.dumps({"error": error}), status_code=status, media_type=JSON)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m tether.bench.chat_upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--script", default=None, help="a JSON script of model turns (default: the demo script)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the model id that /v1/models lists")
    parser.add_argument("--dump", type=Path, default=None, help="append every request body to this file (JSON lines)")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    upstream = ChatUpstream(Script.load(args.script), args.model, args.dump)
    uvicorn.run(upstream.app(), host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
