"""One agent's conversation against each engine, turn by turn, timed at the client.

tether: a WebSocket lane; each turn sends only its new message and `previous_response_id` (the
engine keeps the conversation's KV in its slot). llama-server: `/v1/chat/completions`, streamed, with
the whole history every turn (its prompt cache finds the shared prefix in the agent's slot). Both ask
for greedy answers of at most the same number of tokens.

llama-server closes kept-alive connections it considers idle; a request that fails before any byte
of its answer came back is sent again on a fresh connection and counted as a reconnect, not as an
engine failure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from .engine_workload import AgentScript


@dataclass(frozen=True, slots=True)
class TurnSample:
    engine: str
    agents: int
    context: int
    agent: int
    turn: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    ttft_s: float
    total_s: float
    started_s: float  # since the configuration's start
    reconnects: int = 0


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    ttft_s: float
    total_s: float
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    text: str
    reconnects: int = 0


class AgentClient(Protocol):
    def turn(self, script: AgentScript, turn: int, max_tokens: int) -> TurnOutcome: ...

    def close(self) -> None: ...


class TetherAgent:
    """A WebSocket lane on tether's Responses API."""

    def __init__(self, url: str) -> None:
        from openai import OpenAI

        self._client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=1800)
        self._manager = self._client.responses.connect()
        self._conn = self._manager.__enter__()
        self._previous: str | None = None

    def turn(self, script: AgentScript, turn: int, max_tokens: int) -> TurnOutcome:
        started = time.perf_counter()
        message: Any = script.message(turn)
        self._conn.response.create(model="bench", input=[message], previous_response_id=self._previous,
                                   store=False, max_output_tokens=max_tokens, temperature=0)
        first: float | None = None
        text: list[str] = []
        response: dict[str, Any] | None = None
        for event in self._conn:
            data: dict[str, Any] = event.to_dict()
            kind = data["type"]
            if kind == "response.output_text.delta":
                if first is None:
                    first = time.perf_counter() - started
                text.append(data["delta"])
            elif kind in ("response.completed", "response.incomplete"):
                response = data["response"]
                break
            elif kind in ("response.failed", "error"):
                raise RuntimeError(f"tether turn failed: {data}")
        if response is None:
            raise RuntimeError("the WebSocket closed before the turn's terminal event")
        total = time.perf_counter() - started
        self._previous = response["id"]
        usage = response["usage"]
        return TurnOutcome(first if first is not None else total, total, usage["input_tokens"],
                           usage["input_tokens_details"]["cached_tokens"], usage["output_tokens"], "".join(text))

    def close(self) -> None:
        self._manager.__exit__(None, None, None)
        self._client.close()


class LlamaServerAgent:
    """Full-history chat completions on llama-server, streamed."""

    def __init__(self, url: str) -> None:
        self._url = url + "/v1/chat/completions"
        self._http = httpx.Client(timeout=httpx.Timeout(1800.0, connect=10.0))
        self._messages: list[dict[str, Any]] = []

    def turn(self, script: AgentScript, turn: int, max_tokens: int) -> TurnOutcome:
        self._messages.append(script.message(turn))
        body = {"model": "bench", "messages": self._messages, "stream": True, "max_tokens": max_tokens,
                "temperature": 0, "cache_prompt": True, "stream_options": {"include_usage": True}}
        reconnects = 0
        while True:
            try:
                outcome = self._stream(body, reconnects)
                break
            except _ClosedBeforeAnswer:
                reconnects += 1
                if reconnects > 3:
                    raise RuntimeError("llama-server closed the connection before answering, four times") from None
                self._http.close()
                self._http = httpx.Client(timeout=httpx.Timeout(1800.0, connect=10.0))
        self._messages.append({"role": "assistant", "content": outcome.text})
        return outcome

    def _stream(self, body: dict[str, Any], reconnects: int) -> TurnOutcome:
        started = time.perf_counter()
        first: float | None = None
        text: list[str] = []
        timings: dict[str, Any] = {}
        usage: dict[str, Any] = {}
        got_bytes = False
        try:
            with self._http.stream("POST", self._url, json=body) as response:
                got_bytes = True
                if response.status_code != 200:
                    raise RuntimeError(f"llama-server answered {response.status_code}: {response.read()[:500]!r}")
                for line in response.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = orjson.loads(line[6:])
                    for choice in chunk.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            if first is None:
                                first = time.perf_counter() - started
                            text.append(piece)
                    timings = chunk.get("timings") or timings
                    usage = chunk.get("usage") or usage
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError) as exc:
            if not got_bytes:
                raise _ClosedBeforeAnswer() from exc
            raise
        total = time.perf_counter() - started
        cached = int(timings.get("cache_n", 0))
        evaluated = int(timings.get("prompt_n", usage.get("prompt_tokens", 0)))
        prompt = cached + evaluated if timings else int(usage.get("prompt_tokens", 0))
        output = int(timings.get("predicted_n", usage.get("completion_tokens", 0)))
        return TurnOutcome(first if first is not None else total, total, prompt, cached, output, "".join(text),
                           reconnects)

    def close(self) -> None:
        self._http.close()


class _ClosedBeforeAnswer(Exception):
    pass
