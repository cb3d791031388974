"""A fast mock LLM provider for tests, benchmarks and the demo config.

It speaks OpenAI Chat Completions, Anthropic Messages and Gemini generateContent on a raw asyncio
server, answers scripted replies in order (``POST /_mock/script``) and otherwise replies on its own,
including a tool round trip: a user message containing ``MOCK_TOOL:<name>:<json args>`` gets that tool
call back, and the tool's result gets ``Tool result received: ...``. ``GET /_mock/requests`` shows what
a proxy sent upstream.
"""

from ccr_fast.mock.server import MockProvider, run_in_thread

__all__ = ["MockProvider", "run_in_thread"]
