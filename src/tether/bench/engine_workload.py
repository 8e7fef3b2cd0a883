"""The engine benchmark's agents: what each one sends, sized in the model's own tokens.

An agent's first turn is one user message of about `context` tokens (a task with a long file pasted
in); every later turn adds a tool-output-like message of about `new_tokens` and asks for a short
answer. Every agent, run and engine gets text of its own (the seed names them), so no engine finds
another run's conversation in its cache: what is reused is the agent's own history.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORDS = (
    "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega river stone cloud lamp table "
    "window garden engine socket buffer thread kernel packet module vector matrix tensor config parser "
    "render commit branch merge review test build deploy cache queue worker signal handler"
).split()


class Tokenizer:
    """The GGUF's vocabulary alone (no weights), to size the prompts in tokens."""

    def __init__(self, model: Path) -> None:
        import llama_cpp
        from llama_cpp import _internals
        from llama_cpp._logger import set_verbose

        set_verbose(False)
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self._model = _internals.LlamaModel(path_model=str(model), params=params, verbose=False)

    def train_context(self) -> int | None:
        """The context length the model was trained for (`<arch>.context_length`), if the file says."""
        metadata = self._model.metadata()
        value = metadata.get(f"{metadata.get('general.architecture', 'llama')}.context_length")
        return int(value) if value and value.isdigit() else None

    def count(self, text: str) -> int:
        return len(self._model.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def close(self) -> None:
        self._model.close()  # type: ignore[no-untyped-call]


def _lines(rng: random.Random, count: int, label: str) -> list[str]:
    return [f"{label}.{i}: " + " ".join(rng.choice(WORDS) for _ in range(8)) for i in range(count)]


def sized_text(tokenizer: Tokenizer, seed: str, tokens: int, head: str, tail: str) -> str:
    """`head`, lines of filler, `tail`: about `tokens` tokens in all (within a line's worth)."""
    rng = random.Random(seed)
    lines = _lines(rng, 4, seed)
    per_line = max(1.0, tokenizer.count("\n".join(lines)) / len(lines))
    fixed = tokenizer.count(head + "\n" + tail)
    body = _lines(rng, max(1, int((tokens - fixed) / per_line)), seed)
    text = "\n".join([head, *body, tail])
    while len(body) > 1 and tokenizer.count(text) > tokens:
        body.pop()
        text = "\n".join([head, *body, tail])
    return text


@dataclass(frozen=True, slots=True)
class AgentScript:
    """One agent's messages, turn by turn."""

    first: str
    later: tuple[str, ...]

    @property
    def turns(self) -> int:
        return 1 + len(self.later)

    def message(self, turn: int) -> dict[str, Any]:
        text = self.first if turn == 0 else self.later[turn - 1]
        return {"role": "user", "content": text}


def agent_script(tokenizer: Tokenizer, seed: str, context: int, turns: int, new_tokens: int) -> AgentScript:
    first = sized_text(tokenizer, seed + "/0", context, f"Session {seed}. Here is the file to work on:",
                       "Summarize what this file does in two sentences.")
    later = tuple(
        sized_text(tokenizer, f"{seed}/{turn}", new_tokens, f"Tool output (step {turn}):",
                   "What should we do next? Answer briefly.")
        for turn in range(1, turns)
    )
    return AgentScript(first, later)
