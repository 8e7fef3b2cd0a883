"""The engine benchmark's floor: what llama.cpp itself takes, with nothing else running, for a later
turn at a given context: its new tokens evaluated on top of a resident KV, then one decode step.

It uses the library, loader, batch size and KV layout of tether's own engine (`loader.load_model`,
one sequence) and the benchmark's model and threads, so no server, tether or llama-server, can give
a lone continuation its first token sooner: the distance of each engine's later-turn TTFT to this
figure is what serving costs on top of the kernel. Token values do not change the kernel's time, so
the tokens are random; each context is prefilled once and each continuation rolled back after.

Run in a process of its own (the engine benchmark does, before it starts the servers):

    python -m tether.bench.engine_floor --model M.gguf --threads 2 --positions 1300,4400 --new-tokens 165

prints one JSON object: for each position the fastest continuation and decode step of `REPEATS`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import llama_cpp
import orjson

from ..backends.llamacpp.batch import DecodeBatch
from ..backends.llamacpp.loader import N_BATCH, ContextShape, LoadedModel, load_model

SEQ = 0
#: continuations timed at each position; the fastest is reported, since on a shared machine anything
#: else only adds time (one run measured 17% above what the engine later took for the same turn)
REPEATS = 5
TOKEN_MARGIN = 1000  # random tokens come from the middle of the vocabulary, away from special tokens


def _evaluate(loaded: LoadedModel, batch: DecodeBatch, tokens: list[int], start: int) -> None:
    """`tokens` at positions `start`... of the sequence, in batches of the engine's size."""
    for offset in range(0, len(tokens), N_BATCH):
        chunk = tokens[offset:offset + N_BATCH]
        batch.clear()
        batch.add(chunk, start + offset, SEQ, logits_last=True)
        status = batch.decode(loaded.ctx)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")


def measure(model: Path, threads: int, positions: list[int], new_tokens: int, *,
            flash_attn: bool = False, repeats: int = REPEATS) -> dict[str, Any]:
    """The floor at each position (ascending): prefill to it, then the fastest of `repeats` continuations."""
    positions = sorted(set(positions))
    loaded = load_model(model, ContextShape(1, positions[-1] + new_tokens + 64, threads, flash_attn))
    batch = DecodeBatch(N_BATCH)
    memory = loaded.context.memory
    rng = random.Random(0)
    vocab = llama_cpp.llama_vocab_n_tokens(loaded.vocab)

    def tokens(count: int) -> list[int]:
        return [rng.randrange(TOKEN_MARGIN, vocab - TOKEN_MARGIN) for _ in range(count)]

    rows = []
    filled = 0
    try:
        for position in positions:
            started = time.perf_counter()
            _evaluate(loaded, batch, tokens(position - filled), filled)
            prefill_s = time.perf_counter() - started
            prefill_rate = (position - filled) / prefill_s
            filled = position
            continuations, steps = [], []
            for _ in range(repeats):
                new = tokens(new_tokens)
                started = time.perf_counter()
                _evaluate(loaded, batch, new, position)
                continuations.append(time.perf_counter() - started)
                started = time.perf_counter()
                _evaluate(loaded, batch, tokens(1), position + new_tokens)
                steps.append(time.perf_counter() - started)
                llama_cpp.llama_memory_seq_rm(memory, SEQ, position, -1)  # back to the context alone
            continuation_ms = 1000 * min(continuations)
            step_ms = 1000 * min(steps)
            rows.append({"position": position, "continuation_ms": continuation_ms, "decode_step_ms": step_ms,
                         "floor_ms": continuation_ms + step_ms, "prefill_tok_s_to_here": prefill_rate})
    finally:
        batch.close()
        loaded.close()
    return {"model": model.name, "threads": threads, "new_tokens": new_tokens, "flash_attn": flash_attn,
            "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tether.bench.engine_floor")
    parser.add_argument("--model", type=Path, required=True, help="a GGUF file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--positions", required=True, help="context sizes a continuation starts at, comma-separated")
    parser.add_argument("--new-tokens", type=int, default=165)
    parser.add_argument("--flash-attn", action="store_true", help="llama.cpp's flash attention (tether: off)")
    args = parser.parse_args(argv)
    positions = [int(part) for part in args.positions.split(",") if part.strip()]
    result = measure(args.model, args.threads, positions, args.new_tokens, flash_attn=args.flash_attn)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
