"""`LlamaCppSession`: one conversation's prompt tokens, and its turns on the shared engine.

The session keeps its items (the output ones handed back by `commit`, as the turn engine assembled
them), the text its tokens spell and the tokens themselves. A turn renders the conversation with the
chat template; when the result extends the held text (the usual case: the template appends), only
the new tail is tokenized. The engine then evaluates only the tokens past the longest prefix it
holds, in a slot or parked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from ...api.items import Item
from ..base import BackendError, BackendSession, Delta, Finished, GenerationParams
from .engine import Sampling, TurnJob, TurnResult
from .grammar import json_grammar, tool_call_grammar
from .tool_calls import ToolCallScanner

if TYPE_CHECKING:
    from .backend import LlamaCppBackend

DEFAULT_TEMPERATURE = 1.0  # the API's defaults, as the response object reports them
DEFAULT_TOP_P = 1.0


def sampling_for(params: GenerationParams) -> Sampling:
    grammar = None
    choice = params.tool_choice
    if params.tools and (choice.mode == "required" or choice.name):
        grammar = tool_call_grammar(params.tools, choice.name)
    elif params.json_schema is not None:
        grammar = json_grammar(params.json_schema)
    return Sampling(
        temperature=params.temperature if params.temperature is not None else DEFAULT_TEMPERATURE,
        top_p=params.top_p if params.top_p is not None else DEFAULT_TOP_P,
        max_tokens=params.max_output_tokens,
        grammar=grammar,
    )


class LlamaCppSession(BackendSession):
    def __init__(self, backend: LlamaCppBackend) -> None:
        super().__init__()
        self.backend = backend
        self.items: list[Item] = []
        self.text = ""  # what `tokens` spell: the last prompt and the answer generated after it
        self.tokens: list[int] = []
        self._job: TurnJob | None = None  # the turn running now, if any (what steering can stop)

    def fork(self) -> LlamaCppSession:
        twin = LlamaCppSession(self.backend)
        twin.items, twin.text, twin.tokens = list(self.items), self.text, list(self.tokens)
        twin.items_seen = self.items_seen
        twin.pending = list(self.pending)
        return twin

    def commit(self, output: Sequence[Item]) -> None:
        super().commit(output)
        self.items.extend(output)

    def release(self) -> None:
        if self.tokens:
            self.backend.engine.forget(self.tokens)
        self.tokens, self.text = [], ""

    async def warm(self, new_items: Sequence[Item], params: GenerationParams) -> int:
        """A `generate: false` warm-up: prefill the prompt into the KV cache now, so the first real
        turn evaluates only what comes after it."""
        self.items.extend(self.take_new(new_items))
        text, prompt = await self._prompt(params)
        done: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()

        def emit(message: tuple[str, Any]) -> None:
            def settle() -> None:
                if not done.done():
                    done.set_result(message)

            if message[0] in ("done", "error"):
                loop.call_soon_threadsafe(settle)

        job = TurnJob(prompt, Sampling(temperature=0.0, top_p=1.0, max_tokens=0), emit)
        self.backend.engine.submit(job)
        try:
            kind, _ = await done
        finally:
            job.cancelled.set()  # no-op once done; stops the prefill if the client went away
        if kind == "done":
            self.text, self.tokens = text, prompt
        return len(prompt)

    async def _prompt(self, params: GenerationParams) -> tuple[str, list[int]]:
        backend = self.backend
        text = backend.renderer.render(self.items, params)
        if self.text and text.startswith(self.text):
            return text, self.tokens + backend.tokenize(text[len(self.text) :], first=False)
        return text, await asyncio.to_thread(backend.tokenize, text, first=True)

    async def _fitting_prompt(self, params: GenerationParams) -> tuple[str, list[int]]:
        """The prompt; with `truncation: "auto"`, oldest items dropped (leading system and developer
        messages kept) until it leaves room for the answer in the context window."""
        text, prompt = await self._prompt(params)
        if params.truncation != "auto":
            return text, prompt
        n_ctx = self.backend.engine.n_ctx
        room = min(params.max_output_tokens or 256, n_ctx // 4)
        while len(prompt) + room > n_ctx:
            kept = 0
            while kept < len(self.items) and self.items[kept].get("role") in ("system", "developer"):
                kept += 1
            if kept >= len(self.items) - 1:
                break  # only the newest item is left: the engine reports the overflow
            del self.items[kept]
            text, prompt = await self._prompt(params)
        return text, prompt

    async def generate(self, new_items: Sequence[Item], params: GenerationParams) -> AsyncIterator[Delta]:
        self.items.extend(self.take_new(new_items))
        self.broken = True  # until the turn completes
        try:
            text, prompt = await self._fitting_prompt(params)
            sampling = sampling_for(params)
        except Exception as exc:  # a template or schema the model cannot take
            raise BackendError(f"Could not build the prompt: {exc}") from exc
        if sampling.grammar is not None and not self.backend.grammar_ok(sampling.grammar):
            raise BackendError("The JSON Schema could not be turned into a grammar for this model.", "invalid_request")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def emit(message: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, message)
            except RuntimeError:  # the loop is gone: nobody listens any more
                job.cancelled.set()

        job = self._job = TurnJob(prompt, sampling, emit)
        scanner = ToolCallScanner({tool.name: tool.kind for tool in params.tools})
        finished = False
        try:
            self.backend.engine.submit(job)
            while True:
                kind, payload = await queue.get()
                if kind == "text":
                    for delta in scanner.feed(payload):
                        yield delta
                elif kind == "error":
                    code, message = payload
                    raise BackendError(message, code)
                else:
                    result: TurnResult = payload
                    break
            if result.reason == "cancelled":
                raise BackendError("The engine stopped before the answer was complete.")
            for delta in scanner.finish():
                yield delta
            # The output items come back through `commit`, as the turn engine assembled them.
            self.text, self.tokens = text + result.text, prompt + result.generated
            self.broken = False
            finished = True
            yield Finished(result.reason, len(prompt), result.cached_tokens, len(result.generated),
                           result.model_seconds)
        finally:
            self._job = None
            if not finished:
                job.cancelled.set()  # the client went away or the turn failed: stop at the next token
                self.release()

    def stop_soon(self) -> bool:
        """Steering: the running turn ends after its next token, its KV state kept for the successor."""
        job = self._job
        if job is None:
            return False
        job.stop_soon.set()
        return True
