"""The backend a server runs, from its typed settings."""

from __future__ import annotations

from .base import Backend
from .settings import BackendSettings, LlamaCppSettings, ScriptedSettings, UpstreamSettings


def make_backend(settings: BackendSettings) -> Backend:
    if isinstance(settings, ScriptedSettings):
        from .scripted import Script, ScriptedBackend

        return ScriptedBackend(Script.load(settings.script))
    if isinstance(settings, UpstreamSettings):
        from .upstream import UpstreamBackend

        if not settings.urls:
            raise ValueError("--backend upstream needs --upstream-url")
        from .upstream_http import Timeouts

        timeouts = Timeouts(settings.connect_timeout, settings.first_byte_timeout, settings.idle_timeout)
        return UpstreamBackend(settings.urls, api_key=settings.api_key, model=settings.model, timeouts=timeouts,
                               health_interval=settings.health_interval)
    if isinstance(settings, LlamaCppSettings):
        from .llamacpp import make_llamacpp_backend

        return make_llamacpp_backend(settings)
    raise ValueError(f"unknown backend settings {settings!r}")
