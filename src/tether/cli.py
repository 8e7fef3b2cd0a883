"""The `tether` command: `serve`, `agent`, `bench`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def default_store() -> str:
    base = os.environ.get("TETHER_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "tether"
    )
    return f"sqlite:{Path(base) / 'responses.sqlite3'}"


def add_serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the Responses API server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--backend", choices=["llamacpp", "scripted", "upstream"], default=None,
                       help="model backend (default: llamacpp, the embedded model)")
    serve.add_argument("--model", default=None, help="llamacpp: path to a GGUF file (default: SmolLM2-135M-Instruct)")
    serve.add_argument("--script", default=None, help="scripted: a JSON script of model turns")
    serve.add_argument("--upstream-url", default=None, help="upstream: base URL of an OpenAI-compatible server")
    serve.add_argument("--upstream-api-key", default=None, help="upstream: its API key")
    serve.add_argument("--upstream-model", default=None, help="upstream: send this model name instead of the client's")
    serve.add_argument("--store", default=None, help="memory | sqlite:PATH (default: SQLite in the data folder)")
    serve.add_argument("--api-key", action="append", default=[], dest="api_keys",
                       help="require this bearer key (repeatable); without any, the server is open")
    serve.add_argument("--max-body-bytes", type=int, default=32 * 1024 * 1024)
    serve.add_argument("--no-websocket", action="store_true", help="answer WebSocket upgrades with 426")
    serve.add_argument("--ws-lifetime", type=float, default=3600.0, help="seconds a WebSocket connection may live")
    serve.add_argument("--ws-cache-mb", type=int, default=256, help="cached state per WebSocket connection (MiB)")
    serve.add_argument("--ws-cache-total-mb", type=int, default=2048, help="cached state of all connections (MiB)")
    serve.add_argument("--kv-budget-mb", type=int, default=512, help="llamacpp: parked KV state budget (MiB)")
    serve.add_argument("--ctx", type=int, default=8192, help="llamacpp: context length in tokens")
    serve.add_argument("--threads", type=int, default=None, help="llamacpp: CPU threads")
    serve.add_argument("--log-level", default="warning")


def run_serve(args: argparse.Namespace) -> int:
    from .backends.factory import make_backend
    from .server.config import ServerConfig
    from .server.run import serve
    from .store import open_store

    try:
        backend = make_backend(args)
    except (ValueError, OSError, ImportError) as exc:
        print(f"tether: {exc}", file=sys.stderr)
        return 2
    config = ServerConfig(
        host=args.host,
        port=args.port,
        api_keys=args.api_keys,
        max_body_bytes=args.max_body_bytes,
        websocket=not args.no_websocket,
        ws_lifetime_seconds=args.ws_lifetime,
        ws_cache_bytes_per_connection=args.ws_cache_mb * 1024 * 1024,
        ws_cache_bytes_total=args.ws_cache_total_mb * 1024 * 1024,
    )
    serve(config, backend, open_store(args.store or default_store()), log_level=args.log_level)
    return 0


def add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .bench.runner import add_bench_parser as add

    add(sub)


def add_agent_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .agent.command import add_agent_parser as add

    add(sub)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tether", description="A Responses API server for agent loops.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_parser(sub)
    add_bench_parser(sub)
    add_agent_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return run_serve(args)
    if args.command == "bench":
        from .bench.runner import run_bench

        return run_bench(args)
    if args.command == "agent":
        from .agent.command import run_agent_command

        return run_agent_command(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
