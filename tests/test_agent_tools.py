"""The agent's tools: the workspace rule, the patch format, shell approval, caps and errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tether.agent.approval import make_approver
from tether.agent.patch import apply_patch
from tether.agent.tools import OUTPUT_CAP, ToolBox
from tether.agent.workspace import ToolError, Workspace


def toolbox(root: Path, *, yes: bool = True, allow_outside: bool = False) -> ToolBox:
    return ToolBox(Workspace(root, allow_outside=allow_outside), make_approver(yes, stdin=io.StringIO("")))


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def call(box: ToolBox, name: str, **args: object) -> tuple[bool, str]:
    outcome = await box.run(name, json.dumps(args))
    return outcome.ok, outcome.output


@pytest.mark.parametrize("path", ["../outside.txt", "a/../../outside.txt", "/etc/passwd", "link/secret.txt"])
async def test_paths_outside_the_workspace_are_refused(tmp_path: Path, path: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")  # a symlink out of the workspace is an escape too
    box = toolbox(root)
    for name, args in (("read_file", {"path": path}), ("write_file", {"path": path, "content": "x"}),
                       ("list_files", {"path": path})):
        ok, output = await call(box, name, **args)
        assert not ok and "outside the working directory" in output, (name, output)
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "elsewhere" / "secret.txt").exists()
    ok, output = await call(box, "apply_patch", patch=f"*** Begin Patch\n*** Add File: {path}\n+x\n*** End Patch")
    assert not ok and "outside the working directory" in output


async def test_allow_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    ok, _ = await call(toolbox(root, allow_outside=True), "write_file", path="../outside.txt", content="x")
    assert ok and (tmp_path / "outside.txt").read_text() == "x"


async def test_file_tools(tmp_path: Path) -> None:
    box = toolbox(tmp_path)
    assert (await call(box, "write_file", path="pkg/a.py", content="one\ntwo\nthree\n"))[0]
    assert await call(box, "read_file", path="pkg/a.py", start_line=2, end_line=3) == (True, "two\nthree\n")
    ok, listing = await call(box, "list_files")
    assert ok and listing == "pkg/a.py"
    ok, output = await call(box, "read_file", path="missing.py")
    assert not ok and "no such file" in output
    ok, output = await call(box, "nope")
    assert not ok and "unknown tool 'nope'" in output
    outcome = await box.run("read_file", "{not json")
    assert not outcome.ok and "not valid JSON" in outcome.output
    ok, output = await call(box, "read_file", wrong="x")
    assert not ok and "wrong arguments" in output


async def test_shell_runs_in_the_workspace_with_a_cap_and_a_timeout(tmp_path: Path) -> None:
    box = toolbox(tmp_path)
    ok, output = await call(box, "shell", command="pwd; echo err >&2; exit 3")
    assert ok and output.startswith("exit code 3\n") and str(tmp_path.resolve()) in output and "err" in output
    ok, output = await call(box, "shell", command="yes | head -c 100000")
    assert ok and len(output) < OUTPUT_CAP + 200 and "characters cut" in output
    outcome = await box.run("shell", json.dumps({"command": "echo start; sleep 30", "timeout_s": 1}))
    assert outcome.ok and outcome.output.startswith("timed out after 1 s") and outcome.seconds < 10


async def test_shell_approval(tmp_path: Path) -> None:
    refused = ToolBox(Workspace(tmp_path), make_approver(False, stdin=io.StringIO("y\n")))  # not a terminal
    ok, output = await call(refused, "shell", command="touch a")
    assert not ok and "without --yes" in output and not (tmp_path / "a").exists()
    answers = FakeTerminal("n\ny\n")
    asked = ToolBox(Workspace(tmp_path), make_approver(False, stdin=answers, stdout=io.StringIO()))
    ok, output = await call(asked, "shell", command="touch b")
    assert not ok and "declined" in output and not (tmp_path / "b").exists()
    ok, output = await call(asked, "shell", command="touch c")
    assert ok and (tmp_path / "c").exists()


def test_patch_add_update_delete_move(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    (tmp_path / "a.py").write_text("def f():\n    return 1\n\n\ndef g():\n    return 1\n")
    (tmp_path / "old.txt").write_text("bye\n")
    (tmp_path / "m.txt").write_text("x\ny\n")
    patch = """*** Begin Patch
*** Add File: new/b.py
+print('b')
*** Update File: a.py
@@ def g():
-    return 1
+    return 2
*** Delete File: old.txt
*** Update File: m.txt
*** Move to: moved.txt
 x
-y
+z
*** End Patch"""
    assert apply_patch(patch, ws.resolve) == ["A new/b.py", "M a.py", "D old.txt", "M m.txt -> moved.txt"]
    assert (tmp_path / "a.py").read_text() == "def f():\n    return 1\n\n\ndef g():\n    return 2\n"
    assert (tmp_path / "new/b.py").read_text() == "print('b')\n"
    assert not (tmp_path / "old.txt").exists() and not (tmp_path / "m.txt").exists()
    assert (tmp_path / "moved.txt").read_text() == "x\nz\n"


def test_a_bad_hunk_changes_nothing(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    (tmp_path / "a.py").write_text("one\n")
    patch = ("*** Begin Patch\n*** Add File: b.py\n+b\n*** Update File: a.py\n-nothing like this\n+two\n"
             "*** End Patch")
    with pytest.raises(ToolError, match="not found"):
        apply_patch(patch, ws.resolve)
    assert not (tmp_path / "b.py").exists() and (tmp_path / "a.py").read_text() == "one\n"
    with pytest.raises(ToolError, match="must start with"):
        apply_patch("--- a/a.py\n+++ b/a.py\n", ws.resolve)
