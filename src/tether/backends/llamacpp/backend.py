"""`LlamaCppBackend`: the embedded llama.cpp engine behind the `Backend` interface."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...api.items import Item
from ..base import Backend, GenerationParams
from .chat_format import ChatTemplate, PromptRenderer
from .engine import Engine
from .grammar import grammar_is_valid
from .loader import LoadedModel
from .metrics import EngineCollector
from .session import LlamaCppSession


class LlamaCppBackend(Backend):
    name = "llamacpp"

    def __init__(self, path: Path, n_ctx: int = 8192, threads: int | None = None, kv_budget_mb: int = 512,
                 parallel: int | None = None) -> None:
        self.path = path
        self.engine = Engine(path, n_ctx, threads, kv_budget_mb * 1024 * 1024, slots=parallel)
        self._model: LoadedModel | None = None
        self._renderer: PromptRenderer | None = None
        self._collector: EngineCollector | None = None

    async def start(self) -> None:
        model = await self.engine.start()
        template = ChatTemplate(model.chat_template, model.bos_text, model.eos_text)
        self._model, self._renderer = model, PromptRenderer(template)
        self._collector = EngineCollector.register(self.engine)

    async def aclose(self) -> None:
        if self._collector is not None:
            self._collector.unregister()
            self._collector = None
        self._model = self._renderer = None
        await self.engine.aclose()

    @property
    def model(self) -> LoadedModel:
        if self._model is None:
            raise RuntimeError("the llama.cpp backend is not started")
        return self._model

    @property
    def renderer(self) -> PromptRenderer:
        if self._renderer is None:
            raise RuntimeError("the llama.cpp backend is not started")
        return self._renderer

    def tokenize(self, text: str, *, first: bool) -> list[int]:
        """Tokens of prompt text (special tokens parsed); `first` adds BOS where the model wants one.

        The vocabulary is read-only once loaded, so this is safe beside the engine thread's decoding.
        """
        model = self.model
        add_bos = first and model.add_bos and not (model.bos_text and text.startswith(model.bos_text))
        return model.tokenize(text.encode("utf-8"), add_bos=add_bos)

    def grammar_ok(self, grammar: str) -> bool:
        return grammar_is_valid(self.model.vocab, grammar)

    def new_session(self) -> LlamaCppSession:
        return LlamaCppSession(self)

    def count_tokens(self, items: Sequence[Item], params: GenerationParams) -> int:
        return len(self.tokenize(self.renderer.render(items, params), first=True))

    def model_ids(self) -> list[str]:
        return [self.path.stem]

    def stats(self) -> dict[str, Any]:
        load = self._model.load_seconds if self._model is not None else None
        return {"model": self.path.name, "load_seconds": load, **self.engine.stats()}
