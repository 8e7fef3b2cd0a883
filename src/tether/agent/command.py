"""`tether agent "TASK"`: its flags, and wiring the client, the tools and (without --server) an embedded server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import httpx

from ..backends.settings import BackendSettings, LlamaCppSettings, ScriptedSettings, UpstreamSettings


def add_agent_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = sub.add_parser("agent", help="run a coding agent on a task in a directory")
    agent.add_argument("task", help="what the agent should do")
    agent.add_argument("--cwd", default=".", help="working directory (default: the current one)")
    agent.add_argument("--server", default=None,
                       help="base URL of a Responses API server, e.g. http://127.0.0.1:8000/v1 "
                            "(default: start an embedded tether)")
    agent.add_argument("--api-key", default=None, help="bearer key for --server (default: $TETHER_API_KEY)")
    agent.add_argument("--transport", choices=["ws", "http"], default="ws",
                       help="ws: WebSocket mode, falling back to HTTP if refused (default); http: HTTP+SSE only")
    agent.add_argument("--model", default=None,
                       help="model name to request (default: the server's first model); for the embedded "
                            "llamacpp backend, the GGUF file it loads")
    agent.add_argument("--max-turns", type=int, default=30)
    agent.add_argument("--yes", "-y", action="store_true", help="run shell commands without asking")
    agent.add_argument("--allow-outside", action="store_true",
                       help="let the file tools reach paths outside the working directory")
    agent.add_argument("--no-warm-up", action="store_true", help="skip the generate:false warm-up (WebSocket)")
    agent.add_argument("--event-timeout", type=float, default=300.0, help="seconds to wait for each server event")
    embedded = agent.add_argument_group("embedded server (without --server)")
    embedded.add_argument("--backend", choices=["llamacpp", "scripted", "upstream"], default=None)
    embedded.add_argument("--script", default=None, help="scripted: a JSON script of model turns")
    embedded.add_argument("--upstream-url", default=None)
    embedded.add_argument("--no-websocket", action="store_true", help="the embedded server refuses WebSocket mode")


def embedded_backend(args: argparse.Namespace) -> BackendSettings:
    """The backend settings of the embedded server, from the agent's own flags."""
    kind = args.backend or "llamacpp"
    if kind == "scripted":
        return ScriptedSettings(script=args.script)
    if kind == "upstream":
        return UpstreamSettings(urls=(args.upstream_url,) if args.upstream_url else ())
    return LlamaCppSettings(model=args.model)


def pick_model(base_url: str, headers: dict[str, str]) -> str:
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
        answer = httpx.get(base_url.rstrip("/") + "/models", headers=headers, timeout=5.0)
        if answer.status_code == 200:
            return str(answer.json()["data"][0]["id"])
    return "tether"


def run_agent_command(args: argparse.Namespace) -> int:
    from ..client import AsyncTetherClient
    from .approval import make_approver
    from .display import Display
    from .embedded import EmbeddedServer
    from .loop import AgentSettings, run_agent
    from .tools import ToolBox
    from .workspace import Workspace

    root = Path(args.cwd)
    if not root.is_dir():
        print(f"tether agent: --cwd {args.cwd}: not a directory", file=sys.stderr)
        return 2
    display = Display()
    with contextlib.ExitStack() as stack:
        base_url = args.server
        where = base_url
        if base_url is None:
            try:
                server = stack.enter_context(EmbeddedServer(embedded_backend(args), websocket=not args.no_websocket))
            except (ValueError, OSError, ImportError, RuntimeError) as exc:
                print(f"tether agent: cannot start the embedded server: {exc}", file=sys.stderr)
                return 2
            base_url = server.base_url
            where = f"embedded tether at {base_url} (backend {server.backend.name})"
        client_options: dict[str, Any] = {"transport": args.transport, "event_timeout": args.event_timeout}
        if args.api_key is not None:
            client_options["api_key"] = args.api_key
        client = AsyncTetherClient(base_url, **client_options)
        gguf = args.server is None and args.backend == "llamacpp"  # then --model named the file to load
        model = args.model if args.model and not gguf else pick_model(base_url, client.headers)
        display.start(where, args.transport, str(root.resolve()), model)
        tools = ToolBox(Workspace(root, allow_outside=args.allow_outside), make_approver(args.yes))
        settings = AgentSettings(model=model, max_turns=args.max_turns, warm_up=not args.no_warm_up)

        async def go() -> Any:
            try:
                return await run_agent(args.task, client, tools, settings, display)
            finally:
                await client.aclose()

        report = asyncio.run(go())
        display.summary(report)
        return 0 if report.completed else 1
