"""What tether says on the 101 of a WebSocket upgrade (`ws.accept(headers=...)`).

Codex (0.171+) reads `x-codex-websocket-max-message-bytes` from the upgrade response: the size of the
largest message the server takes, so it can keep its `response.create` frames under it instead of
having the socket closed with 1009 mid-session. The value is the limit uvicorn really enforces.
"""

from __future__ import annotations

from .config import ServerConfig

MAX_MESSAGE_BYTES_HEADER = "x-codex-websocket-max-message-bytes"


def max_message_bytes(config: ServerConfig) -> int:
    """The WebSocket message size limit (`ws_max_size` in `uvicorn_config`): one limit with HTTP bodies."""
    return config.max_body_bytes


def upgrade_headers(config: ServerConfig) -> list[tuple[bytes, bytes]]:
    """Extra headers of the 101 Switching Protocols response, in the form Starlette's `accept` takes."""
    return [(MAX_MESSAGE_BYTES_HEADER.encode(), str(max_message_bytes(config)).encode())]
