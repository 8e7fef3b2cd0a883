"""LiteLLM's proxy as a benchmark peer: a pinned install in its own venv, a config, a subprocess.

LiteLLM is installed into `.bench-venv/litellm` under the repository root, never into tether's own
environment (its proxy pins FastAPI, Starlette and pydantic versions of its own). The config offers the
chat-completions upstream as `hosted_vllm/<model>` with `use_chat_completions_api: true`, so LiteLLM's
Responses -> chat-completions bridge serves `/v1/responses` over HTTP, and its managed WebSocket
handler (for providers without a native Responses WebSocket) serves WebSocket mode.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ...processes import serving_process

#: The pinned peer. 1.106.12 is the newest release whose `[proxy]` extra resolves from the package
#: index this project uses (1.108+ pin `litellm-proxy-extras` builds and 1.110+ a `litellm-proxy`
#: package that it lacks); it has Responses WebSocket mode (`@router.websocket("/v1/responses")`).
LITELLM_VERSION = "1.106.12"
MODEL_NAME = "bench-litellm"
VENV_RELATIVE = Path(".bench-venv") / "litellm"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[4]


def venv_dir() -> Path:
    return repo_root() / VENV_RELATIVE


def install_command(venv: Path) -> list[str]:
    return [str(venv / "bin" / "pip"), "install", "--quiet", f"litellm[proxy]=={LITELLM_VERSION}"]


def installed_version(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True, text=True, check=False,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_installed(venv: Path | None = None) -> Path:
    """Creates the venv and installs the pinned LiteLLM if it is not there yet; returns the `litellm` script."""
    venv = venv or venv_dir()
    if installed_version(venv) != LITELLM_VERSION:
        if not (venv / "bin" / "python").exists():
            create = [sys.executable, "-m", "venv", str(venv)]
            print("$", " ".join(create), file=sys.stderr)
            subprocess.run(create, check=True)
        command = install_command(venv)
        print("$", " ".join(command), file=sys.stderr)
        subprocess.run(command, check=True)
    return venv / "bin" / "litellm"


def config_yaml(upstream_url: str, upstream_model: str, master_key: str) -> str:
    """A LiteLLM proxy config with one model that reaches `upstream_url` (an OpenAI-compatible /v1 base)."""
    return f"""model_list:
  - model_name: {MODEL_NAME}
    litellm_params:
      model: hosted_vllm/{upstream_model}
      api_base: {upstream_url}
      api_key: none
      use_chat_completions_api: true
general_settings:
  # No database: LiteLLM checks the master key in memory, as tether checks its --api-key.
  master_key: {master_key}
litellm_settings:
  drop_params: true
  telemetry: false
  turn_off_message_logging: true
"""


@dataclass
class LiteLLMProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    version: str

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@contextlib.contextmanager
def litellm_proxy(
    upstream_url: str, upstream_model: str, port: int, directory: Path, master_key: str, *, wait_s: float = 180.0
) -> Iterator[LiteLLMProcess]:
    """Runs `litellm --config ... --port PORT` in front of the upstream until the block ends."""
    script = ensure_installed()
    config = directory / "litellm_config.yaml"
    config.write_text(config_yaml(upstream_url, upstream_model, master_key))
    log_path = directory / "litellm.log"
    env = {
        **os.environ,
        # No network at start-up (the model cost map) and no chatter on the hot path.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
    }
    for key in ("DATABASE_URL", "LITELLM_MASTER_KEY", "OPENAI_API_KEY"):
        env.pop(key, None)
    command = [str(script), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    with serving_process(command, log_path, f"http://127.0.0.1:{port}/health/liveliness", wait_s=wait_s,
                         env=env, cwd=directory) as process:
        yield LiteLLMProcess(f"http://127.0.0.1:{port}", process, log_path,
                             installed_version(script.parent.parent) or "?")
