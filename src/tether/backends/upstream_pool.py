"""The engine pool: the upstream replicas, their health and load, and where each conversation runs.

A new conversation goes to the least-loaded healthy replica (fewest requests in flight, then fewest
conversations); every later turn of it goes back to the same replica, whose prefix cache holds it
(see `upstream_affinity` for how a turn finds its conversation). A replica that cannot be reached,
times out or breaks mid-answer is marked down at once; periodic health checks (`GET /health`, or
`GET /v1/models` where there is none) mark it down or up again. A conversation whose replica is down
moves to another one on its next turn: the upstream is stateless, so the full context is sent there
anyway, and the move shows in `tether_upstream_failovers_total` and, in the turn's usage, as prompt
tokens the new replica had not cached. A request that reached no replica at all (connection refused,
or closed unanswered twice) is sent to the next replica within the same turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from ..core.metrics import METRICS
from .base import BackendError
from .upstream_affinity import AffinityTable, PrefixHasher
from .upstream_http import (
    Attempt,
    ReplicaClients,
    StreamBroken,
    Timeouts,
    UpstreamTimeout,
    UpstreamUnreachable,
    stream_chunks,
)

log = logging.getLogger("tether.upstream")

HEALTH_TIMEOUT = 5.0


def api_base(url: str) -> str:
    """`http://host:port`, `.../v1` or `.../v1/chat/completions` -> the `.../v1` base."""
    base = url.strip().rstrip("/")
    if base.endswith("/chat/completions"):
        base = base[: -len("/chat/completions")]
    return base if base.endswith("/v1") else base + "/v1"


class Replica:
    """One engine server: its connections, health and load."""

    def __init__(self, url: str, api_key: str | None, timeouts: Timeouts) -> None:
        self.url = api_base(url)
        self.clients = ReplicaClients.open(self.url, api_key, timeouts)
        self.healthy = True  # until a request or a health check says otherwise
        self.in_flight = 0
        self.failures = 0
        self.prompt_tokens = 0
        self.cached_tokens = 0
        METRICS.upstream_healthy.labels(replica=self.url).set(1)

    @property
    def root(self) -> str:
        """The server's root, where `/health` lives (not under `/v1`)."""
        return self.url.removesuffix("/v1")

    def __repr__(self) -> str:
        return f"Replica({self.url!r}, healthy={self.healthy}, in_flight={self.in_flight})"


class Placed(Protocol):
    """What the pool reads and writes on a session."""

    messages: list[dict[str, Any]]
    hasher: PrefixHasher
    conversation: str | None
    replica: Replica | None
    #: the replica recorded with the parent response, for a session rebuilt from the store
    placement_hint: str | None


@dataclass(frozen=True, slots=True)
class PoolSettings:
    timeouts: Timeouts = field(default_factory=Timeouts)
    #: seconds between health checks of each replica; 0 turns them off
    health_interval: float = 5.0


