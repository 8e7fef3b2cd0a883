"""`TurnSampler`: one turn's llama.cpp sampler chain (grammar, then greedy or top-k/top-p/min-p/temperature).

Each turn has its own chain, so a grammar's parse state and the random state survive the steps where
other turns decode beside it, and a parked turn resumes exactly where it stopped.
"""

from __future__ import annotations

import llama_cpp

from .jobs import Sampling

TOP_K = 40
MIN_P = 0.05


class TurnSampler:
    def __init__(self, vocab: llama_cpp.llama_vocab_p, settings: Sampling) -> None:
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        self._chain = llama_cpp.llama_sampler_chain_init(params)
        if settings.grammar:
            grammar = llama_cpp.llama_sampler_init_grammar(vocab, settings.grammar.encode("utf-8"), b"root")
            if not grammar:
                self.close()
                raise ValueError("the grammar does not parse")
            self._add(grammar)
        if settings.temperature <= 0.0:
            self._add(llama_cpp.llama_sampler_init_greedy())
        else:
            self._add(llama_cpp.llama_sampler_init_top_k(TOP_K))
            self._add(llama_cpp.llama_sampler_init_top_p(settings.top_p, 1))
            self._add(llama_cpp.llama_sampler_init_min_p(MIN_P, 1))
            self._add(llama_cpp.llama_sampler_init_temp(settings.temperature))
            seed = settings.seed if settings.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED
            self._add(llama_cpp.llama_sampler_init_dist(seed))

    def _add(self, sampler: llama_cpp.llama_sampler_p) -> None:
        llama_cpp.llama_sampler_chain_add(self._chain, sampler)  # the chain owns it from here

    def sample(self, ctx: llama_cpp.llama_context_p, index: int) -> int:
        """The next token from the logits at batch `index` of the last decode (accepted into the chain)."""
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx, index))

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
