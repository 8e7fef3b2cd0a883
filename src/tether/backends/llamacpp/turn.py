"""`Turn`: one job's progress across engine steps: the tokens it still has to evaluate, what it sampled,
its sampler, and the text it emitted.

`pending` is what the turn puts into the next batch: the rest of its prompt while it prefills, then
the one token it sampled last (a token is evaluated in the step after it was sampled, so a turn that
is parked between steps needs no saved logits: its next step evaluates that token).
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

import llama_cpp

from .jobs import TurnJob, TurnResult
from .kv_store import ParkedState
from .sampler import TurnSampler
from .slots import Slot

if TYPE_CHECKING:
    from .engine import Engine


class Turn:
    def __init__(self, job: TurnJob) -> None:
        self.job = job
        self.begun = False
        self.slot: Slot | None = None
        self.pending: list[int] = []
        self.generated: list[int] = []
        self.pieces: list[str] = []
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.sampler: TurnSampler | None = None
        self.limit = 0
        self.reused = 0
        self.seconds = 0.0  # its share of the steps it was in, and its own sampling
        self.parked: ParkedState | None = None  # its exact state while it waits for a slot again
        self.since = 0  # the step at which it last got a slot
        self.fed_at = 0.0  # the scheduler's clock when a step last evaluated some of its prompt

    def begin(self, engine: Engine, reused: int) -> None:
        """Start after `reused` prompt tokens that its slot already holds."""
        prompt, settings = self.job.prompt, self.job.sampling
        self.begun = True
        self.reused = reused
        self.pending = prompt[reused:]
        self.limit = engine.n_ctx - len(prompt)
        if settings.max_tokens is not None:
            self.limit = min(self.limit, settings.max_tokens)
        self.sampler = TurnSampler(engine.loaded.vocab, settings)
        counters = engine.counters
        counters["turns"] += 1
        counters["prompt_tokens"] += len(prompt)
        counters["cached_tokens"] += reused

    @property
    def prefilling(self) -> bool:
        return len(self.pending) > 1

    @property
    def done_after_eval(self) -> bool:
        """No token to sample once `pending` is evaluated (a `generate: false` warm-up's prefill)."""
        return len(self.generated) >= self.limit

    def take_sample(self, engine: Engine, index: int) -> str | None:
        """Sample from the logits at batch `index`; returns the finish reason, or None to go on."""
        assert self.sampler is not None
        loaded = engine.loaded
        token = self.sampler.sample(loaded.ctx, index)
        if llama_cpp.llama_vocab_is_eog(loaded.vocab, token):
            return "stop"
        self.generated.append(token)
        self._emit_text(self.decoder.decode(loaded.piece(token)))
        if len(self.generated) >= self.limit:
            return "length"  # the last token of a truncated turn needs no logits
        if self.job.stop_soon.is_set():
            return "stop"  # steered: ended here, the slot holding exactly what was generated
        self.pending = [token]
        return None

    def result(self, reason: str) -> TurnResult:
        self._emit_text(self.decoder.decode(b"", final=True))
        return TurnResult(reason, self.generated, "".join(self.pieces), self.reused, self.seconds)

    def close(self) -> None:
        self.parked = None
        if self.sampler is not None:
            self.sampler.close()
            self.sampler = None

    def _emit_text(self, piece: str) -> None:
        if piece:
            self.pieces.append(piece)
            self.job.emit(("text", piece))
