"""A fast mock LLM provider for tests, benchmarks and the demo config.

It speaks OpenAI Chat Completions (``POST /v1/chat/completions``), OpenAI Responses (``POST /v1/responses``,
which also refuses requests OpenAI would refuse, see ``responses_api``), Anthropic Messages
(``POST /v1/messages``, ``/v1/messages/count_tokens``) and Gemini
(``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``) on a raw asyncio server, plus
``GET /health``.

Google's other routes, Gemini's ``:countTokens`` and Vertex AI's Gemini and Claude endpoints with the OAuth
token endpoint their bearer tokens come from (``POST /token``, driven through ``MockProvider.oauth``), are
described in ``ccr_fast.mock.vertex``.

Control API, for tests that must see exactly what a proxy sent upstream:
``POST /_mock/script`` ``{"replies": [...]}`` queues replies (one per provider request, in order),
``POST /_mock/reset`` forgets script, log and counters, ``GET /_mock/requests`` lists the last requests
(method, path, query, headers, parsed JSON body) and ``GET /_mock/stats`` counts requests per path.

A reply spec (JSON, every field optional; also the CLI's defaults)::

    {"text": "...", "thinking": "...",
     "tool_calls": [{"id": "...", "name": "...", "arguments": {...} or "raw string"}],
     "chunks": 10, "ttft_ms": 0, "chunk_delay_ms": 0, "latency_ms": 0,
     "usage": {"prompt_tokens": n, "completion_tokens": n, "cached_tokens": n},
     "finish_reason": "stop" | "length" | ...,
     "error": {"status": 429, "message": "...", "retry_after": 1, "type": "..."},
     "fail_after_chunks": n, "midstream_error": {"message": "...", "type": "..."},
     "quirks": {"reasoning_field": "reasoning_content" | "reasoning", "usage_on_finish_chunk": true,
                "usage_every_chunk": true, "groq_usage": true, "no_finish_reason": true,
                "finish_stop_with_tools": true, "tool_index_zero": true, "no_tool_index": true,
                "interleave_tool_args": true, "args_fragments": n, "no_done": true, "crlf": true}}

Fields a scripted reply leaves out come from the defaults; text, thinking and tool_calls count as one
field, so a reply naming any of them replaces all three. Quirks are OpenAI's, except ``crlf`` and
``args_fragments``, which Anthropic streams honour too.

Unscripted requests are answered in auto mode, so a client like Claude Code can do a whole tool round
trip: a tool result in the newest user turn gets ``Tool result received: <first 200 chars>``, a user text
containing ``MOCK_TOOL:<name>:<json args>`` gets that tool call, anything else gets the default text.
Usage is estimated: prompt tokens = request body bytes // 4, completion tokens = words generated.
"""

from ccr_fast.mock.server import MockProvider, run_in_thread

__all__ = ["MockProvider", "run_in_thread"]
