"""The Response object (`object: "response"`) with every field filled, and its `usage`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .items import Item
from .request import CreateRequest


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            # tokens this turn prefilled and left in the engine's cache for the next turn
            "input_tokens_details": {
                "cached_tokens": self.cached_tokens,
                "cache_write_tokens": max(0, self.input_tokens - self.cached_tokens),
            },
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


def build_response(
    request: CreateRequest,
    response_id: str,
    created_at: int,
    *,
    status: str,
    output: list[Item] | None = None,
    usage: Usage | None = None,
    completed_at: int | None = None,
    error: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
) -> dict[str, Any]:
    """A full Response object; `output` is copied so later appends don't change sent events."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": request.background,
        "billing": {"payer": "developer"},
        "completed_at": completed_at,
        "conversation": None,
        "error": error,
        "frequency_penalty": request.frequency_penalty if request.frequency_penalty is not None else 0.0,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": request.max_tool_calls,
        "metadata": request.metadata,
        "model": request.model,
        "output": list(output or []),
        "parallel_tool_calls": request.parallel_tool_calls,
        "presence_penalty": request.presence_penalty if request.presence_penalty is not None else 0.0,
        "previous_response_id": request.previous_response_id,
        "prompt_cache_key": request.prompt_cache_key,
        "prompt_cache_retention": request.prompt_cache_retention,
        "reasoning": request.reasoning or {"effort": None, "summary": None},
        "safety_identifier": request.safety_identifier,
        "service_tier": "default" if request.service_tier == "auto" else request.service_tier,
        "store": request.store,
        "temperature": request.temperature if request.temperature is not None else 1.0,
        "text": request.text,
        "tool_choice": request.tool_choice_raw,
        "tools": request.tools,
        "top_logprobs": request.top_logprobs if request.top_logprobs is not None else 0,
        "top_p": request.top_p if request.top_p is not None else 1.0,
        "truncation": request.truncation,
        "usage": usage.to_dict() if usage is not None else None,
        "user": request.user,
    }
