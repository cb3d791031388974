"""The whole OpenAI → Anthropic stream rewrite (SSE framing + translation): compiled against pure.

``compiled`` uses ``ccr_fast._ext.sse_framer`` and ``ccr_fast._ext.openai_fast``; ``pure`` uses their
pure-Python twins.  The stream is shaped like a real answer: a role chunk, 400 short text deltas in OpenAI's
chunk format (some with non-ASCII text), the finish chunk, a usage chunk and ``[DONE]``, cut into network
reads of 1 KB.  Target: compiled at least 3x faster than pure.
Run: ``pytest bench/micro/test_bench_openai_stream.py --benchmark-enable``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from ccr_fast import _speedups
from ccr_fast.protocol.openai_stream import Implementation, OpenAIStreamTranslator

BUILT = _speedups.compiled("openai_fast") is not None and _speedups.compiled("sse_framer") is not None
NOT_BUILT = "compiled extensions are not built (run: python setup.py build_ext --inplace)"
IMPLS = [
    pytest.param("compiled", id="compiled", marks=pytest.mark.skipif(not BUILT, reason=NOT_BUILT)),
    pytest.param("pure", id="pure"),
]
TEXT_CHUNKS = 400
READ_SIZE = 1024
WORDS = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".\n", " Ça", " 5 €"]


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-AbCdEf0123456789",
        "object": "chat.completion.chunk",
        "created": 1760000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def _reads() -> list[bytes]:
    raw = _chunk({"role": "assistant", "content": "", "refusal": None})
    raw += b"".join(_chunk({"content": WORDS[i % len(WORDS)]}) for i in range(TEXT_CHUNKS))
    raw += _chunk({}, "stop")
    usage = {"prompt_tokens": 1200, "completion_tokens": TEXT_CHUNKS, "total_tokens": 1200 + TEXT_CHUNKS}
    raw += b'data: {"id":"chatcmpl-AbCdEf0123456789","choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n"
    raw += b"data: [DONE]\n\n"
    return [raw[i : i + READ_SIZE] for i in range(0, len(raw), READ_SIZE)]


READS = _reads()


def _rewrite(implementation: Implementation) -> int:
    translator = OpenAIStreamTranslator(model="claude-sonnet-5", implementation=implementation)
    size = sum(len(translator.feed(read)) for read in READS)
    return size + len(translator.close())


@pytest.mark.parametrize("implementation", IMPLS)
def test_openai_stream_rewrite(benchmark: BenchmarkFixture, implementation: Implementation) -> None:
    benchmark.group = f"openai stream rewrite, {TEXT_CHUNKS} text chunks"
    size = benchmark(_rewrite, implementation)
    assert size > TEXT_CHUNKS * 100
