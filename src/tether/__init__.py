"""tether: a Responses API server for agent loops."""

__version__ = "0.1.0"
