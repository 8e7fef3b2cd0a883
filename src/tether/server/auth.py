"""Bearer-key auth. A key's owner id is a hash of it: stored data is scoped by owner, never by raw key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from ..api.errors import APIError

OPEN_OWNER = "public"


class Authenticator:
    def __init__(self, api_keys: list[str]) -> None:
        self._owners = {key: owner_of(key) for key in api_keys}

    @property
    def enabled(self) -> bool:
        return bool(self._owners)

    def owner(self, headers: Mapping[str, str]) -> str:
        """The caller's owner id, or `APIError(401)`."""
        if not self._owners:
            return OPEN_OWNER
        header = headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise APIError(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                status=401,
                code="missing_api_key",
            )
        key = key.strip()
        for known, owner in self._owners.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                return owner
        return self._reject(key)

    @staticmethod
    def _reject(key: str) -> str:
        shown = f"{key[:3]}...{key[-4:]}" if len(key) > 8 else "***"
        raise APIError(f"Incorrect API key provided: {shown}.", status=401, code="invalid_api_key")


def owner_of(key: str) -> str:
    return hashlib.sha256(b"tether-owner:" + key.encode()).hexdigest()[:32]
