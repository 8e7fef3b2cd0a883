"""Which backend `tether serve` runs, from its flags."""

from __future__ import annotations

import argparse

from .base import Backend


def make_backend(args: argparse.Namespace) -> Backend:
    kind = args.backend or "llamacpp"
    if kind == "scripted":
        from .scripted import Script, ScriptedBackend

        return ScriptedBackend(Script.load(args.script))
    if kind == "upstream":
        from .upstream import UpstreamBackend

        if not args.upstream_url:
            raise ValueError("--backend upstream needs --upstream-url")
        return UpstreamBackend(args.upstream_url, api_key=args.upstream_api_key, model=args.upstream_model)
    if kind == "llamacpp":
        from .llamacpp import make_llamacpp_backend

        return make_llamacpp_backend(args)
    raise ValueError(f"unknown backend {kind!r}")
