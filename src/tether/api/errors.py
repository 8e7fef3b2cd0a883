"""The API's error type and its wire shapes: the HTTP envelope and the nested WebSocket `error` event."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error a client can see: carries the HTTP status and the envelope fields."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The inner object `{message, type, param, code}`."""
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}

    def http_envelope(self) -> dict[str, Any]:
        return {"error": self.body()}

    def ws_event(self, stream_id: str | None = None, sequence_number: int | None = None) -> dict[str, Any]:
        """The nested WebSocket `error` event, with `status` and, on named lanes, `stream_id`."""
        event: dict[str, Any] = {"type": "error", "status": self.status, "error": self.body()}
        if sequence_number is not None:
            event["sequence_number"] = sequence_number
        if stream_id is not None:
            event["stream_id"] = stream_id
        return event


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """A 400 `invalid_request_error` about one parameter."""
    return APIError(message, status=400, param=param, code=code)


def not_found(message: str, param: str | None = None) -> APIError:
    return APIError(message, status=404, param=param, code=None)


def previous_response_not_found(response_id: str) -> APIError:
    return APIError(
        f"Previous response with id '{response_id}' not found.",
        status=400,
        code="previous_response_not_found",
        param="previous_response_id",
    )


def server_error(message: str = "The server had an error while processing your request.") -> APIError:
    return APIError(message, status=500, type="server_error", code="server_error")
