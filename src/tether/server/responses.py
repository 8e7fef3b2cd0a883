"""JSON and error responses in the API's shapes."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..api.errors import APIError
from ..api.framing import dumps


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_response(error: APIError) -> JSON:
    return JSON(error.http_envelope(), status_code=error.status, headers=error.headers)
