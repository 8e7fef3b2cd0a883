"""Live progress lines and the final summary of an agent run, as plain text."""

from __future__ import annotations

import sys
from typing import TextIO

from ..client.stats import TurnStats
from .report import AgentReport, ToolRecord


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def size(nbytes: int) -> str:
    return f"{nbytes} B" if nbytes < 1024 else f"{nbytes / 1024:.1f} KiB"


class Display:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self, server: str, transport: str, cwd: str, model: str) -> None:
        self.line(f"tether agent: {server}  transport {transport}  model {model}")
        self.line(f"  working directory {cwd}")

    def warm_up(self, stats: TurnStats | None) -> None:
        if stats is not None:
            self.line(f"warm-up  {stats.transport}  {size(stats.bytes_sent)} sent  wait {ms(stats.server_wait_s)}")

    def turn(self, number: int, stats: TurnStats) -> None:
        chain = "incremental" if stats.incremental else "full context"
        recovered = f"  [recovered: {', '.join(stats.recoveries)}]" if stats.recoveries else ""
        self.line(
            f"turn {number}  {stats.transport} {chain} ({stats.input_items_sent} items, {size(stats.bytes_sent)})"
            f"  tokens {stats.input_tokens} in ({stats.cached_tokens} cached) / {stats.output_tokens} out"
            f"  wait {ms(stats.server_wait_s)} (first event {ms(stats.first_event_s)}){recovered}"
        )

    def tool(self, record: ToolRecord, summary: str) -> None:
        mark = "ok" if record.ok else "error"
        self.line(f"  -> {record.name} {summary}  {mark}: {record.brief}  ({ms(record.seconds)})")

    def final(self, text: str) -> None:
        if text:
            self.line("final answer:")
            for line in text.splitlines() or [""]:
                self.line(f"  {line}")

    def summary(self, report: AgentReport) -> None:
        counts = report.tool_counts()
        by_name = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
        failed = sum(1 for t in report.tools if not t.ok)
        incremental = sum(1 for t in report.turns if t.incremental)
        tokens_in = sum(t.input_tokens for t in report.turns)
        cached = sum(t.cached_tokens for t in report.turns)
        tokens_out = sum(t.output_tokens for t in report.turns)
        other = max(0.0, report.wall_s - report.server_wait_s - report.tool_s)
        recoveries = [r for t in report.turns for r in t.recoveries]
        rows = [
            ("outcome", report.outcome),
            ("transport", report.transport),
            ("turns", f"{len(report.turns)} ({incremental} incremental)"),
            ("tool calls", f"{len(report.tools)}" + (f" ({by_name})" if by_name else "") +
             (f", {failed} failed" if failed else "")),
            ("wall time", ms(report.wall_s)),
            ("  server wait", f"{ms(report.server_wait_s)}  (request sent -> terminal event)"),
            ("  model time", f"{ms(report.model_s)}  (first delta -> terminal event; part of the server wait)"),
            ("  tool time", ms(report.tool_s)),
            ("  other", f"{ms(other)}  (client, display, approval prompts)"),
            ("tokens", f"{tokens_in} in ({cached} cached), {tokens_out} out"),
            ("bytes sent", size(report.bytes_sent)),
        ]
        if recoveries:
            rows.append(("recoveries", ", ".join(recoveries)))
        self.line("summary")
        for name, value in rows:
            self.line(f"  {name:<14}{value}")
