"""The upstream replica list, from `--upstream-url` (repeatable) and `--upstream-file` (one URL a line)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit


def read_replica_file(path: str | Path) -> list[str]:
    """The URLs in a replica file: one a line; blank lines and `#` comments are skipped."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"--upstream-file {path}: {exc.strerror or exc}") from exc
    urls = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [url for url in urls if url]


def replica_urls(urls: Sequence[str], file: str | Path | None = None) -> tuple[str, ...]:
    """Every replica URL given, in order, each checked to be an http(s) URL with a host."""
    found = [*urls, *(read_replica_file(file) if file is not None else [])]
    for url in found:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"upstream replica {url!r} is not an http:// or https:// URL")
    if file is not None and not found:
        raise ValueError(f"--upstream-file {file} names no replica")
    return tuple(found)
