"""`DecodeBatch`: one `llama_decode` call's tokens, each with its position, sequence and whether its
logits are wanted. The engine fills one per step with the next token of every decoding turn and a
prefill chunk, then reads each turn's logits by the index `add` returned."""

from __future__ import annotations

from collections.abc import Sequence

import llama_cpp


class DecodeBatch:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._batch = llama_cpp.llama_batch_init(capacity, 0, 1)
        self.size = 0

    def clear(self) -> None:
        self.size = 0

    @property
    def room(self) -> int:
        return self.capacity - self.size

    def add(self, tokens: Sequence[int], start: int, seq: int, logits_last: bool) -> int:
        """Tokens at positions `start`... of sequence `seq`; returns the last one's index in the batch."""
        batch = self._batch
        if len(tokens) > self.room:
            raise ValueError(f"{len(tokens)} tokens do not fit the batch ({self.room} left)")
        for offset, token in enumerate(tokens):
            i = self.size + offset
            batch.token[i] = token
            batch.pos[i] = start + offset
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = False
        self.size += len(tokens)
        last = self.size - 1
        batch.logits[last] = logits_last
        return last

    def decode(self, ctx: llama_cpp.llama_context_p) -> int:
        """llama_decode's status: 0 on success, 1 when no KV cells were free, negative on errors."""
        self._batch.n_tokens = self.size
        return int(llama_cpp.llama_decode(ctx, self._batch))

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
