"""`--otel-traces otlp`: one SERVER span per turn, exported over OTLP/HTTP to a collector this test runs
(a real HTTP server decoding the protobuf requests), a child of the client's W3C trace context: from
`client_metadata` as Codex sends it over WebSocket, or from an HTTP request's `traceparent` header."""

from __future__ import annotations

import http.server
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from .support import RunningServer, running_server, write_script
from .ws_support import collect, completed, create_event, user

WAIT_S = 30.0


class Collector:
    """An OTLP/HTTP traces endpoint on loopback that keeps every span it receives."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with collector.lock:
                    for resource in request.resource_spans:
                        for scope in resource.scope_spans:
                            collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def span_of(self, response_id: str) -> Span:
        """The span whose `tether.response_id` is this response's (waits for the batch to arrive)."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with self.lock:
                for span in self.spans:
                    if attributes(span).get("tether.response_id") == response_id:
                        return span
            time.sleep(0.05)
        raise AssertionError(f"no span for {response_id}; got {len(self.spans)} spans")


def attributes(span: Span) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attribute in span.attributes:
        kind = attribute.value.WhichOneof("value")
        values[attribute.key] = getattr(attribute.value, kind) if kind else None
    return values


def new_traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Collector]]:
    directory = tmp_path_factory.mktemp("tracing")
    collector = Collector()
    script = write_script(directory, [{"text": f"traced answer {k}"} for k in range(8)])
    with running_server(directory, "--backend", "scripted", "--script", str(script), "--store", "memory",
                        "--otel-traces", "otlp", "--otel-endpoint", collector.url) as server:
        yield server, collector
    collector.server.shutdown()


def test_http_turn_is_a_child_of_the_traceparent_header(traced: tuple[RunningServer, Collector]) -> None:
    server, collector = traced
    traceparent, trace_id, parent_id = new_traceparent()
    reply = httpx.post(server.url + "/v1/responses", json={"model": "m", "input": "hi"},
                       headers={"traceparent": traceparent, "tracestate": "vendor=1"}, timeout=30)
    assert reply.status_code == 200, reply.text
    response = reply.json()
    span = collector.span_of(response["id"])
    assert span.name == "responses.create"
    assert span.kind == Span.SpanKind.SPAN_KIND_SERVER
    assert span.trace_id.hex() == trace_id and span.parent_span_id.hex() == parent_id
    assert span.trace_state == "vendor=1"
    found = attributes(span)
    assert found["tether.transport"] == "http" and found["tether.status"] == "completed"
    assert found["tether.output_tokens"] == response["usage"]["output_tokens"]
    assert span.end_time_unix_nano > span.start_time_unix_nano


def test_websocket_turns_follow_client_metadata_as_codex_sends_it(traced: tuple[RunningServer, Collector]) -> None:
    server, collector = traced
    sdk = OpenAI(base_url=server.base_url, api_key="unused")
    with sdk.responses.connect() as conn:
        previous = None
        for turn in range(2):  # each turn its own trace context, on one socket
            traceparent, trace_id, parent_id = new_traceparent()
            conn.send(create_event(model="m", input=[user(f"turn {turn}")], previous_response_id=previous,
                                   store=False, client_metadata={"traceparent": traceparent,
                                                                 "x-codex-window-id": "w1"}))
            response = completed(collect(conn))
            previous = response["id"]
            span = collector.span_of(response["id"])
            assert span.trace_id.hex() == trace_id and span.parent_span_id.hex() == parent_id
            assert attributes(span)["tether.transport"] == "ws"


def test_no_or_malformed_traceparent_starts_a_trace_of_its_own(traced: tuple[RunningServer, Collector]) -> None:
    server, collector = traced
    for headers in ({}, {"traceparent": "00-not-a-trace-01"}):
        reply = httpx.post(server.url + "/v1/responses", json={"model": "m", "input": "hi"}, headers=headers,
                           timeout=30)
        assert reply.status_code == 200, reply.text  # bad telemetry never fails the turn
        span = collector.span_of(reply.json()["id"])
        assert span.parent_span_id == b""
        assert len(span.trace_id) == 16 and span.trace_id != bytes(16)


def test_traces_need_the_flag(tmp_path: Path) -> None:
    """Without --otel-traces no exporter is set up: the server sends nothing anywhere."""
    collector = Collector()
    script = write_script(tmp_path, [{"text": "untraced"}])
    with running_server(tmp_path, "--backend", "scripted", "--script", str(script), "--store", "memory",
                        env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url.removesuffix("/v1/traces")}) as server:
        reply = httpx.post(server.url + "/v1/responses", json={"model": "m", "input": "hi"}, timeout=30)
        assert reply.status_code == 200
        time.sleep(1.5)  # three export intervals of a traced server
    assert collector.spans == []
    collector.server.shutdown()
