"""Object ids with the API's prefixes (`resp_`, `msg_`, `fc_`, `call_`, ...)."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """A fresh id: the prefix, an underscore and 48 hex digits, like the API's."""
    return f"{prefix}_{secrets.token_hex(24)}"
