"""The `tether` command: `serve`, `agent`, `bench`."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backends.settings import BackendSettings, LlamaCppSettings, ScriptedSettings, UpstreamSettings
from .server.config import ServerConfig
from .tracing import MODES as TRACE_MODES


def default_store() -> str:
    base = os.environ.get("TETHER_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "tether"
    )
    return f"sqlite:{Path(base) / 'responses.sqlite3'}"


def add_serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the Responses API server")
    serve.add_argument("--host", default=None, help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port to listen on (default: 8000)")
    serve.add_argument("--backend", choices=["llamacpp", "scripted", "upstream"], default=None,
                       help="model backend (default: llamacpp, the embedded model)")
    serve.add_argument("--model", default=None, help="llamacpp: path to a GGUF file (default: SmolLM2-135M-Instruct)")
    serve.add_argument("--script", default=None, help="scripted: a JSON script of model turns")
    serve.add_argument("--upstream-url", action="append", default=[],
                       help="upstream: base URL of an OpenAI-compatible server (repeatable: a pool of replicas)")
    serve.add_argument("--upstream-file", default=None, help="upstream: a file of replica URLs, one a line")
    serve.add_argument("--upstream-connect-timeout", type=float, default=None,
                       help="upstream: seconds to connect to a replica (default: 10)")
    serve.add_argument("--upstream-first-byte-timeout", type=float, default=None,
                       help="upstream: seconds to the first byte of an answer, prefill included (default: 120)")
    serve.add_argument("--upstream-idle-timeout", type=float, default=None,
                       help="upstream: seconds an answer may pause between chunks (default: 60)")
    serve.add_argument("--upstream-health-interval", type=float, default=None,
                       help="upstream: seconds between health checks of each replica, 0 for none (default: 5)")
    serve.add_argument("--upstream-api-key", default=None, help="upstream: its API key")
    serve.add_argument("--upstream-model", default=None, help="upstream: send this model name instead of the client's")
    serve.add_argument("--store", default=None,
                       help="memory | sqlite:PATH | postgresql://... (default: SQLite in the data folder)")
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes on the port, each with its own event loop, sharing the store")
    serve.add_argument("--api-key", action="append", default=[], dest="api_keys",
                       help="require this bearer key (repeatable); without any, the server is open")
    serve.add_argument("--max-body-bytes", type=int, default=None,
                       help="largest HTTP body and WebSocket frame accepted (bytes)")
    serve.add_argument("--no-websocket", action="store_true", help="answer WebSocket upgrades with 426")
    serve.add_argument("--ws-compression", choices=["auto", "deflate", "off"], default=None,
                       help="permessage-deflate when a client offers it: auto (default: for clients elsewhere "
                            "or behind a proxy, not for one on this machine), deflate (always) or off (never)")
    serve.add_argument("--max-connections", type=int, default=None,
                       help="open connections before new ones get 503 (default: what the file-descriptor limit allows)")
    serve.add_argument("--shutdown-grace", type=float, default=None,
                       help="seconds responses in flight get to finish at shutdown (default: 10)")
    serve.add_argument("--ws-lifetime", type=float, default=None,
                       help="seconds a WebSocket connection may live (default: 3600)")
    serve.add_argument("--ws-cache-mb", type=int, default=None,
                       help="cached state per WebSocket connection (MiB, default: 256)")
    serve.add_argument("--ws-cache-total-mb", type=int, default=None,
                       help="cached state of all connections (MiB, default: 2048)")
    serve.add_argument("--recent-responses-mb", type=int, default=None,
                       help="store:true responses kept in memory for HTTP continuations, checked against the "
                            "store's deletions before use (MiB, default: 256; 0: always read the store)")
    serve.add_argument("--kv-budget-mb", type=int, default=None,
                       help="llamacpp: parked KV state budget (MiB, default: 512)")
    serve.add_argument("--ctx", type=int, default=None, help="llamacpp: context length in tokens (default: 8192)")
    serve.add_argument("--threads", type=int, default=None, help="llamacpp: CPU threads")
    serve.add_argument("--parallel", type=int, default=None,
                       help="llamacpp: conversations kept resident and decoded together (KV slots, default: 4)")
    serve.add_argument("--otel-traces", choices=TRACE_MODES, default=None,
                       help="an OpenTelemetry span per turn, a child of the client's traceparent: otlp (OTLP/HTTP), "
                            "console (JSON on stdout) or off (default); needs the otel extra")
    serve.add_argument("--otel-endpoint", default=None,
                       help="otlp: the collector's traces URL (default: OTEL_EXPORTER_OTLP_* variables, else "
                            "http://localhost:4318/v1/traces)")
    serve.add_argument("--log-level", default="warning", help="uvicorn's log level")


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """Everything `tether serve` runs from: the server, its backend and its store."""

    server: ServerConfig
    backend: BackendSettings
    store: str
    log_level: str = "warning"


def serve_settings(args: argparse.Namespace) -> ServeSettings:
    """The one place the serve flags become typed settings."""
    kind = args.backend or "llamacpp"
    backend: BackendSettings
    if kind == "scripted":
        backend = ScriptedSettings(script=args.script)
    elif kind == "upstream":
        from .backends.upstream_replicas import replica_urls

        backend = UpstreamSettings(
            urls=replica_urls(args.upstream_url, args.upstream_file),
            api_key=args.upstream_api_key,
            model=args.upstream_model,
            **_given(connect_timeout=args.upstream_connect_timeout, first_byte_timeout=args.upstream_first_byte_timeout,
                     idle_timeout=args.upstream_idle_timeout, health_interval=args.upstream_health_interval),
        )
    else:
        backend = LlamaCppSettings(**_given(model=args.model, ctx=args.ctx, threads=args.threads,
                                            kv_budget_mb=args.kv_budget_mb, parallel=args.parallel))
    mib = 1024 * 1024
    server = ServerConfig(
        websocket=not args.no_websocket,
        api_keys=args.api_keys,
        **_given(
            host=args.host,
            port=args.port,
            max_body_bytes=args.max_body_bytes,
            ws_lifetime_seconds=args.ws_lifetime,
            shutdown_grace_seconds=args.shutdown_grace,
            max_connections=args.max_connections,
            ws_compression=args.ws_compression,
            otel_traces=args.otel_traces,
            otel_endpoint=args.otel_endpoint,
            ws_cache_bytes_per_connection=args.ws_cache_mb * mib if args.ws_cache_mb is not None else None,
            ws_cache_bytes_total=args.ws_cache_total_mb * mib if args.ws_cache_total_mb is not None else None,
            recent_response_bytes=(args.recent_responses_mb * mib if args.recent_responses_mb is not None
                                   else None),
        ),
    )
    return ServeSettings(server, backend, args.store or default_store(), args.log_level)


def configure_logging(level: str) -> None:
    """tether's own loggers (one JSON line per turn from `tether.turns`) log at uvicorn's level when
    that is info or finer; otherwise only warnings reach stderr."""
    import logging

    if level not in ("info", "debug", "trace"):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    tether_log = logging.getLogger("tether")
    tether_log.addHandler(handler)
    tether_log.setLevel(logging.INFO if level == "info" else logging.DEBUG)


def _given(**values: Any) -> dict[str, Any]:
    """The flags the user gave: the others keep the settings' own defaults (their one home)."""
    return {key: value for key, value in values.items() if value is not None}


def run_serve(args: argparse.Namespace) -> int:
    from .backends.factory import make_backend
    from .server.run import TetherServer
    from .store import open_store

    if args.workers != 1:
        from .server.workers import serve_workers

        return serve_workers(args, args.store or default_store())
    try:
        settings = serve_settings(args)
        store = open_store(settings.store)
        backend = make_backend(settings.backend)
    except (ValueError, OSError, ImportError) as exc:
        print(f"tether: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    TetherServer(settings.server, backend, store, log_level=settings.log_level).serve()
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
