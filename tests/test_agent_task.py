"""`tether agent` completes a real multi-step coding task against the scripted backend, over either transport."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tether.cli import main

from .agent_support import FINAL, FIXED, TASK, TEST_COMMAND, TEST_FILE, task_script
from .support import running_server


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["agent", *argv])
    return code, capsys.readouterr().out


def summary_row(out: str, name: str) -> str:
    for line in out.splitlines():
        if line.strip().startswith(name + " "):
            return line.strip()[len(name):].strip()
    raise AssertionError(f"no summary row {name!r} in:\n{out}")


def test_agent_task_same_result_over_ws_and_http(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = task_script(tmp_path)
    results = {}
    for transport in ("ws", "http"):
        work = tmp_path / transport
        work.mkdir()
        code, out = run_cli(capsys, TASK, "--cwd", str(work), "--backend", "scripted", "--script", str(script),
                            "--yes", "--transport", transport)
        assert code == 0, out
        assert summary_row(out, "outcome") == "completed"
        assert summary_row(out, "transport") == transport
        assert summary_row(out, "turns").startswith("6 ")
        assert summary_row(out, "tool calls") == "6 (apply_patch 1, read_file 1, shell 2, write_file 2)"
        assert "exit 1: AssertionError: add(2, 3) returned -1" in out  # the model saw the failure
        assert "exit 0: ok" in out
        assert FINAL in out
        for row in ("wall time", "server wait", "model time", "tool time", "tokens", "bytes sent"):
            summary_row(out, row)
        results[transport] = {p.name: p.read_text() for p in sorted(work.iterdir()) if p.is_file()}
        done = subprocess.run(TEST_COMMAND, shell=True, cwd=work, capture_output=True, text=True, check=False)
        assert done.returncode == 0 and done.stdout.strip() == "ok", done
        if transport == "ws":
            assert summary_row(out, "turns") == "6 (6 incremental)"
        else:
            assert summary_row(out, "turns") == "6 (0 incremental)"
    assert results["ws"] == results["http"] == {"mod.py": FIXED, "test_mod.py": TEST_FILE}


def test_agent_falls_back_to_http_when_the_server_refuses_websockets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = task_script(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    with running_server(tmp_path, "--backend", "scripted", "--script", str(script), "--store", "memory",
                        "--no-websocket") as server:
        code, out = run_cli(capsys, TASK, "--cwd", str(work), "--server", server.base_url, "--yes")
    assert code == 0, out
    assert summary_row(out, "transport") == "http"
    assert (work / "mod.py").read_text() == FIXED


def test_agent_refuses_shell_without_yes_when_stdin_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    turns = [{"tool_calls": [{"name": "shell", "arguments": {"command": "touch made_by_shell.txt"}}]},
             {"text": "I could not run it."}]
    script = task_script(tmp_path, turns)
    work = tmp_path / "work"
    work.mkdir()
    code, out = run_cli(capsys, "make a file", "--cwd", str(work), "--backend", "scripted", "--script", str(script))
    assert code == 0, out
    assert "shell touch made_by_shell.txt  error: the command was not run" in out
    assert not (work / "made_by_shell.txt").exists()
    assert summary_row(out, "tool calls") == "1 (shell 1), 1 failed"


def test_agent_path_escape_is_refused_and_reported_to_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    turns = [{"tool_calls": [{"name": "write_file", "arguments": {"path": "../escaped.txt", "content": "x"}}]},
             {"text": "Refused, as it should be."}]
    script = task_script(tmp_path, turns)
    work = tmp_path / "work"
    work.mkdir()
    code, out = run_cli(capsys, "escape", "--cwd", str(work), "--backend", "scripted", "--script", str(script))
    assert code == 0, out
    assert "write_file ../escaped.txt  error: path '../escaped.txt' resolves to" in out
    assert not (tmp_path / "escaped.txt").exists()


def test_agent_max_turns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = task_script(tmp_path, [{"tool_calls": [{"name": "list_files", "arguments": {}}]}] * 5)
    code, out = run_cli(capsys, "loop", "--cwd", str(tmp_path), "--backend", "scripted", "--script", str(script),
                        "--max-turns", "2")
    assert code == 1
    assert summary_row(out, "outcome") == "max turns reached (2)"
