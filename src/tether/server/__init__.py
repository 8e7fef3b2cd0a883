"""The ASGI app: HTTP, SSE and WebSocket routes, auth, limits, metrics and start-up."""
