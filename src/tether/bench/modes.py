"""The client modes compared in one run, and the conversation a mode carries from turn to turn.

A `Mode` decides what a turn's request carries (only the new items plus `previous_response_id`, or
the whole context) and opens its transport. Peer servers plug in as further `Mode`s with their own
`open`; nothing else in the runner knows about transports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .clients import HttpSseTransport, TimedTurn, Transport, WebSocketTransport

Item = dict[str, Any]
#: what a reverse proxy adds for a client elsewhere (a documentation address: no traffic goes to it)
REMOTE_CLIENT = {"X-Forwarded-For": "192.0.2.10"}


@dataclass(frozen=True, slots=True)
class Mode:
    name: str
    label: str
    transport: str  # "ws" or "http": the server's metric label
    store: bool
    chained: bool  # continue with previous_response_id and only the new items
    deflate: bool = True  # WebSocket: offer permessage-deflate

    async def open(self, server_url: str, *, remote: bool = False) -> Transport:
        """A connection to `server_url`; `remote`: through the WAN proxy, as a client elsewhere, which the
        server cannot tell from a local one by its address, so it says so as a reverse proxy would."""
        if self.transport == "ws":
            ws_url = server_url.replace("http://", "ws://") + "/v1/responses"
            headers = REMOTE_CLIENT if remote else None
            return await WebSocketTransport.open(ws_url, deflate=self.deflate, headers=headers)
        return HttpSseTransport(server_url)


WS_CACHED = Mode("ws_cached", "WebSocket previous_response_id (store:false), deflate", "ws", store=False, chained=True)
WS_PLAIN = Mode("ws_plain", "WebSocket previous_response_id (store:false), no compression", "ws", store=False,
                chained=True, deflate=False)
HTTP_STORED = Mode("http_stored", "HTTP previous_response_id (store:true, SQLite)", "http", store=True, chained=True)
HTTP_FULL = Mode("http_full", "HTTP full context (store:false)", "http", store=False, chained=False)
MODES: tuple[Mode, ...] = (WS_CACHED, WS_PLAIN, HTTP_STORED, HTTP_FULL)


@dataclass
class Conversation:
    """What the client knows of one conversation: every item so far and the latest response id."""

    base: dict[str, Any]  # model, instructions, tools: re-sent with every request, as agents do
    items: list[Item] = field(default_factory=list)
    previous_id: str | None = None

    def body(self, mode: Mode, new_items: list[Item]) -> dict[str, Any]:
        body = {**self.base, "store": mode.store}
        if mode.chained and self.previous_id is not None:
            body["previous_response_id"] = self.previous_id
            body["input"] = new_items
        else:
            body["input"] = [*self.items, *new_items]
        return body

    def record(self, new_items: list[Item], result: TimedTurn) -> list[Item]:
        """Append the turn to the conversation; returns the model's output items."""
        output: list[Item] = result.response.get("output", [])
        self.items.extend(new_items)
        self.items.extend(output)
        self.previous_id = str(result.response["id"])
        return output


async def send_turn(transport: Transport, mode: Mode, conversation: Conversation, new_items: list[Item]) -> TimedTurn:
    result = await transport.create(conversation.body(mode, new_items))
    conversation.record(new_items, result)
    return result


def function_calls(output: list[Item]) -> list[Item]:
    return [item for item in output if item.get("type") == "function_call"]


def tool_output(call_id: str, text: str) -> Item:
    return {"type": "function_call_output", "call_id": call_id, "output": text}


def user_message(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
