"""The embedded engine's parts: the tool-call scanner, grammars, the KV store, and cancellation in process."""

from __future__ import annotations

import ctypes
import json

import pytest

pytest.importorskip("llama_cpp")

from tether.api.items import normalize_input
from tether.api.tools import OfferedTool
from tether.backends.base import Finished, GenerationParams, TextDelta, ToolCallDelta
from tether.backends.llamacpp.chat_format import ChatTemplate, PromptRenderer
from tether.backends.llamacpp.grammar import tool_call_grammar
from tether.backends.llamacpp.kv_store import KVStore, ParkedState, common_prefix
from tether.backends.llamacpp.tool_calls import ToolCallScanner, call_block

from .llamacpp_support import needs_model

pytestmark = pytest.mark.llamacpp


def _feed(scanner: ToolCallScanner, text: str, step: int = 3) -> list[object]:
    out: list[object] = []
    for i in range(0, len(text), step):
        out += scanner.feed(text[i : i + step])
    return out + scanner.finish()


def test_scanner_passes_text_and_parses_calls() -> None:
    scanner = ToolCallScanner({"get_weather": "function"})
    text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    deltas = _feed(scanner, text)
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "Let me check.\n"
    [call] = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.arguments == '{"city": "Paris"}'  # as written, so the next turn's render matches the KV
    assert call.call_id and call.index == 0
    assert call_block("get_weather", call.arguments) == text[len("Let me check.\n"):]


def test_scanner_without_tools_and_with_a_broken_block() -> None:
    plain = _feed(ToolCallScanner({}), "<tool_call>x")
    assert all(isinstance(d, TextDelta) for d in plain) and "".join(d.text for d in plain) == "<tool_call>x"
    deltas = _feed(ToolCallScanner({"f": "function"}), "a <tool_call> not json </tool_call>")
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "a <tool_call> not json </tool_call>"


def test_tool_call_grammar_names_only_allowed_tools() -> None:
    tools = (OfferedTool("a", "function", "", {"type": "object", "properties": {"x": {"type": "integer"}}}, False),
             OfferedTool("b", "custom", "", None, False))
    grammar = tool_call_grammar(tools)
    assert grammar is not None and '\\"a\\"' in grammar and '\\"b\\"' in grammar
    only = tool_call_grammar(tools, "b")
    assert only is not None and '\\"a\\"' not in only
    assert tool_call_grammar(tools, "missing") is None


def _state(tokens: tuple[int, ...], size: int) -> ParkedState:
    return ParkedState(tokens, (ctypes.c_uint8 * size)())


def test_kv_store_longest_prefix_lru_and_domination() -> None:
    assert common_prefix([1, 2, 3] * 200, [1, 2, 3] * 100 + [9]) == 300
    store = KVStore(budget_bytes=100)
    store.put(_state((1, 2, 3), 40))
    store.put(_state((1, 2, 3, 4, 5), 40))  # extends the first: replaces it
    assert len(store) == 1 and store.total_bytes == 40
    store.put(_state((7, 8), 40))
    key, shared = store.best([1, 2, 3, 4, 9])
    assert key is not None and shared == 4
    store.get(key)  # used: now the most recent
    store.put(_state((5, 5), 40))  # over budget: the least recently used, (7, 8), goes
    assert store.best([7, 8])[1] == 0 and store.best([1, 2])[1] == 2 and store.evictions == 1
    store.put(_state((6,), 500))  # larger than the budget: not kept
    assert store.best([6])[1] == 0
    assert store.discard_exact([5, 5]) and store.best([5, 5])[1] == 0


async def test_abandoned_turn_stops_the_engine() -> None:
    needs_model()
    from tether.backends.llamacpp import make_llamacpp_backend
    from tether.backends.settings import LlamaCppSettings

    backend = make_llamacpp_backend(LlamaCppSettings(ctx=2048, threads=2, kv_budget_mb=16))
    await backend.start()
    try:
        params = GenerationParams(model="m", temperature=0.0, max_output_tokens=1000)
        session = backend.new_session()
        stream = session.generate(normalize_input("Count from 1 to 300."), params)
        async for delta in stream:
            assert isinstance(delta, TextDelta)
            break
        await stream.aclose()
        assert session.broken
        again = backend.new_session()
        deltas = [d async for d in again.generate(normalize_input("Hi."), GenerationParams(
            model="m", temperature=0.0, max_output_tokens=8))]
        assert isinstance(deltas[-1], Finished)
        stats = backend.stats()
        assert stats["cancelled"] == 1 and stats["generated_tokens"] < 100
    finally:
        await backend.aclose()


TOOL_TEMPLATE = (
    "{% for t in tools or [] %}[tool {{ t.function.name }}]{% endfor %}"
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}"
    "{% for c in m.tool_calls or [] %}[call {{ c.function.name }} city={{ c.function.arguments.city }}]{% endfor %}"
    "{% if m.tool_call_id %}[for {{ m.tool_call_id }}]{% endif %}</{{ m.role }}>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def test_tool_aware_template_gets_calls_results_and_tools() -> None:
    renderer = PromptRenderer(ChatTemplate(TOOL_TEMPLATE))
    weather = OfferedTool("get_weather", "function", "", {"type": "object"}, False)
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"},
                                                        {"type": "input_image", "image_url": "data:x"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "rain"},
    ]
    text = renderer.render(items, GenerationParams(model="m", instructions="Hi.", tools=(weather,)))
    assert text == (
        "[tool get_weather]<system>Hi.</system><system>Be brief.</system><user>Weather?[image]</user>"
        "<assistant>[call get_weather city=Oslo]</assistant><tool>rain[for call_1]</tool><assistant>"
    )


