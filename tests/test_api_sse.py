"""The SSE decoder (tether.api.sse), fed bytes and lines directly: no sockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from tether.api.framing import sse_frame
from tether.api.sse import ServerSentEvent, SSEDecoder, decode_stream

# Every rule at once: a mark, comments, CRLF / CR / LF line ends, a field without a colon, one space
# stripped (not two), multi-line data, id and retry, an event without data, a non-ASCII character.
MIXED = (
    "\ufeff: a comment\r\n"
    "event: first\r\n"
    "data: one\r\n"
    "data:  two\r\n"
    "id: 7\r\n"
    "\r\n"
    "retry: 1500\r"
    "data:é€😀\r"
    "\r"
    "event: dropped\n"
    "\n"
    "data\n"
    "\n"
).encode()
MIXED_EVENTS = [
    ServerSentEvent("one\n two", "first", "7"),
    ServerSentEvent("é€😀", "message", "7"),
    ServerSentEvent("", "message", "7"),
]


def decode_all(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close()


def test_mixed_stream_in_one_chunk() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(MIXED) == MIXED_EVENTS
    assert decoder.retry == 1500
    assert decoder.close() == []


def test_every_split_point_gives_the_same_events() -> None:
    # Splits inside the mark, inside a CRLF and inside a multi-byte character included.
    for cut in range(1, len(MIXED)):
        assert decode_all([MIXED[:cut], MIXED[cut:]]) == MIXED_EVENTS, cut
    assert decode_all([MIXED[i : i + 1] for i in range(len(MIXED))]) == MIXED_EVENTS


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == [ServerSentEvent("a\nb")]
    assert decoder.feed(b"\n") == []  # the pair of the last CR, not a second blank line


def test_two_crs_are_two_line_ends() -> None:
    assert SSEDecoder().feed(b"data: x\r\r") == [ServerSentEvent("x")]


def test_event_type_and_data_reset_after_dispatch() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: a\ndata: 1\n\ndata: 2\n\n") == [ServerSentEvent("1", "a"), ServerSentEvent("2")]
    assert decoder.feed(b"event: lonely\n\n") == []  # no data: nothing dispatched
    assert decoder.feed(b"data: 3\n\n") == [ServerSentEvent("3")]


def test_id_persists_and_an_id_with_nul_is_ignored() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: x1\ndata: a\n\ndata: b\n\nid: bad\0\ndata: c\n\nid\ndata: d\n\n") == [
        ServerSentEvent("a", id="x1"),
        ServerSentEvent("b", id="x1"),
        ServerSentEvent("c", id="x1"),
        ServerSentEvent("d", id=""),
    ]


def test_retry_takes_digits_only_and_unknown_fields_are_ignored() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 12a\nretry: -5\nfoo: bar\ndata: ok\n\n") == [ServerSentEvent("ok")]
    assert decoder.retry is None
    decoder.feed(b"retry: 30\n")
    assert decoder.retry == 30


def test_a_mark_after_the_start_is_content() -> None:
    assert SSEDecoder().feed(b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [ServerSentEvent("a")]
    assert SSEDecoder().feed(b"data: \xef\xbb\xbfb\n\n") == [ServerSentEvent("\ufeffb")]


def test_invalid_utf8_is_replaced() -> None:
    assert SSEDecoder().feed(b"data: \xff\xfe\n\n") == [ServerSentEvent("\ufffd\ufffd")]


def test_close_hands_on_an_unterminated_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: {\"a\": 1}\ndata: tail") == []
    assert decoder.close() == [ServerSentEvent('{"a": 1}\ntail')]
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]\n") == []
    assert decoder.close() == [ServerSentEvent("[DONE]")]
    assert SSEDecoder().close() == []


def test_feed_line_matches_feed() -> None:
    decoder = SSEDecoder()
    lines = MIXED.decode().removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    events = [event for line in lines if (event := decoder.feed_line(line)) is not None]
    assert events == MIXED_EVENTS


def test_tethers_own_frames_round_trip() -> None:
    sent = [{"type": "response.created", "sequence_number": 0, "text": "line one\nline two"},
            {"type": "response.output_text.delta", "sequence_number": 1, "delta": "data: not a field\n\n"}]
    body = b"".join(sse_frame(event) for event in sent)
    events = decode_all([body[i : i + 5] for i in range(0, len(body), 5)])
    assert [event.event for event in events] == [event["type"] for event in sent]
    assert [json.loads(event.data) for event in events] == sent


async def test_decode_stream() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(0, len(MIXED), 3):
            yield MIXED[index : index + 3]

    assert [event async for event in decode_stream(chunks())] == MIXED_EVENTS
