"""Property-based fuzzing of what a client can send: hypothesis strategies for request bodies, response
ids, query strings and WebSocket frames, and the checks every answer must pass.

The checks return the problems they find instead of asserting, so the same code serves the bounded
suite in CI (`tests/test_fuzz.py`, which asserts there are none) and the larger runs of
`scripts/fuzz.py` (which counts them). A problem is anything that is tether's fault, never the
input's: a 5xx, an error outside the API's envelope, a stream cut before its terminal event, a
`response.failed` with `server_error`, a WebSocket that stops answering or closes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tether.api.compaction import BLOB_PREFIX

from .hostile_inputs import blob, bomb
from .support import ERROR_KEYS

Strategy = st.SearchStrategy[Any]
TERMINAL_TYPES = frozenset({"response.completed", "response.failed", "response.incomplete"})
PING_TYPE = "tether.fuzz.ping"
RECV_TIMEOUT_S = 30.0


# -- JSON values, including nesting deeper than the server accepts ---------------------------------


@dataclass(frozen=True)
class Deep:
    """A value nested `levels` deep, written as raw JSON text: Python's own encoder (and orjson's)
    cannot write what the server must refuse, so `encode` splices it in."""

    levels: int
    kind: str  # "array" | "object"

    def text(self) -> str:
        if self.kind == "array":
            return "[" * self.levels + "0" + "]" * self.levels
        return '{"a":' * self.levels + "0" + "}" * self.levels


def encode(value: Any) -> bytes:
    """JSON bytes for a generated value, `Deep` parts spliced in as raw text."""
    deep: list[Deep] = []

    def placeholder(obj: Any) -> str:
        if isinstance(obj, Deep):
            deep.append(obj)
            return f"\x00deep{len(deep) - 1}\x00"
        raise TypeError(type(obj).__name__)

    text = json.dumps(value, default=placeholder, ensure_ascii=False)
    for index, part in enumerate(deep):
        text = text.replace(json.dumps(f"\x00deep{index}\x00"), part.text(), 1)
    return text.encode("utf-8", errors="surrogatepass")


texts = st.text(max_size=12)
scalars: Strategy = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values: Strategy = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=10
)
# Around the limits that matter: tether's (64), orjson's writer (254) and reader (1,024).
DEEP_LEVELS = [63, 65, 100, 255, 300, 1030]
deep_values: Strategy = st.builds(Deep, st.sampled_from(DEEP_LEVELS), st.sampled_from(["array", "object"]))
unhashables: Strategy = st.sampled_from([[], {}, [1], {"a": 1}, [[]]])
near_misses: Strategy = st.sampled_from(["", "bogus", " ", "\u00b2", "null", 0, -1, 2**63 - 1, 1e308, True, "a" * 300])
# What a field gets when it is the one being broken: the wrong type, unhashable, absurdly deep, or close.
wrong: Strategy = st.one_of(unhashables, near_misses, json_values, deep_values)


@st.composite
def broken(draw: st.DrawFn, valid: Strategy, extra_keys: tuple[str, ...] = ()) -> Any:
    """A valid object with (usually) one of its fields, or one extra field, set to a wrong value:
    one fault at a time reaches deep into validation instead of stopping at the first field."""
    value = draw(valid)
    if not isinstance(value, dict) or draw(st.integers(0, 3)) == 0:
        return value
    keys = sorted(set(value) | set(extra_keys))
    if keys:
        value = {**value, draw(st.sampled_from(keys)): draw(wrong)}
    return value


# -- compaction blobs ------------------------------------------------------------------------------


def _blob_of(value: Any) -> str:
    return blob(encode(value))


BOMB = bomb()


# -- request bodies --------------------------------------------------------------------------------

ROLES = ["user", "assistant", "system", "developer"]
ids: Strategy = st.one_of(st.sampled_from(["", "resp_1", "msg_1", "call_1", "../x", "a/b", "%2F", "\u00b2"]),
                          st.text(max_size=40), st.text(min_size=300, max_size=400))
short_ids: Strategy = st.sampled_from(["call_1", "call_2", "msg_a", "fc_b"])
parts: Strategy = broken(
    st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["input_text", "output_text"]), "text": texts},
                              optional={"prompt_cache_breakpoint": st.fixed_dictionaries(
                                  {"mode": st.just("explicit")}, optional={"ttl": st.sampled_from(["5m", "1h"])})}),
        st.fixed_dictionaries({"type": st.just("refusal"), "refusal": texts}),
        st.fixed_dictionaries({"type": st.just("input_image"), "image_url": st.just("data:image/png;base64,AAAA")}),
        st.fixed_dictionaries({"type": st.just("input_file"), "filename": texts, "file_data": texts}),
    ),
    ("type",),
)
plain_items: Strategy = st.one_of(
    st.fixed_dictionaries({"type": st.just("message"), "role": st.sampled_from(ROLES),
                           "content": st.one_of(texts, st.lists(parts, min_size=1, max_size=2))},
                          optional={"id": short_ids, "status": st.just("completed")}),
    st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": texts}),
    st.fixed_dictionaries({"type": st.just("function_call"), "call_id": short_ids, "name": st.just("f"),
                           "arguments": st.sampled_from(["{}", '{"a": 1}', "not json"])}),
    st.fixed_dictionaries({"type": st.sampled_from(["function_call_output", "custom_tool_call_output"]),
                           "call_id": short_ids, "output": st.one_of(texts, st.lists(parts, max_size=2))}),
    st.fixed_dictionaries({"type": st.just("custom_tool_call"), "call_id": short_ids, "name": st.just("g"),
                           "input": texts}),
    st.fixed_dictionaries({"type": st.just("reasoning"),
                           "summary": st.lists(st.fixed_dictionaries({"type": st.just("summary_text"),
                                                                      "text": texts}), max_size=2)},
                          optional={"encrypted_content": texts}),
    st.fixed_dictionaries({"type": st.just("item_reference"), "id": ids}),
    st.fixed_dictionaries({"type": st.just("web_search_call"), "status": st.just("completed")},
                          optional={"action": json_values}),
    st.fixed_dictionaries({"type": st.just("additional_tools"), "role": st.just("developer"),
                           "tools": st.lists(st.fixed_dictionaries({"type": st.just("function"),
                                                                    "name": st.sampled_from(["h", "f"])}),
                                             max_size=2)}),
    st.fixed_dictionaries({"type": st.just("configuration_update")},
                          optional={"reasoning": st.fixed_dictionaries({"effort": st.sampled_from(["low", "high"])}),
                                    "text": st.fixed_dictionaries({"format": st.fixed_dictionaries(
                                        {"type": st.just("text")})})}),
    st.fixed_dictionaries({"type": st.just("bogus")}),
)
blobs: Strategy = st.one_of(
    st.lists(broken(plain_items, ("id", "type", "status")), max_size=3).map(_blob_of),
    json_values.map(_blob_of),
    deep_values.map(_blob_of),
    st.just(BOMB),
    st.just(BLOB_PREFIX + "not base64!"),
    st.just(BLOB_PREFIX + base64.b64encode(b"not zlib").decode()),
    st.just(blob(b"not json")),
    texts,  # someone else's compaction: opaque
)
input_items: Strategy = broken(
    st.one_of(plain_items, plain_items, st.fixed_dictionaries({"type": st.just("compaction"),
                                                               "encrypted_content": blobs})),
    ("id", "type", "status", "role", "content"),
)
inputs: Strategy = st.one_of(
    texts,
    st.lists(input_items, min_size=1, max_size=4),
    st.lists(input_items, max_size=2).map(lambda items: [*items, {"type": "compaction_trigger"}]),
)
schemas: Strategy = st.one_of(st.just({"type": "object", "properties": {"q": {"type": "string"}}}),
                              st.just({"type": "object"}), deep_values.map(lambda deep: {"type": "object", "x": deep}))
function_tools: Strategy = st.fixed_dictionaries(
    {"type": st.just("function"), "name": st.sampled_from(["f", "get_weather"])},
    optional={"description": texts, "parameters": schemas, "strict": st.booleans()},
)
tool_defs: Strategy = broken(
    st.one_of(
        function_tools,
        st.fixed_dictionaries({"type": st.just("custom"), "name": st.just("g")}, optional={"description": texts}),
        st.fixed_dictionaries({"type": st.sampled_from(["web_search", "mcp", "file_search"])},
                              optional={"server_label": texts}),
        st.fixed_dictionaries({"type": st.just("namespace"), "name": st.just("ns"),
                               "tools": st.lists(broken(function_tools), max_size=2)}),
    ),
    ("type", "name"),
)
tool_choices: Strategy = st.one_of(
    st.sampled_from(["none", "auto", "required"]),
    broken(st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["function", "custom"]),
                               "name": st.sampled_from(["f", "g", "missing"])}),
        st.fixed_dictionaries({"type": st.just("allowed_tools"), "mode": st.sampled_from(["auto", "required"]),
                               "tools": st.lists(broken(st.fixed_dictionaries(
                                   {"type": st.just("function"), "name": st.sampled_from(["f", "nope"])})),
                                   max_size=2)}),
        st.fixed_dictionaries({"type": st.sampled_from(["web_search", "mcp"])}),
    ), ("type", "name", "mode", "tools")),
)
text_formats: Strategy = broken(
    st.fixed_dictionaries(
        {},
        optional={
            "format": broken(st.one_of(
                st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object"])}),
                st.fixed_dictionaries({"type": st.just("json_schema"), "name": st.just("answer"), "schema": schemas},
                                      optional={"strict": st.booleans()}),
            ), ("type", "name", "schema")),
            "verbosity": st.sampled_from(["low", "medium", "high"]),
        },
    ),
    ("format", "verbosity"),
)
# A plausible value for every field a create body may carry.
CREATE_FIELDS: dict[str, Strategy] = {
    "input": inputs,
    "instructions": texts,
    "tools": st.lists(tool_defs, max_size=3),
    "tool_choice": tool_choices,
    "parallel_tool_calls": st.booleans(),
    "previous_response_id": st.sampled_from(["resp_missing", ""]),
    "store": st.booleans(),
    "background": st.booleans(),
    "max_output_tokens": st.integers(min_value=16, max_value=100_000),
    "max_tool_calls": st.integers(min_value=1, max_value=5),
    "temperature": st.floats(min_value=0, max_value=2),
    "top_p": st.floats(min_value=0, max_value=1),
    "top_logprobs": st.integers(min_value=0, max_value=20),
    "presence_penalty": st.floats(min_value=-2, max_value=2),
    "frequency_penalty": st.floats(min_value=-2, max_value=2),
    "metadata": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    "text": text_formats,
    "include": st.lists(st.sampled_from(["reasoning.encrypted_content", "message.output_text.logprobs"]),
                        max_size=2),
    "truncation": st.sampled_from(["auto", "disabled"]),
    "reasoning": broken(st.fixed_dictionaries({}, optional={"effort": st.sampled_from(["low", "high", None]),
                                                            "summary": st.sampled_from(["auto", "concise"])}),
                        ("effort", "summary")),
    "prompt_cache_key": texts,
    "safety_identifier": texts,
    "service_tier": st.sampled_from(["auto", "default", "flex"]),
    "user": texts,
    "stream_options": broken(st.fixed_dictionaries({}, optional={"include_obfuscation": st.booleans()}),
                             ("include_obfuscation",)),
    "generate": st.booleans(),
    "stream_id": st.sampled_from(["lane-a", "lane-b"]),
    "conversation": texts,
    "prompt": json_values,
    "some_future_field": json_values,
}
RARE_FIELDS = ("conversation", "prompt", "generate", "stream_id")  # refused or transport-specific: only as faults
COMMON_FIELDS = sorted(set(CREATE_FIELDS) - set(RARE_FIELDS))


@st.composite
def create_bodies(draw: st.DrawFn, *, stream: bool | None = None) -> Any:
    """A create body: `model` and a few plausible fields, then (mostly) one or two fields broken.
    Now and then no object at all."""
    if draw(st.integers(0, 15)) == 0:
        return draw(st.one_of(json_values, deep_values))
    body: dict[str, Any] = {"model": "m", "input": "hi"}
    for name in draw(st.lists(st.sampled_from(COMMON_FIELDS), max_size=5, unique=True)):
        body[name] = draw(CREATE_FIELDS[name])
    for name in draw(st.lists(st.sampled_from(["model", *CREATE_FIELDS]), max_size=2, unique=True)):
        body[name] = draw(st.one_of(wrong, CREATE_FIELDS.get(name, wrong)))
    if stream is not None:
        body["stream"] = stream
    elif draw(st.booleans()):
        body["stream"] = draw(st.one_of(st.booleans(), wrong))
    return body


# -- query strings and ids in paths ----------------------------------------------------------------

# The ones that broke routes once (Unicode digits, 5,000 digits, double signs, negatives), drawn often.
nasty_query_values: Strategy = st.sampled_from(["\u00b2", "\u0663", "9" * 5000, "--1", "-1", "-99999", "+5", " 7",
                                                "1e3", "2.5", ""])
query_values: Strategy = st.one_of(
    nasty_query_values,
    nasty_query_values,
    st.sampled_from(["0", "1", "2", "20", "100", "101", "true", "false", "True", "yes", "asc", "desc", "sideways"]),
    st.text(max_size=10),
)
QUERY_KEYS = ["limit", "order", "after", "stream", "starting_after", "include[]", "include"]
queries: Strategy = st.fixed_dictionaries({}, optional={key: query_values for key in QUERY_KEYS})


def path_id(response_id: str, raw: bool) -> str:
    """The id as a path segment: percent-encoded, or (now and then) with its slashes, dots and
    percent signs left as they are."""
    return quote(response_id, safe="/.%") if raw else quote(response_id, safe="")


BODY_ROUTES = ["/v1/responses", "/v1/responses/input_tokens", "/v1/responses/compact"]
ID_ROUTES = ["retrieve", "input_items", "delete", "cancel"]
JSON_HEADERS = {"Content-Type": "application/json"}


def post_body(http: httpx.Client, route: str, body: Any) -> httpx.Response:
    return http.post(route, content=encode(body), headers=JSON_HEADERS)


def call_id_route(
    http: httpx.Client, route: str, response_id: str, *, raw: bool, query: dict[str, str], body: Any = None
) -> httpx.Response:
    """One of the routes that name a response: retrieve, input items, delete, cancel."""
    path = "/v1/responses/" + path_id(response_id, raw)
    if route == "retrieve":
        return http.get(path, params=query)
    if route == "input_items":
        return http.get(path + "/input_items", params=query)
    if route == "delete":
        return http.delete(path, params=query)
    content = None if body is None else encode(body)
    return http.post(path + "/cancel", params=query, content=content, headers=JSON_HEADERS)


# -- WebSocket frames ------------------------------------------------------------------------------

CLIENT_EVENT_TYPES = ["response.create", "response.steer", "response.interrupt", "response.processed",
                      "response.cancel", "session.update", "bogus"]


other_events: Strategy = broken(
    st.fixed_dictionaries(
        {"type": st.sampled_from(CLIENT_EVENT_TYPES)},
        optional={"previous_response_id": ids, "response_id": ids, "input": st.one_of(inputs, deep_values),
                  "mode": st.sampled_from(["immediate", "graceful"]), "stream_id": st.just("lane-a")},
    ),
    ("type", "input", "stream_id"),
)


@dataclass(frozen=True)
class Frame:
    """One frame to send: text or binary, and whether it is a `response.create` (which the server
    answers with exactly one terminal event or error, on its lane's schedule)."""

    data: str | bytes
    is_create: bool = False


def _text_frame(value: Any, is_create: bool = False) -> Frame:
    return Frame(encode(value).decode("utf-8"), is_create)


create_frames: Strategy = create_bodies().map(
    lambda body: _text_frame({**body, "type": "response.create"}, True) if isinstance(body, dict) else _text_frame(body)
)
ws_frames: Strategy = st.one_of(
    create_frames,
    create_frames,
    other_events.map(_text_frame),
    other_events.map(_text_frame),
    st.text(max_size=40).map(Frame),
    st.binary(max_size=40).map(Frame),
)


# -- checks ----------------------------------------------------------------------------------------


def envelope_problems(body: Any, status: int) -> list[str]:
    """The API's error envelope, exactly `{"error": {message, type, param, code}}`."""
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return [f"{status}: not the error envelope: {str(body)[:200]}"]
    return error_object_problems(body["error"], status)


def error_object_problems(error: dict[str, Any], status: int) -> list[str]:
    problems = []
    if set(error) != ERROR_KEYS:
        problems.append(f"{status}: error keys {sorted(error)}")
    if not isinstance(error.get("message"), str) or not error.get("message"):
        problems.append(f"{status}: no message: {error}")
    if not isinstance(error.get("type"), str):
        problems.append(f"{status}: no type: {error}")
    if not all(error.get(key) is None or isinstance(error.get(key), str) for key in ("param", "code")):
        problems.append(f"{status}: param/code not strings: {str(error)[:200]}")
    return problems


def failed_by_server(response: Any) -> bool:
    """A `failed` response whose error is tether's (or the model's) fault, not the input's."""
    if not isinstance(response, dict) or response.get("status") != "failed":
        return False
    error = response.get("error") or {}
    return isinstance(error, dict) and error.get("code") == "server_error"


def sse_problems(text: str) -> list[str]:
    """A streamed answer: every `data:` line one JSON event, ending in a terminal event or an error."""
    events: list[dict[str, Any]] = []
    for line in text.split("\n"):
        if line.startswith("data: "):
            try:
                events.append(json.loads(line.removeprefix("data: ")))
            except json.JSONDecodeError:
                return [f"SSE: unparseable data line {line[:120]}"]
    if not events:
        return ["SSE: a 200 stream with no events"]
    last = events[-1]
    if last.get("type") == "error":
        return [] if last.get("code") != "server_error" else [f"SSE: server_error event {last}"]
    if last.get("type") not in TERMINAL_TYPES:
        return [f"SSE: stream cut after {last.get('type')}"]
    if failed_by_server(last.get("response")):
        return [f"SSE: response.failed by the server: {last['response'].get('error')}"]
    return []


def http_problems(response: httpx.Response) -> list[str]:
    """Problems with one HTTP answer to generated input."""
    status = response.status_code
    if status >= 500:
        return [f"{status} {response.request.method} {response.request.url.path}: {response.text[:200]}"]
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("text/event-stream"):
        return sse_problems(response.text)
    if status >= 400:
        if not content_type.startswith("application/json"):
            return [f"{status}: content-type {content_type!r}"]
        return envelope_problems(response.json(), status)
    if content_type.startswith("application/json") and failed_by_server(response.json()):
        return [f"{status}: response failed by the server: {response.json().get('error')}"]
    return []


@dataclass
class FrameOutcome:
    problems: list[str]
    events: int
    errors_by_status: dict[int, int]
    #: the socket is gone (closed by the server, or silent past the timeout)
    lost: bool = False


def exchange_frame(sock: ClientConnection, frame: Frame) -> FrameOutcome:
    """Send one generated frame and then a ping (an unknown event type, answered with an `error`),
    and read until the ping's answer has come and, for a create, its terminal event: the socket has
    answered everything and is still usable."""
    data = frame.data
    try:
        sock.send(data)
        sock.send(json.dumps({"type": PING_TYPE}))
    except ConnectionClosed as closed:
        return FrameOutcome([f"WS: connection closed ({closed}) on sending {str(data)[:200]}"], 0, {}, lost=True)
    problems: list[str] = []
    errors: dict[int, int] = {}
    pinged, terminated, events = False, not frame.is_create, 0
    while not (pinged and terminated):
        try:
            raw = sock.recv(timeout=RECV_TIMEOUT_S)
        except TimeoutError:
            problems.append(f"WS: no answer within {RECV_TIMEOUT_S:g} s to {str(data)[:200]}")
            return FrameOutcome(problems, events, errors, lost=True)
        except ConnectionClosed as closed:
            problems.append(f"WS: connection closed ({closed}) after {str(data)[:200]}")
            return FrameOutcome(problems, events, errors, lost=True)
        events += 1
        if not isinstance(raw, str):
            problems.append("WS: a binary frame from the server")
            continue
        event = json.loads(raw)
        kind_out = event.get("type") if isinstance(event, dict) else None
        if kind_out == "error":
            status = event.get("status")
            error = event.get("error") if isinstance(event.get("error"), dict) else {}
            if not isinstance(status, int) or status >= 500:
                problems.append(f"WS: error status {status}: {str(event)[:300]} for {str(data)[:200]}")
            problems += error_object_problems(error, status if isinstance(status, int) else 0)
            if error.get("param") == "type" and PING_TYPE in str(error.get("message")):
                pinged = True
            else:
                errors[status] = errors.get(status, 0) + 1
                terminated = True
        elif kind_out in TERMINAL_TYPES:
            terminated = True
            if failed_by_server(event.get("response")):
                problems.append(f"WS: response.failed by the server: {event['response'].get('error')}")
        elif kind_out is None:
            problems.append(f"WS: a frame that is no event: {raw[:200]}")
    return FrameOutcome(problems, events, errors)


class FuzzSocket:
    """One WebSocket for a whole fuzz run, opened again after a frame lost it (that frame reports the
    problem), so one bad frame does not fail every frame after it, nor mislead hypothesis' shrinking."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.reconnects = 0
        self.sock = connect(url, max_size=None)

    def exchange(self, frame: Frame) -> FrameOutcome:
        outcome = exchange_frame(self.sock, frame)
        if outcome.lost:
            self.sock.close()
            self.sock = connect(self.url, max_size=None)
            self.reconnects += 1
        return outcome

    def close(self) -> None:
        self.sock.close()
