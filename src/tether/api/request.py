"""`POST /v1/responses` (and WebSocket `response.create`) bodies: validation into a `CreateRequest`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .client_metadata import ClientMetadata, parse_client_metadata
from .conversation_items import input_tools
from .errors import invalid
from .items import Item, normalize_input
from .nesting import refuse_deep_nesting
from .prompt_cache import PromptCacheOptions, parse_prompt_cache_options
from .settings_values import format_schema, validate_effort, validate_text_format
from .tools import OfferedTool, ToolChoice, validate_tool_choice, validate_tools
from .values import is_one_of, shown

INCLUDABLE = frozenset(
    {
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
    }
)
STREAM_ID = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
SERVICE_TIERS = frozenset({"auto", "default", "flex", "scale", "priority", "fast", "ultrafast"})
METADATA_MAX_PAIRS = 16
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512


@dataclass(slots=True)
class CreateRequest:
    """A validated create request. `input_items` are canonical; `raw` keeps the body for the echo."""

    model: str
    input_items: list[Item]
    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    offered_tools: tuple[OfferedTool, ...] = ()
    tool_choice_raw: Any = "auto"
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    store: bool = True
    stream: bool = False
    background: bool = False
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_logprobs: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=lambda: {"format": {"type": "text"}})
    include: list[str] = field(default_factory=list)
    truncation: str = "disabled"
    reasoning: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: PromptCacheOptions = field(default_factory=PromptCacheOptions)
    safety_identifier: str | None = None
    service_tier: str = "auto"
    user: str | None = None
    include_obfuscation: bool = True
    generate: bool = True
    stream_id: str | None = None
    client_metadata: ClientMetadata = field(default_factory=ClientMetadata)
    #: the Response fields echoed from this request, built once for all its events (api/response.py)
    echo: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The JSON Schema the output must follow, when `text.format` asks for one."""
        return format_schema(self.text.get("format"))


def _or_default(body: dict[str, Any], key: str, default: Any) -> Any:
    """The field, or `default` when it is absent or null (not when it is any falsy value: `{}` or
    `0` are mistakes the client should hear about)."""
    value = body.get(key)
    return default if value is None else value


def _opt_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"Invalid type for '{key}': expected a boolean, but got {type(value).__name__}.", key)
    return value


def _opt_number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"Invalid type for '{key}': expected a number.", key)
    if not low <= value <= high:
        raise invalid(f"Invalid '{key}': {value} is out of range [{low}, {high}].", key)
    return float(value)


def _opt_int(body: dict[str, Any], key: str, low: int, high: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"Invalid type for '{key}': expected an integer.", key)
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise invalid(f"Invalid '{key}': {value}; must be {bound}.", key)
    return value


def _opt_str(body: dict[str, Any], key: str, max_len: int | None = None) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid type for '{key}': expected a string.", key)
    if max_len is not None and len(value) > max_len:
        raise invalid(f"Invalid '{key}': string too long (max {max_len} characters).", key)
    return value


def validate_metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid("Invalid 'metadata': expected an object of string keys and values.", "metadata")
    if len(value) > METADATA_MAX_PAIRS:
        raise invalid(f"Invalid 'metadata': at most {METADATA_MAX_PAIRS} key-value pairs.", "metadata")
    for key, item in value.items():
        if len(key) > METADATA_MAX_KEY:
            raise invalid(f"Invalid 'metadata': key '{key[:20]}...' longer than {METADATA_MAX_KEY}.", "metadata")
        if not isinstance(item, str):
            raise invalid(f"Invalid 'metadata.{key}': values must be strings.", f"metadata.{key}")
        if len(item) > METADATA_MAX_VALUE:
            raise invalid(
                f"Invalid 'metadata.{key}': value longer than {METADATA_MAX_VALUE} characters.", f"metadata.{key}"
            )
    return dict(value)


def _text(value: Any) -> dict[str, Any]:
    if value is None:
        return {"format": {"type": "text"}}
    if not isinstance(value, dict):
        raise invalid("Invalid 'text': expected an object.", "text")
    fmt = value.get("format")
    if fmt is None:  # only null means the default: `{}`, `[]` or `false` are mistakes to report
        fmt = {"type": "text"}
    validate_text_format(fmt, "text.format")
    verbosity = value.get("verbosity")
    if not is_one_of(verbosity, (None, "low", "medium", "high")):
        raise invalid("Invalid 'text.verbosity': expected 'low', 'medium' or 'high'.", "text.verbosity")
    out: dict[str, Any] = {"format": fmt}
    out["verbosity"] = verbosity or "medium"
    return out


def _include_obfuscation(stream_options: dict[str, Any] | None) -> bool:
    value = (stream_options or {}).get("include_obfuscation")
    if value is None:
        return True
    if not isinstance(value, bool):
        raise invalid(
            "Invalid type for 'stream_options.include_obfuscation': expected a boolean.",
            "stream_options.include_obfuscation",
        )
    return value


