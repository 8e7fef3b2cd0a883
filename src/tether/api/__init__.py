"""The wire format, free of I/O: requests, items, responses, events, errors, ids and framing."""
