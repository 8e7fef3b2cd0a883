"""The agent's working directory and the rule that file tools stay inside it."""

from __future__ import annotations

from pathlib import Path


class ToolError(Exception):
    """A tool could not do what the model asked; the message goes back to the model as the tool output."""


class Workspace:
    def __init__(self, root: Path, *, allow_outside: bool = False) -> None:
        self.root = root.resolve()
        self.allow_outside = allow_outside

    def resolve(self, path: str) -> Path:
        """The real path (symlinks resolved) of `path`, relative to the root; refuses escapes."""
        if not isinstance(path, str) or not path.strip():
            raise ToolError("'path' must be a non-empty string")
        candidate = Path(path).expanduser()
        if not candidate.is_absolute():
            candidate = self.root / candidate
        real = candidate.resolve()
        if not self.allow_outside and not real.is_relative_to(self.root):
            raise ToolError(
                f"path {path!r} resolves to {real}, outside the working directory {self.root}; "
                "use a path inside it (the agent was not started with --allow-outside)"
            )
        return real

    def show(self, path: Path) -> str:
        """`path` as the model should see it: relative to the root when inside it."""
        try:
            return str(path.relative_to(self.root)) or "."
        except ValueError:
            return str(path)
