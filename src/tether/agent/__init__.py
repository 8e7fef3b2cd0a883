"""The coding-agent loop (`tether agent`): tools (workspace, patch, approval), the loop, progress and summary.

Modules: `tools` (the function tools), `workspace` (path rules), `patch` (the `*** Begin Patch` format),
`approval` (asking before shell commands), `loop` (the agent loop), `report` and `display` (progress and
summary), `embedded` (an in-process server), `command` (the CLI wiring).
"""
