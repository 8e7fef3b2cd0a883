"""`POST /v1/responses/compact` without a summarizing model: the window keeps the user messages
verbatim and packs everything else into the opaque `compaction` item, which tether unpacks again
when the item comes back as input. Nothing is lost; the client's request gets shorter."""

from __future__ import annotations

import base64
import time
import zlib
from typing import Any

import orjson

from .ids import new_id

Item = dict[str, Any]

BLOB_PREFIX = "tether-compaction-v1:"


def compact(context: list[Item], input_tokens: int) -> dict[str, Any]:
    users = [item for item in context if item.get("type") == "message" and item.get("role") == "user"]
    # The whole context goes in, in order: unpacking puts every item back where it was (the user
    # messages shown beside the item are matched by id), so the model sees the same conversation.
    packed = BLOB_PREFIX + base64.b64encode(zlib.compress(orjson.dumps(context))).decode()
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


def unpack(item: Item) -> list[Item] | None:
    """The items a tether compaction item stands for (the whole compacted context, in order, with
    the user messages the window also shows); None for anyone else's opaque compaction."""
    blob = item.get("encrypted_content")
    if not isinstance(blob, str) or not blob.startswith(BLOB_PREFIX):
        return None
    try:
        items = orjson.loads(zlib.decompress(base64.b64decode(blob[len(BLOB_PREFIX) :])))
    except (ValueError, zlib.error, orjson.JSONDecodeError):
        return None
    return items if isinstance(items, list) else None
