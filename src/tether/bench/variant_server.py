"""A scripted tether server with a chosen event loop, HTTP parser and WebSocket compression, for
`server_options` to compare them (`tether serve` itself always runs the defaults these numbers chose).

    python -m tether.bench.variant_server --script S.json --port N [--loop uvloop] [--http httptools]
        [--compression auto | deflate | off | standard | deflate:level=1,min_size=1024,...] [--no-coalesce]

`standard` is the websockets library's own extension as uvicorn configures it (every message
compressed at zlib's default level on a 4 KiB window, one compressor per connection): tether's
setting before its own.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from ..backends.factory import make_backend
from ..backends.settings import ScriptedSettings
from ..server.config import ServerConfig
from ..server.run import uvicorn_config
from ..server.state import AppState
from ..server.ws_compression import DeflateSettings
from ..server.ws_protocol import COMPRESSION_MODES, TetherWebSocketProtocol, protocol_for, websocket_protocol
from ..store import open_store


def apply_compression(config: uvicorn.Config, name: str) -> None:
    if name == "standard":
        config.ws = "websockets-sansio"
        config.ws_per_message_deflate = True
    elif name in COMPRESSION_MODES:
        config.ws = protocol_for(name)
    elif name.startswith("deflate:"):
        fields = dict(pair.split("=", 1) for pair in name.split(":", 1)[1].split(",") if pair)
        config.ws = websocket_protocol(DeflateSettings(**{key: int(value) for key, value in fields.items()}))
    else:
        raise SystemExit(f"variant_server: unknown compression {name!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tether.bench.variant_server")
    parser.add_argument("--script", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    parser.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"])
    parser.add_argument("--compression", default="auto")
    parser.add_argument("--no-coalesce", action="store_true", help="one write per WebSocket frame")
    args = parser.parse_args(argv)
    state = AppState.build(ServerConfig(port=args.port), make_backend(ScriptedSettings(script=args.script)),
                           open_store("memory"))
    config = uvicorn_config(state)
    config.loop = args.loop
    config.http = args.http
    apply_compression(config, args.compression)
    if args.no_coalesce and isinstance(config.ws, type) and issubclass(config.ws, TetherWebSocketProtocol):
        config.ws = type("UncoalescedProtocol", (config.ws,), {"coalesce_writes": False})
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