def _run_governor(governor: object, steps: int, seconds: dict[int, float], size: int = 4) -> list[int]:
    """Steps of `size` tokens where a step with t threads takes `seconds[t]`; the thread counts used."""
    from tether.backends.llamacpp.threads import ThreadGovernor

    assert isinstance(governor, ThreadGovernor)
    used = []
    for _ in range(steps):
        threads = governor.threads_for(size)
        governor.record(threads, size, seconds[threads])
        used.append(threads)
    return used


def test_thread_governor_keeps_all_cores_while_they_are_fastest() -> None:
    from tether.backends.llamacpp.threads import PROBE_MAX, ThreadGovernor

    governor = ThreadGovernor(2)
    used = _run_governor(governor, 3000, {2: 0.010, 1: 0.018})
    assert governor.current == 2 and governor.switches == 0
    assert used.count(1) == governor.probes <= 9  # probes back off: a handful in 3,000 steps
    assert used[-PROBE_MAX // 2 :].count(1) <= 1


def test_thread_governor_drops_a_thread_when_a_core_is_taken_and_comes_back() -> None:
    from tether.backends.llamacpp.threads import PROBE_MAX, ThreadGovernor

    governor = ThreadGovernor(2)
    _run_governor(governor, 200, {2: 0.010, 1: 0.018})
    used = _run_governor(governor, 50, {2: 0.500, 1: 0.020})  # another process takes a core
    assert governor.current == 1 and used[:3].count(2) <= 2  # at most a couple of collapsed steps
    assert used[3:].count(2) <= 2
    used = _run_governor(governor, PROBE_MAX + 64, {2: 0.010, 1: 0.018})  # the neighbour is gone: found again
    assert governor.current == 2 and used[-32:] == [2] * 32


def test_explicit_threads_are_used_as_given() -> None:
    from tether.backends.llamacpp.threads import ThreadGovernor

    governor = ThreadGovernor(2, adaptive=False)
    assert set(_run_governor(governor, 100, {2: 0.5, 1: 0.01})) == {2} and governor.probes == 0
    single = ThreadGovernor(1)
    assert set(_run_governor(single, 10, {1: 0.01})) == {1}


def test_slot_table_prefers_empty_then_released_then_least_recently_used() -> None:
    from tether.backends.llamacpp.slots import SlotTable

    table = SlotTable(4)
    a, b, c, d = table.slots
    for slot, tokens in ((a, [1, 2, 3]), (b, [1, 2, 9]), (c, [5, 6])):
        slot.tokens = tokens
        table.touch(slot)
    assert table.victim() is d  # an empty slot first
    d.tokens = [7]
    table.touch(d)
    assert table.victim() is a  # then the least recently used
    assert table.release([5, 6, 4])  # c holds all but the unevaluated last token of a released conversation
    assert table.victim() is c and table.victim(keep=c) is a
    c.turn = object()  # busy slots are never given up
    assert table.victim(keep=a) is b
    assert table.best([1, 2, 9, 9]) == (b, 3) and table.best([8]) == (None, 0)
    assert table.busy == 1 and table.resident_tokens == 9


def test_greedy_grammar_shortcut_picks_what_the_full_grammar_pass_picks() -> None:
    """Greedy under a grammar checks the best few tokens first; it must give the tokens of the plain
    chain (grammar over the whole vocabulary, then greedy), for a JSON schema and for a tool call."""
    needs_model()
    import llama_cpp

    from tether.backends.llamacpp.batch import DecodeBatch
    from tether.backends.llamacpp.grammar import json_grammar
    from tether.backends.llamacpp.jobs import Sampling
    from tether.backends.llamacpp.loader import ContextShape, load_model
    from tether.backends.llamacpp.model_file import default_model_path
    from tether.backends.llamacpp.sampler import TurnSampler, _grammar_sampler

    model = load_model(default_model_path(), ContextShape(1, 1024, 2))
    batch = DecodeBatch(512)
    weather = OfferedTool("get_weather", "function", "", {
        "type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"]}, False)
    cases = [(json_grammar({"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]}),
              "Name a color as JSON."), (tool_call_grammar((weather,)), "What is the weather in Paris?")]

    class Chain:  # the reference: llama.cpp's grammar sampler over every token, then greedy
        def __init__(self, grammar: str) -> None:
            self.chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
            llama_cpp.llama_sampler_chain_add(self.chain, _grammar_sampler(model.vocab, grammar))
            llama_cpp.llama_sampler_chain_add(self.chain, llama_cpp.llama_sampler_init_greedy())

        def sample(self, ctx: object, index: int) -> int:
            return int(llama_cpp.llama_sampler_sample(self.chain, ctx, index))

        def close(self) -> None:
            llama_cpp.llama_sampler_free(self.chain)

    def generate(sampler: object, prompt: list[int]) -> list[int]:
        llama_cpp.llama_memory_seq_rm(model.context.memory, 0, -1, -1)
        batch.clear()
        index, position, out = batch.add(prompt, 0, 0, True), len(prompt), []
        batch.decode(model.ctx)
        for _ in range(48):
            token = sampler.sample(model.ctx, index)  # type: ignore[attr-defined]
            if llama_cpp.llama_vocab_is_eog(model.vocab, token):
                break
            out.append(token)
            batch.clear()
            index = batch.add([token], position, 0, True)
            position += 1
            batch.decode(model.ctx)
        sampler.close()  # type: ignore[attr-defined]
        return out

    try:
        for grammar, question in cases:
            assert grammar is not None
            text = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n".encode()
            prompt = model.tokenize(text, add_bos=model.add_bos)
            fast = generate(TurnSampler(model.vocab, Sampling(0.0, 1.0, 48, grammar)), prompt)
            assert fast and fast == generate(Chain(grammar), prompt)
    finally:
        batch.close()
        model.close()
