"""Codex-style patches (the `apply_patch` format models trained on Codex already know).

    *** Begin Patch
    *** Add File: path/new.py
    +every line of the new file, prefixed with '+'
    *** Delete File: path/old.py
    *** Update File: path/mod.py
    *** Move to: path/renamed.py          (optional)
    @@ def add(a, b):                     (optional anchor: a line at or before the hunk)
     context line (prefix ' ')
    -removed line
    +added line
    *** End Patch

Hunks of one file apply in order, each searched for after the previous one (exact match first, then
ignoring trailing and then surrounding whitespace). Every change is checked before any file is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .workspace import ToolError

BEGIN, END = "*** Begin Patch", "*** End Patch"
ADD, DELETE, UPDATE, MOVE = "*** Add File: ", "*** Delete File: ", "*** Update File: ", "*** Move to: "
END_OF_FILE = "*** End of File"


@dataclass(slots=True)
class Hunk:
    anchor: str = ""
    old: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)


@dataclass(slots=True)
class FileChange:
    kind: str  # "add" | "delete" | "update"
    path: str
    move_to: str | None = None
    added: list[str] = field(default_factory=list)
    hunks: list[Hunk] = field(default_factory=list)


def parse_patch(text: str) -> list[FileChange]:
    lines = text.strip().splitlines()
    if not lines or lines[0].strip() != BEGIN:
        raise ToolError(f"a patch must start with '{BEGIN}'")
    if lines[-1].strip() != END:
        raise ToolError(f"a patch must end with '{END}'")
    changes: list[FileChange] = []
    current: FileChange | None = None
    for number, line in enumerate(lines[1:-1], start=2):
        if line.startswith(ADD):
            current = FileChange("add", line[len(ADD):].strip())
            changes.append(current)
        elif line.startswith(DELETE):
            current = FileChange("delete", line[len(DELETE):].strip())
            changes.append(current)
        elif line.startswith(UPDATE):
            current = FileChange("update", line[len(UPDATE):].strip())
            changes.append(current)
        elif current is None:
            raise ToolError(f"patch line {number}: expected '*** Add File:', '*** Update File:' or '*** Delete File:'")
        elif line.startswith(MOVE) and current.kind == "update":
            current.move_to = line[len(MOVE):].strip()
        elif line.strip() == END_OF_FILE:
            continue
        elif current.kind == "add":
            if not line.startswith("+"):
                raise ToolError(f"patch line {number}: every line of an added file starts with '+'")
            current.added.append(line[1:])
        elif current.kind == "update":
            _update_line(current, line, number)
        else:
            raise ToolError(f"patch line {number}: a deleted file takes no content")
    if not changes:
        raise ToolError("the patch changes no file")
    return changes


def _update_line(change: FileChange, line: str, number: int) -> None:
    if line.startswith("@@"):
        change.hunks.append(Hunk(anchor=line[2:].strip()))
        return
    if not change.hunks:
        change.hunks.append(Hunk())
    hunk = change.hunks[-1]
    marker, body = (line[:1], line[1:]) if line else (" ", "")
    if marker == " ":
        hunk.old.append(body)
        hunk.new.append(body)
    elif marker == "-":
        hunk.old.append(body)
    elif marker == "+":
        hunk.new.append(body)
    else:
        raise ToolError(f"patch line {number}: a hunk line starts with ' ', '-' or '+', not {marker!r}")


_MATCHERS: tuple[Callable[[str], str], ...] = (lambda s: s, str.rstrip, str.strip)


def _find(lines: list[str], wanted: list[str], start: int) -> int:
    for norm in _MATCHERS:
        target = [norm(w) for w in wanted]
        for index in range(start, len(lines) - len(wanted) + 1):
            if [norm(x) for x in lines[index : index + len(wanted)]] == target:
                return index
    return -1


def apply_hunks(original: str, hunks: list[Hunk], path: str) -> str:
    lines = original.splitlines()
    cursor = 0
    for number, hunk in enumerate(hunks, start=1):
        if hunk.anchor:
            at = _find(lines, [hunk.anchor], cursor)
            if at < 0:
                raise ToolError(f"{path}: hunk {number}: anchor line {hunk.anchor!r} not found")
            cursor = at if hunk.old and _find(lines, hunk.old, at) == at else at + 1
        if not hunk.old:
            at = len(lines) if not hunk.anchor else cursor
        else:
            at = _find(lines, hunk.old, cursor)
            if at < 0:
                shown = "\n".join(hunk.old[:6])
                raise ToolError(f"{path}: hunk {number}: these lines were not found:\n{shown}")
        lines[at : at + len(hunk.old)] = hunk.new
        cursor = at + len(hunk.new)
    return "\n".join(lines) + "\n" if lines else ""


@dataclass(slots=True)
class PlannedWrite:
    path: Path
    content: str | None  # None: delete
    shown: str


def plan_patch(text: str, resolve: Callable[[str], Path]) -> list[PlannedWrite]:
    """Every write the patch implies, computed before touching anything (so a bad hunk changes nothing)."""
    writes: list[PlannedWrite] = []
    for change in parse_patch(text):
        path = resolve(change.path)
        if change.kind == "add":
            if path.exists():
                raise ToolError(f"{change.path}: cannot add, the file exists (use '*** Update File:')")
            writes.append(PlannedWrite(path, "\n".join(change.added) + "\n", f"A {change.path}"))
        elif change.kind == "delete":
            if not path.is_file():
                raise ToolError(f"{change.path}: cannot delete, no such file")
            writes.append(PlannedWrite(path, None, f"D {change.path}"))
        else:
            if not path.is_file():
                raise ToolError(f"{change.path}: cannot update, no such file")
            content = apply_hunks(path.read_text(), change.hunks, change.path)
            if change.move_to:
                writes.append(PlannedWrite(path, None, ""))
                writes.append(PlannedWrite(resolve(change.move_to), content, f"M {change.path} -> {change.move_to}"))
            else:
                writes.append(PlannedWrite(path, content, f"M {change.path}"))
    return writes


def apply_patch(text: str, resolve: Callable[[str], Path]) -> list[str]:
    """Applies the patch; returns one line per file changed (A/M/D path)."""
    writes = plan_patch(text, resolve)
    for write in writes:
        if write.content is None:
            write.path.unlink()
        else:
            write.path.parent.mkdir(parents=True, exist_ok=True)
            write.path.write_text(write.content)
    return [write.shown for write in writes if write.shown]
