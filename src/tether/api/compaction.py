"""`POST /v1/responses/compact` without a summarizing model: the window keeps the user messages
verbatim and packs everything else into the opaque `compaction` item, which tether unpacks again
when the item comes back as input. Nothing is lost; the client's request gets shorter.

A blob is client input like any other: what it decodes to is bounded (a few hundred kilobytes of
zlib can inflate to gigabytes) and nested no deeper than a body may be; the items it holds are then
validated as input items by `items.normalize_input`."""

from __future__ import annotations

import base64
import time
import zlib
from typing import Any

import orjson

from .errors import APIError, invalid
from .ids import new_id
from .nesting import MAX_JSON_DEPTH, too_deep

Item = dict[str, Any]

BLOB_PREFIX = "tether-compaction-v1:"
# What the compaction items of one request may inflate to, together: as much as a request body may
# hold by default (`--max-body-bytes`), so a blob never stands for more than a client could send.
MAX_INFLATED_BYTES = 32 * 1024 * 1024
# Items sit at level 3 of a body (body, `input`, item): the decoded list stands where `input` does.
PACKED_LIST_DEPTH = 2


def compact(context: list[Item], input_tokens: int) -> dict[str, Any]:
    users = [item for item in context if item.get("type") == "message" and item.get("role") == "user"]
    # The whole context goes in, in order: unpacking puts every item back where it was (the user
    # messages shown beside the item are matched by id), so the model sees the same conversation.
    encoded = orjson.dumps(context)
    if len(encoded) > MAX_INFLATED_BYTES:
        # Refused here rather than handed out: the blob could never be sent back.
        raise invalid(
            f"The conversation is too large to compact: {len(encoded)} bytes of items, and a compaction item "
            f"may stand for at most {MAX_INFLATED_BYTES} bytes."
        )
    packed = BLOB_PREFIX + base64.b64encode(zlib.compress(encoded)).decode()
    return {
        "id": new_id("cmp"),
        "object": "response.compaction",
        "created_at": int(time.time()),
        "output": [*users, {"type": "compaction", "id": new_id("cmp"), "encrypted_content": packed}],
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens,
        },
    }


class CompactionUnpacker:
    """Decodes the tether compaction items of one request, within one inflation budget for all."""

    def __init__(self, limit: int = MAX_INFLATED_BYTES) -> None:
        self.limit = limit
        self.remaining = limit

    def unpack(self, item: Item, where: str) -> list[Any] | None:
        """The JSON values a tether compaction item at `where` stands for (the whole compacted context,
        in order, with the user messages the window also shows), not yet validated as items; None for
        anyone else's opaque compaction. A tether blob that does not decode is a 400, never dropped:
        the context it stands for would be lost silently."""
        blob = item.get("encrypted_content")
        if not isinstance(blob, str) or not blob.startswith(BLOB_PREFIX):
            return None
        param = f"{where}.encrypted_content"
        packed = zlib.decompressobj()
        try:
            deflated = base64.b64decode(blob[len(BLOB_PREFIX) :], validate=True)
            # One byte past the budget tells "too large" from "exactly fits", and no more than that
            # is ever held: the bomb is refused before it inflates.
            inflated = packed.decompress(deflated, self.remaining + 1)
        except (ValueError, zlib.error):
            raise _corrupt(param) from None
        if len(inflated) > self.remaining:
            raise APIError(
                f"Invalid '{param}': the compaction items of this request inflate to more than {self.limit} bytes, "
                "the most this server unpacks.",
                status=413,
                code="request_too_large",
                param=param,
            )
        if not packed.eof:
            raise _corrupt(param)
        self.remaining -= len(inflated)
        try:
            items = orjson.loads(inflated)
        except orjson.JSONDecodeError:
            raise _corrupt(param) from None
        if not isinstance(items, list):
            raise _corrupt(param)
        path = too_deep(items, depth=PACKED_LIST_DEPTH)
        if path is not None:
            raise invalid(
                f"Invalid '{param}': item {path[0]} of the compacted context nests more than {MAX_JSON_DEPTH} "
                "levels deep.",
                param,
            )
        return items


def _corrupt(param: str) -> APIError:
    return invalid(f"Invalid '{param}': not a compaction this server made, or corrupted on the way.", param)