class EnginePool:
    def __init__(self, urls: Sequence[str], api_key: str | None = None, settings: PoolSettings | None = None) -> None:
        if not urls:
            raise ValueError("the upstream backend needs at least one --upstream-url")
        self.settings = settings = settings or PoolSettings()
        self.replicas: list[Replica] = []
        for url in urls:
            if api_base(url) not in {replica.url for replica in self.replicas}:
                self.replicas.append(Replica(url, api_key, settings.timeouts))
        self.by_url = {replica.url: replica for replica in self.replicas}
        #: with one replica there is nothing to choose, and no conversation is hashed or tracked
        self.pinning = len(self.replicas) > 1
        self.affinity = AffinityTable()
        self._turn = itertools.count()  # breaks ties between equally loaded replicas
        self._health_task: asyncio.Task[None] | None = None

    # -- life ---------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.check_health()
        if self.settings.health_interval > 0 and self._health_task is None:
            self._health_task = asyncio.create_task(self._health_loop(), name="tether-upstream-health")

    async def aclose(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None
        for replica in self.replicas:
            await replica.clients.aclose()

    # -- placement ----------------------------------------------------------------------------
    def choose(self, exclude: Sequence[Replica] = ()) -> Replica | None:
        """The least-loaded healthy replica not in `exclude`; if none is healthy, the least-loaded one
        (it may have come back); None when every replica is excluded."""
        candidates = [replica for replica in self.replicas if replica not in exclude]
        healthy = [replica for replica in candidates if replica.healthy]
        pool = healthy or candidates
        if not pool:
            return None
        turn = next(self._turn)
        count = len(self.replicas)
        return min(pool, key=lambda r: (r.in_flight, self.affinity.counts[r.url],
                                        (self.replicas.index(r) - turn) % count))

    def place(self, session: Placed, cache_key: str | None) -> Replica:
        """The replica this turn of `session`'s conversation runs on (moving it if its replica is down)."""
        if not self.pinning:
            session.replica = self.replicas[0]
            return session.replica
        if session.conversation is None:  # a fresh session: a new conversation, or one rebuilt from its items
            digests = session.hasher.update(session.messages)
            session.conversation = self.affinity.find(cache_key, digests) or self.affinity.new_conversation()
        conversation = session.conversation
        current = self.by_url.get(self.affinity.replica_of(conversation) or "")
        if current is None:
            current = session.replica or self.by_url.get(session.placement_hint or "")
        replica = current
        if replica is None or not replica.healthy:
            chosen = self.choose()
            assert chosen is not None  # there are replicas and nothing is excluded
            replica = chosen
        if current is not None and replica is not current:
            self._moved(conversation, current, replica)
        self._pin(session, replica)
        self.affinity.remember(conversation, cache_key, None)
        return replica

    def committed(self, session: Placed) -> None:
        """After a turn's output joined the session's messages: a later request that replays them
        (with whatever it adds) finds this conversation by their hash. Only prefixes that end in a
        model's answer are recorded, so new conversations that merely start alike (parallel agents on
        one task) are still spread by load."""
        if self.pinning and session.conversation is not None:
            digests = session.hasher.update(session.messages)
            if digests:
                self.affinity.remember(session.conversation, None, digests[-1])

    def _pin(self, session: Placed, replica: Replica) -> None:
        session.replica = replica
        if session.conversation is not None:
            before = self.affinity.place(session.conversation, replica.url)
            for url in {before, replica.url}:
                if url is not None:
                    METRICS.upstream_conversations.labels(replica=url).set(self.affinity.counts[url])

    def _moved(self, conversation: str, source: Replica, target: Replica) -> None:
        METRICS.upstream_failovers.labels(replica=source.url).inc()
        log.warning("conversation %s moves from %s (down) to %s; its full context is replayed there",
                    conversation, source.url, target.url)

    # -- requests -----------------------------------------------------------------------------
    async def stream(self, session: Placed, body: dict[str, Any]) -> AsyncGenerator[Any, None]:
        """The chunks of one completion on the session's replica; before any answer arrived, a replica
        that could not be reached is marked down and the request goes to the next one."""
        replica = session.replica or self.place(session, None)
        tried: list[Replica] = []
        while True:
            try:
                async with contextlib.aclosing(self._attempt(replica, body)) as chunks:
                    async for chunk in chunks:
                        yield chunk
                return
            except UpstreamUnreachable:
                tried.append(replica)
                following = self.choose(exclude=tried) if self.pinning else None
                if following is None:
                    raise
                self._moved(session.conversation or "?", replica, following)
                self._pin(session, following)
                replica = following

    async def _attempt(self, replica: Replica, body: dict[str, Any]) -> AsyncGenerator[Any, None]:
        attempt = Attempt()
        replica.in_flight += 1
        METRICS.upstream_in_flight.labels(replica=replica.url).inc()
        METRICS.upstream_requests.labels(replica=replica.url).inc()
        try:
            chunks = stream_chunks(replica.clients, body, self.settings.timeouts, attempt)
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    yield chunk
        except UpstreamUnreachable:
            self._failed(replica, "unreachable", down=True)
            raise
        except UpstreamTimeout as exc:
            self._failed(replica, exc.kind + "_timeout", down=True)
            raise
        except StreamBroken:
            self._failed(replica, "broken", down=True)
            raise
        except BackendError:
            self._failed(replica, "error", down=False)  # an answer, though an error one: the replica is up
            raise
        finally:
            replica.in_flight -= 1
            METRICS.upstream_in_flight.labels(replica=replica.url).dec()
            if attempt.retried:
                METRICS.upstream_retries.labels(replica=replica.url).inc()

    def _failed(self, replica: Replica, kind: str, *, down: bool) -> None:
        replica.failures += 1
        METRICS.upstream_failures.labels(replica=replica.url, kind=kind).inc()
        if down:
            self._set_health(replica, False)

    def record_usage(self, replica: Replica, prompt_tokens: int, cached_tokens: int) -> None:
        replica.prompt_tokens += prompt_tokens
        replica.cached_tokens += cached_tokens
        METRICS.upstream_prompt_tokens.labels(replica=replica.url).inc(prompt_tokens)
        METRICS.upstream_cached_tokens.labels(replica=replica.url).inc(cached_tokens)
        if replica.prompt_tokens:
            share = replica.cached_tokens / replica.prompt_tokens
            METRICS.upstream_cached_share.labels(replica=replica.url).set(share)

    # -- health -------------------------------------------------------------------------------
    async def check_health(self) -> None:
        await asyncio.gather(*(self._probe(replica) for replica in self.replicas))

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval)
            try:
                await self.check_health()
            except Exception:  # a probe must never end the loop
                log.exception("upstream health check failed")

    async def _probe(self, replica: Replica) -> None:
        client = replica.clients.fresh  # a pooled connection might be stale: that says nothing of the replica
        timeout = min(HEALTH_TIMEOUT, self.settings.timeouts.connect)
        try:
            answer = await client.get(replica.root + "/health", timeout=timeout)
            if answer.status_code in (404, 405):  # no such endpoint (Ollama, some proxies)
                answer = await client.get(replica.url + "/models", timeout=timeout)
            ok = answer.status_code == 200
        except httpx.HTTPError:
            ok = False
        if not ok and replica.healthy:
            METRICS.upstream_failures.labels(replica=replica.url, kind="health").inc()
        self._set_health(replica, ok)

    def _set_health(self, replica: Replica, healthy: bool) -> None:
        if healthy != replica.healthy:
            log.warning("upstream replica %s is %s", replica.url, "up again" if healthy else "down")
        replica.healthy = healthy
        METRICS.upstream_healthy.labels(replica=replica.url).set(1 if healthy else 0)

    def stats(self) -> dict[str, Any]:
        return {
            "replicas": [
                {"url": r.url, "healthy": r.healthy, "in_flight": r.in_flight, "failures": r.failures,
                 "conversations": self.affinity.counts[r.url], "prompt_tokens": r.prompt_tokens,
                 "cached_tokens": r.cached_tokens}
                for r in self.replicas
            ]
        }
