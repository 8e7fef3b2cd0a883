"""`client_metadata` of a create: Codex's per-turn metadata, and the `response.metadata` event it reads.

Codex (0.16x+) sends per-turn data in every `response.create` body, not in the handshake headers, which
belong to the socket and go stale once a socket serves several turns: `client_metadata` holds a JSON
blob `x-codex-turn-metadata` (session, thread, turn and window ids, `request_kind`: `prewarm`, `turn`,
...) and flat copies of its small fields (`turn_id`, `session_id`, ...), since the API caps each value
at 2,048 characters and may drop a long blob. So each frame is read on its own.

Codex also keeps an opaque per-turn `x-codex-turn-state`: the first value a response returns (in a
`response.metadata` event over WebSocket) is replayed in `client_metadata` of every later request of
that turn and reset at the next turn. tether returns one for each Codex turn, so a deployment can
route a turn's follow-ups (also after an HTTP fallback, where Codex sends it as a header) by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import invalid
from .ids import new_id

TURN_METADATA_KEY = "x-codex-turn-metadata"
TURN_STATE_KEY = "x-codex-turn-state"


@dataclass(frozen=True, slots=True)
class ClientMetadata:
    """What a create's `client_metadata` says; every field None when the client did not say it."""

    values: dict[str, str] = field(default_factory=dict)
    turn_id: str | None = None
    request_kind: str | None = None
    session_id: str | None = None
    thread_id: str | None = None
    window_id: str | None = None
    #: the turn state the client replays within a turn (from an earlier `response.metadata`)
    turn_state: str | None = None

    @property
    def from_codex(self) -> bool:
        return TURN_METADATA_KEY in self.values

    @property
    def codex_turn(self) -> bool:
        """A request of a Codex turn (a prewarm has an empty turn id: it belongs to no turn yet)."""
        return self.from_codex and bool(self.turn_id)

    def summary(self) -> str:
        """One line for the log: which turn of which session this request is."""
        parts = [f"{name}={value}" for name, value in (
            ("turn", self.turn_id), ("kind", self.request_kind), ("session", self.session_id),
            ("thread", self.thread_id), ("window", self.window_id),
        ) if value]
        return " ".join(parts) or "no client metadata"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _turn_blob(values: dict[str, str]) -> dict[str, Any]:
    """The decoded turn-metadata blob; empty when absent or not a JSON object (it is the client's
    telemetry, so a malformed one is ignored rather than failing the turn)."""
    raw = values.get(TURN_METADATA_KEY)
    if raw is None:
        return {}
    try:
        blob = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return blob if isinstance(blob, dict) else {}


def parse_client_metadata(raw: Any) -> ClientMetadata:
    """Validate `client_metadata` (an object of strings, or absent) and read the turn it names."""
    if raw is None:
        return ClientMetadata()
    if not isinstance(raw, dict):
        raise invalid("Invalid 'client_metadata': expected an object of string keys and values.", "client_metadata")
    for key, value in raw.items():
        if not isinstance(value, str):
            raise invalid(f"Invalid 'client_metadata.{key}': values must be strings.", f"client_metadata.{key}")
    values: dict[str, str] = dict(raw)
    blob = _turn_blob(values)

    def pick(key: str) -> str | None:
        # the flat copy first: the blob may have been cut short upstream of us
        return _text(values.get(key)) or _text(blob.get(key))

    return ClientMetadata(
        values=values,
        turn_id=pick("turn_id"),
        request_kind=_text(blob.get("request_kind")),
        session_id=pick("session_id"),
        thread_id=pick("thread_id"),
        window_id=_text(values.get("x-codex-window-id")) or _text(blob.get("window_id")),
        turn_state=_text(values.get(TURN_STATE_KEY)),
    )


def turn_state(metadata: ClientMetadata) -> str:
    """The turn state to return: the one the client replays (first value wins, as in Codex), else a new one."""
    return metadata.turn_state or new_id("tts")


def response_metadata_event(metadata: ClientMetadata, stream_id: str | None = None) -> dict[str, Any] | None:
    """The `response.metadata` event for this request, or None where no client expects one (it is a
    Codex extension, unknown to the SDKs' event unions). Sent before `response.created`, without a
    `sequence_number`, so the response's own events keep theirs from 0."""
    if not metadata.codex_turn:
        return None
    event: dict[str, Any] = {"type": "response.metadata", "headers": {TURN_STATE_KEY: turn_state(metadata)}}
    if stream_id is not None:
        event["stream_id"] = stream_id
    return event
