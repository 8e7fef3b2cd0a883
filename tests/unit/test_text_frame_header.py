"""tether's header for an uncompressed text frame is the one websockets' own serializer writes."""

from __future__ import annotations

import pytest
from websockets.frames import OP_TEXT, Frame

from tether.server.ws_protocol import text_frame_header


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 1 << 20])
def test_header_matches_websockets_serializer(length: int) -> None:
    payload = b"x" * length
    assert text_frame_header(length) + payload == Frame(OP_TEXT, payload).serialize(mask=False)
