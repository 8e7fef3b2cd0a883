"""GBNF grammars that force the model's output: a tool call (tool_choice required or named), or JSON
that follows the schema of `text.format`. JSON Schemas go through llama.cpp's own converter."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import llama_cpp
from llama_cpp import llama_grammar

from ...api.tools import OfferedTool
from .tool_calls import CALL_CLOSE, CALL_OPEN

log = logging.getLogger("tether.llamacpp")
ANY_OBJECT: dict[str, Any] = {"type": "object"}
_SchemaConverter: Any = llama_grammar.SchemaConverter  # untyped upstream


def _converter() -> Any:
    return _SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)


def _visit(converter: Any, schema: dict[str, Any], name: str, fallback: dict[str, Any]) -> str:
    """The rule for `schema`; a schema the converter cannot handle falls back to `fallback`."""
    try:
        resolved = converter.resolve_refs(schema, name)
        return str(converter.visit(resolved, name))
    except Exception as exc:  # the converter raises plain exceptions on schemas it does not support
        log.warning("JSON Schema %s not supported by the grammar converter (%s); using %s", name, exc, fallback)
        return str(converter.visit(fallback, name))


def tool_call_grammar(tools: Sequence[OfferedTool], name: str | None = None) -> str | None:
    """One tool call, `<tool_call>{"name": N, "arguments": A}</tool_call>`, N among the allowed names
    and A following N's parameter schema (a JSON string for a custom tool). None if no tool qualifies."""
    chosen = [tool for tool in tools if name is None or tool.name == name]
    if not chosen:
        return None
    converter = _converter()
    lit = converter._format_literal
    alternatives = []
    for index, tool in enumerate(chosen):
        if tool.kind == "custom":
            rule = _visit(converter, {"type": "string"}, f"args-{index}", {"type": "string"})
        else:
            rule = _visit(converter, tool.parameters or ANY_OBJECT, f"args-{index}", ANY_OBJECT)
        head = lit('{"name": ' + json.dumps(tool.name) + ', "arguments": ')
        alternatives.append(f"{head} {rule} {lit('}')}")
    rules = str(converter.format_grammar())
    root = f"root ::= {lit(CALL_OPEN + chr(10))} ( {' | '.join(alternatives)} ) {lit(chr(10) + CALL_CLOSE)}"
    return root + "\n" + rules


def json_grammar(schema: dict[str, Any]) -> str:
    """Output that is one JSON value following `schema`."""
    converter = _converter()
    _visit(converter, schema, "", ANY_OBJECT)
    return str(converter.format_grammar())


def grammar_is_valid(vocab: Any, grammar: str) -> bool:
    """Whether llama.cpp parses `grammar` (it would otherwise fail inside the sampler chain)."""
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True
