"""The prompt: conversation items rendered with the GGUF's own chat template (`tokenizer.chat_template`).

Templates that know tools get them as `tools=` and calls as `tool_calls`; the others (SmolLM2's
ChatML) get a short description of the tools and of the call format in the system message, calls as
`<tool_call>` blocks in the assistant's text and results as `<tool_response>` blocks from the user.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ...api.conversation_items import item_tools
from ...api.items import Item, item_text
from ...api.tools import OfferedTool
from ..base import GenerationParams
from ..chat_render import chat_tools, render_items
from .tool_calls import CALL_CLOSE, CALL_OPEN, call_block

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
Message = dict[str, Any]


def _raise(message: str) -> None:
    raise TemplateError(message)


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def tool_prompt(tools: Sequence[OfferedTool]) -> str:
    lines = [
        "You can call these tools. To call one, answer with only:",
        f'{CALL_OPEN}\n{{"name": "<tool name>", "arguments": <JSON object of arguments>}}\n{CALL_CLOSE}',
        "Tools:",
    ]
    for tool in tools:
        spec: dict[str, Any] = {"name": tool.name, "description": tool.description}
        if tool.kind == "custom":
            spec["arguments"] = "a string: the tool's free-form input"
        else:
            spec["parameters"] = tool.parameters or {"type": "object"}
        lines.append(json.dumps(spec, ensure_ascii=False))
    return "\n".join(lines)


class ChatTemplate:
    def __init__(self, source: str | None, bos_text: str = "", eos_text: str = "") -> None:
        self.source = source or CHATML
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self._template = env.from_string(self.source)
        self.bos_text = bos_text
        self.eos_text = eos_text
        self.knows_tools = "tools" in self.source

    def render(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> str:
        return self._template.render(
            messages=messages,
            tools=tools or None,
            add_generation_prompt=True,
            bos_token=self.bos_text,
            eos_token=self.eos_text,
        )


class PromptRenderer:
    """Items and a turn's parameters -> the prompt text the model continues."""

    def __init__(self, template: ChatTemplate) -> None:
        self.template = template

    def render(self, items: Sequence[Item], params: GenerationParams) -> str:
        native = self.template.knows_tools
        # Tools an `additional_tools` item adds later are described at that item, not here: the
        # prompt before it keeps its tokens (and its KV).
        up_front = params.preamble_tools
        system = [params.instructions] if params.instructions else []
        if up_front and not native:
            system.append(tool_prompt(up_front))
        messages: list[Message] = [{"role": "system", "content": "\n\n".join(system)}] if system else []
        if native:
            _template_messages(messages, items)
        else:
            for item in items:
                self._inline(messages, item)
        tools = chat_tools(up_front) if native and up_front else None
        return self.template.render(messages, tools)

    @staticmethod
    def _common(messages: list[Message], item: Item) -> bool:
        if item.get("type") != "message":
            return False
        role = "system" if item.get("role") == "developer" else str(item.get("role"))
        messages.append({"role": role, "content": item_text(item)})
        return True

    def _inline(self, messages: list[Message], item: Item) -> None:
        """Calls inside the assistant's text, results as user messages (templates without tools)."""
        kind = item.get("type")
        if self._common(messages, item):
            return
        if kind in ("function_call", "custom_tool_call"):
            block = call_block(str(item.get("name")), _call_arguments(item))
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                joiner = "\n" if last["content"].endswith(CALL_CLOSE) else ""
                last["content"] += joiner + block
            else:
                messages.append({"role": "assistant", "content": block})
        elif kind == "additional_tools":
            messages.append({"role": "system", "content": tool_prompt(item_tools(item))})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            result = f"<tool_response>\n{item_text(item)}\n</tool_response>"
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "user" and last["content"].endswith("</tool_response>"):
                last["content"] += "\n" + result
            else:
                messages.append({"role": "user", "content": result})


def _template_messages(messages: list[Message], items: Sequence[Item]) -> None:
    """Templates that know tools take the chat-completions form (the upstream backend's own mapping),
    with plain-text content and call arguments as objects, which is what such templates iterate."""
    start = len(messages)
    render_items(messages, items)
    for message in messages[start:]:
        content = message.get("content")
        if isinstance(content, list):
            message["content"] = "".join(p.get("text", "[image]") for p in content)
        elif content is None:
            message["content"] = ""
        for call in message.get("tool_calls") or []:
            try:
                call["function"] = {**call["function"], "arguments": json.loads(call["function"]["arguments"])}
            except ValueError:
                pass


def _call_arguments(item: Item) -> str:
    if item.get("type") == "custom_tool_call":
        return json.dumps(str(item.get("input", "")), ensure_ascii=False)
    return str(item.get("arguments") or "{}")
