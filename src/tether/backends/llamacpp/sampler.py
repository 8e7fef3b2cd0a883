"""`TurnSampler`: one turn's sampling: greedy or top-k/top-p/min-p/temperature, under the turn's grammar.

Each turn has its own sampler, so a grammar's parse state and the random state survive the steps where
other turns decode beside it, and a parked turn resumes exactly where it stopped.

Greedy under a grammar asks the grammar about the best token first, then about the next 64, and about
the whole vocabulary only when none of those is allowed. That picks exactly what "grammar, then
greedy" picks (the first token of highest logit among those the grammar allows) at a fraction of the
cost: checking all 49k tokens against the grammar takes 6 to 10 ms a token on this CPU, time every
other turn of the batch would wait for too (measured: 0.5 ms a token for a JSON schema, 1.9 for a
tool call, same tokens).
"""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp
import numpy as np

from .jobs import Sampling

TOP_K = 40
MIN_P = 0.05
TOP_CHECK = 64  # greedy under a grammar: candidates checked after the best one is refused


def _grammar_sampler(vocab: Any, grammar: str) -> Any:
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if not sampler:
        raise ValueError("the grammar does not parse")
    return sampler


class TurnSampler:
    def __init__(self, vocab: Any, settings: Sampling) -> None:
        self._chain: Any = None
        self._greedy_grammar: _GreedyGrammar | None = None
        if settings.grammar and settings.temperature <= 0.0:
            self._greedy_grammar = _GreedyGrammar(vocab, settings.grammar)
            return
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        self._chain = llama_cpp.llama_sampler_chain_init(params)
        if settings.grammar:
            self._add(_grammar_sampler(vocab, settings.grammar))
        if settings.temperature <= 0.0:
            self._add(llama_cpp.llama_sampler_init_greedy())
        else:
            self._add(llama_cpp.llama_sampler_init_top_k(TOP_K))
            self._add(llama_cpp.llama_sampler_init_top_p(settings.top_p, 1))
            self._add(llama_cpp.llama_sampler_init_min_p(MIN_P, 1))
            self._add(llama_cpp.llama_sampler_init_temp(settings.temperature))
            seed = settings.seed if settings.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED
            self._add(llama_cpp.llama_sampler_init_dist(seed))

    def _add(self, sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(self._chain, sampler)  # the chain owns it from here

    def sample(self, ctx: Any, index: int) -> int:
        """The next token from the logits at batch `index` of the last decode (accepted by the sampler)."""
        if self._greedy_grammar is not None:
            return self._greedy_grammar.sample(ctx, index)
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx, index))

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
        if self._greedy_grammar is not None:
            self._greedy_grammar.close()
            self._greedy_grammar = None


class _GreedyGrammar:
    def __init__(self, vocab: Any, grammar: str) -> None:
        self._grammar = _grammar_sampler(vocab, grammar)
        self._n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self._one = (llama_cpp.llama_token_data * 1)()
        self._top = (llama_cpp.llama_token_data * TOP_CHECK)()
        self._all: Any = None  # the whole vocabulary as candidates, made the first time it is needed

    def _apply(self, data: Any, size: int) -> None:
        candidates = llama_cpp.llama_token_data_array(data=data, size=size, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(candidates))

    def sample(self, ctx: Any, index: int) -> int:
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(self._n_vocab,))
        token = int(logits.argmax())
        one: Any = self._one[0]
        one.id, one.logit, one.p = token, float(logits[token]), 0.0
        self._apply(self._one, 1)
        if one.logit == -np.inf:  # refused: the best of the next few, else of all of them
            best = self._best_of_top(logits)
            token = best if best is not None else self._best_of_all(logits)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        return token

    def _best_of_top(self, logits: Any) -> int | None:
        """The allowed token of highest logit among the `TOP_CHECK` highest, if it is surely the best
        allowed of all (its logit above every token left out); lowest id first among equals."""
        top = np.argpartition(logits, -TOP_CHECK)[-TOP_CHECK:]
        view = np.ctypeslib.as_array(self._top)
        view["id"], view["logit"], view["p"] = top, logits[top], 0.0
        self._apply(self._top, TOP_CHECK)
        allowed = view["logit"] != -np.inf
        if not allowed.any():
            return None
        best = view["logit"][allowed].max()
        if best <= logits[top].min():  # a token left out may tie with it
            return None
        return int(view["id"][allowed & (view["logit"] == best)].min())

    def _best_of_all(self, logits: Any) -> int:
        if self._all is None:
            self._all = (llama_cpp.llama_token_data * self._n_vocab)()
        view = np.ctypeslib.as_array(self._all)
        view["id"] = np.arange(self._n_vocab, dtype=np.int32)
        view["logit"], view["p"] = logits, 0.0
        self._apply(self._all, self._n_vocab)
        return int(view["logit"].argmax())

    def close(self) -> None:
        if self._grammar is not None:
            llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None
