"""What every route shares: settings, auth, the backend, the response book and the turn engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Backend
from ..core.book import ResponseBook
from ..core.connection_cache import CacheBudget
from ..core.responder import TurnEngine
from ..store.base import ResponseStore
from .auth import Authenticator
from .config import ServerConfig


@dataclass(slots=True)
class AppState:
    config: ServerConfig
    backend: Backend
    store: ResponseStore
    book: ResponseBook
    engine: TurnEngine
    auth: Authenticator
    ws_budget: CacheBudget
    connections: set[Any] = field(default_factory=set)
    shutting_down: bool = False

    @staticmethod
    def build(config: ServerConfig, backend: Backend, store: ResponseStore) -> AppState:
        book = ResponseBook(store, config.recent_response_bytes)
        return AppState(
            config,
            backend,
            store,
            book,
            TurnEngine(backend, book),
            Authenticator(config.api_keys),
            CacheBudget(config.ws_cache_bytes_total),
        )