def _include(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("Invalid 'include': expected an array of strings.", "include")
    for index, entry in enumerate(value):
        if not isinstance(entry, str) or entry not in INCLUDABLE:
            raise invalid(f"Invalid value for 'include[{index}]': {shown(entry)}.", f"include[{index}]")
    return list(value)


def _reasoning(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("Invalid 'reasoning': expected an object.", "reasoning")
    validate_effort(value.get("effort"), "reasoning.effort")
    if not is_one_of(value.get("summary"), (None, "auto", "concise", "detailed")):
        raise invalid(f"Invalid value for 'reasoning.summary': {shown(value.get('summary'))}.", "reasoning.summary")
    return {"effort": value.get("effort"), "summary": value.get("summary")}


def validate_stream_id(value: Any) -> str:
    if not isinstance(value, str) or not STREAM_ID.fullmatch(value):
        raise invalid(
            "The 'stream_id' field must be a non-empty string with at most 256 characters and may only "
            "contain letters, numbers, underscores, hyphens, and periods.",
            "stream_id",
            code="invalid_stream_id",
        )
    return value


def parse_create(
    body: Any, *, websocket: bool = False, stream_id: str | None = None, text: str | bytes | None = None
) -> CreateRequest:
    """Validate a create body. Unknown top-level fields are tolerated, as real clients send them.

    Over WebSocket the frame decoder has validated the lane already and passes it as `stream_id`, and
    the frame's `text` (for the nesting limit: see `refuse_deep_nesting`)."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    # First: what nests deeper than can be written back out is refused before anything reads it.
    refuse_deep_nesting(body, text)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("Missing required parameter: 'model'.", "model")
    if body.get("conversation") is not None:
        if body.get("previous_response_id") is not None:
            raise invalid("'previous_response_id' cannot be used together with 'conversation'.", "conversation")
        raise invalid("Conversations are not supported by this server; use 'previous_response_id'.", "conversation")
    if body.get("prompt") is not None:
        raise invalid("Stored prompts are not supported by this server.", "prompt")
    tools, offered = validate_tools(body.get("tools"))
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise invalid("Invalid 'stream_options': expected an object.", "stream_options")
    truncation = _or_default(body, "truncation", "disabled")
    if not is_one_of(truncation, ("auto", "disabled")):
        raise invalid(f"Invalid value for 'truncation': {shown(truncation)}.", "truncation")
    service_tier = _or_default(body, "service_tier", "auto")
    if not is_one_of(service_tier, SERVICE_TIERS):
        raise invalid(f"Invalid value for 'service_tier': {shown(service_tier)}.", "service_tier")
    if not websocket and body.get("stream_id") is not None:
        raise invalid("'stream_id' is only supported in WebSocket mode.", "stream_id")
    store = _opt_bool(body, "store", True)
    background = _opt_bool(body, "background", False)
    generate = _opt_bool(body, "generate", True)
    if websocket and background:
        raise invalid("Background responses are not supported in WebSocket mode.", "background")
    if not websocket and not generate:
        raise invalid("'generate: false' (warm-up) is only supported in WebSocket mode.", "generate")
    if background and not store:
        raise invalid("Background responses require 'store' to be true.", "background")
    previous = _opt_str(body, "previous_response_id")
    if previous == "":
        previous = None
    cache_options = parse_prompt_cache_options(body.get("prompt_cache_options"))
    if cache_options.prewarm:
        generate = False  # "overrides the generate field": a warm-up over HTTP too (see prompt_cache.py)
    input_items = normalize_input(body.get("input"))
    # A tool_choice may name a tool this request adds with an `additional_tools` item.
    choice_tools = offered + input_tools(input_items)
    request = CreateRequest(
        model=model,
        input_items=input_items,
        instructions=_opt_str(body, "instructions"),
        tools=tools,
        offered_tools=offered,
        tool_choice_raw=body.get("tool_choice") if body.get("tool_choice") is not None else "auto",
        tool_choice=validate_tool_choice(body.get("tool_choice"), choice_tools),
        parallel_tool_calls=_opt_bool(body, "parallel_tool_calls", True),
        previous_response_id=previous,
        store=store,
        stream=_opt_bool(body, "stream", False),
        background=background,
        max_output_tokens=_opt_int(body, "max_output_tokens", 16),
        max_tool_calls=_opt_int(body, "max_tool_calls", 1),
        temperature=_opt_number(body, "temperature", 0.0, 2.0),
        top_p=_opt_number(body, "top_p", 0.0, 1.0),
        top_logprobs=_opt_int(body, "top_logprobs", 0, 20),
        presence_penalty=_opt_number(body, "presence_penalty", -2.0, 2.0),
        frequency_penalty=_opt_number(body, "frequency_penalty", -2.0, 2.0),
        metadata=validate_metadata(body.get("metadata")),
        text=_text(body.get("text")),
        include=_include(body.get("include")),
        truncation=truncation,
        reasoning=_reasoning(body.get("reasoning")),
        prompt_cache_key=_opt_str(body, "prompt_cache_key"),
        prompt_cache_retention=_opt_str(body, "prompt_cache_retention"),
        prompt_cache_options=cache_options,
        safety_identifier=_opt_str(body, "safety_identifier", 64),
        service_tier=service_tier,
        user=_opt_str(body, "user"),
        include_obfuscation=_include_obfuscation(stream_options),
        generate=generate,
        stream_id=stream_id,
        client_metadata=parse_client_metadata(body.get("client_metadata")),
    )
    # A continuation may call tools its context added (`additional_tools`): the turn engine checks it.
    if request.tool_choice.mode == "required" and not choice_tools and previous is None:
        raise invalid("'tool_choice' requires a tool, but no function or custom tools were given.", "tool_choice")
    return request
