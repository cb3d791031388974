"""Offline token counting for Anthropic request bodies, with a fragment cache.

Routing needs a token count on every request (the ``longContext`` rule), the way CCR computes it:
cl100k_base over the system text, message text, ``tool_use`` input JSON, ``tool_result`` content,
thinking text and tools (name + description, then the JSON of ``input_schema``). Each fragment is
counted on its own and the counts are summed, exactly like CCR, so thresholds tuned for CCR keep
their meaning.  ``/v1/messages/count_tokens`` counts the same fragments with the encoding of the model
that will answer (``counter_for``): one counter, with its own cache, per bundled encoding in use.

Claude Code bodies are 60-115 KB and every turn resends the previous one plus a little more, so
tokenizing the whole body each time (CCR's cost) is wasted work. Fragments of at least
``min_cached_chars`` characters are looked up in a bounded LRU keyed by the xxh3_64 hash of their
UTF-8 bytes; only fragments not seen before are tokenized. Shorter fragments are cheaper to
tokenize than to hash and look up, so they are always tokenized.

Images have no text to count. Anthropic resizes images to at most ~1.15 megapixels and bills
``width * height / 750`` tokens, so one image costs at most about 1600 tokens: every image block
counts as ``IMAGE_TOKENS``, the upper end, which errs towards the long-context model.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sized
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import tiktoken
import xxhash

from ccr_fast.tokens import encodings, tokenizer_file
from ccr_fast.tokens.encodings import CCR_ENCODING

#: Tokens counted for each image block (the upper bound of Anthropic's image cost).
IMAGE_TOKENS = 1600
#: Fragments at least this long go through the cache; shorter ones are tokenized directly.
CACHE_MIN_CHARS = 256
#: ``count_tokens_async`` tokenizes on the event loop when fewer uncached characters than this remain
#: (about a millisecond of work, cheaper than a hop to a worker thread).
ASYNC_INLINE_CHARS = 16_384
#: Number of fragment counts kept per encoding (an entry is two ints, so this stays small in memory).
CACHE_SIZE = 16_384


def encoding() -> tiktoken.Encoding:
    """The cl100k_base encoding, built once from the bundled ranks file (never downloaded).

    Loading takes a few hundred milliseconds, so it happens on first use (``count_async`` does it on a
    worker thread).
    """
    return encodings.get(CCR_ENCODING)


_shared_executor: Executor | None = None
_executor_lock = threading.Lock()


def _shared_pool() -> Executor:
    """A small pool shared by every counter, so token counting never queues behind DNS or file work."""
    global _shared_executor
    if _shared_executor is None:
        with _executor_lock:
            if _shared_executor is None:
                _shared_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ccr-fast-tokens")
    return _shared_executor


def _json_text(value: Any) -> str:
    """Compact JSON like JavaScript's ``JSON.stringify`` (CCR's serialization of inputs and schemas)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # Not JSON-serializable (e.g. an integer beyond 64 bits): its repr is still a fair size estimate.
        return repr(value)


def _fragments(body: Mapping[str, Any]) -> tuple[list[str], int]:
    """The texts CCR counts in ``body``, and the number of image blocks."""
    texts: list[str] = []
    images = 0

    system = body.get("system")
    if isinstance(system, str):
        texts.append(system)
    elif isinstance(system, list):
        for block in system:
            if isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text")
                if isinstance(text, str):
                    texts.append(text)

    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                images += _content_fragments(content, texts)

    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if not isinstance(tool, dict):
                continue
            name = tool.get("name")
            description = tool.get("description")
            head = (name if isinstance(name, str) else "") + (
                description if isinstance(description, str) else ""
            )
            if head:
                texts.append(head)
            schema = tool.get("input_schema")
            if schema is not None:
                texts.append(_json_text(schema))
    return texts, images


def _content_fragments(blocks: list[Any], texts: list[str]) -> int:
    """Append the countable texts of a message's content blocks; return the number of images."""
    images = 0
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str):
                texts.append(text)
        elif kind in ("tool_use", "server_tool_use"):
            if "input" in block:
                texts.append(_json_text(block["input"]))
        elif kind == "tool_result":
            result = block.get("content")
            if isinstance(result, str):
                texts.append(result)
            elif isinstance(result, list):
                images += _content_fragments(result, texts)
        elif kind == "thinking":
            thinking = block.get("thinking")
            if isinstance(thinking, str):
                texts.append(thinking)
        elif kind == "image":
            images += 1
    return images


@dataclass(slots=True)
class _Plan:
    """What is left to tokenize for one body after the cache has answered what it could."""

    known: int = 0
    small: list[str] = field(default_factory=list)
    #: cache key -> (fragment, occurrences in this body)
    misses: dict[int, tuple[str, int]] = field(default_factory=dict)
    uncached_chars: int = 0


def _key(text: str) -> int:
    # surrogatepass: JSON may carry lone surrogates, which strict UTF-8 refuses to encode.
    return xxhash.xxh3_64_intdigest(text.encode("utf-8", "surrogatepass"))


class TokenCounter:
    """Counts tokens of request bodies, remembering the counts of large fragments.

    Safe to share between the event loop and worker threads: the cache is guarded by a lock held
    only for dictionary operations, never while tokenizing. ``count_async`` also shares in-flight
    work, so concurrent requests carrying the same new fragment (Claude Code's ``/context`` sends a
    dozen ``count_tokens`` calls with the same tools at once) tokenize it only once.
    """

    def __init__(
        self,
        encode: Callable[[str], Sized] | None = None,
        *,
        load: Callable[[], object] | None = None,
        cache_size: int = CACHE_SIZE,
        min_cached_chars: int = CACHE_MIN_CHARS,
        inline_chars: int = ASYNC_INLINE_CHARS,
        executor: Executor | None = None,
    ) -> None:
        """``encode`` defaults to cl100k_base.  ``load`` builds what ``encode`` needs; ``count_async``
        calls it on a worker thread before its first count, so loading never stalls the event loop."""
        if encode is None:
            encode = encodings.encoder(CCR_ENCODING)
            load = load or encoding
        self._encode: Callable[[str], Sized] = encode
        self._load = load
        self._cache_size = cache_size
        self._min_cached_chars = min_cached_chars
        self._inline_chars = inline_chars
        self._executor = executor
        self._cache: OrderedDict[int, int] = OrderedDict()
        self._inflight: dict[int, Future[int]] = {}
        self._lock = threading.Lock()

    def text(self, text: str) -> int:
        """Tokens in one string (cached when it is large)."""
        if len(text) < self._min_cached_chars:
            return len(self._encode(text))
        key = _key(text)
        cached = self._lookup(key)
        if cached is not None:
            return cached
        count = len(self._encode(text))
        self._store(key, count)
        return count

    def count(self, body: Mapping[str, Any]) -> int:
        """Tokens in a request body, tokenizing on the calling thread."""
        return self._finish(self._plan(body))

    async def count_async(self, body: Mapping[str, Any]) -> int:
        """Tokens in a request body without stalling the event loop.

        Cache lookups happen on the loop; when much uncached text remains, it is tokenized on a
        worker thread (tiktoken releases the GIL, so this also uses a second core).
        """
        if self._load is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool(), self._load)
            self._load = None
        plan = self._plan(body)
        if plan.uncached_chars < self._inline_chars:
            return self._finish(plan)
        owned: dict[int, tuple[str, Future[int]]] = {}
        waits: list[tuple[Future[int], int]] = []
        with self._lock:
            for key, (text, times) in plan.misses.items():
                # A worker stores a count before it drops the in-flight entry, so checking the
                # cache again here (under the same lock) never misses work finished meanwhile.
                cached = self._cache.get(key)
                if cached is not None:
                    plan.known += cached * times
                    continue
                pending = self._inflight.get(key)
                if pending is None:
                    pending = Future()
                    self._inflight[key] = pending
                    owned[key] = (text, pending)
                waits.append((pending, times))
        loop = asyncio.get_running_loop()
        total = plan.known + await loop.run_in_executor(self._pool(), self._count_owned, plan.small, owned)
        for pending, times in waits:
            total += times * await asyncio.wrap_future(pending)
        return total

    def _plan(self, body: Mapping[str, Any]) -> _Plan:
        texts, images = _fragments(body)
        plan = _Plan(known=images * IMAGE_TOKENS)
        for text in texts:
            if len(text) < self._min_cached_chars:
                plan.small.append(text)
                plan.uncached_chars += len(text)
                continue
            key = _key(text)
            seen = plan.misses.get(key)
            if seen is not None:
                plan.misses[key] = (text, seen[1] + 1)
                continue
            cached = self._lookup(key)
            if cached is None:
                plan.misses[key] = (text, 1)
                plan.uncached_chars += len(text)
            else:
                plan.known += cached
        return plan

    def _finish(self, plan: _Plan) -> int:
        """Tokenize what the cache did not know, on the calling thread."""
        total = plan.known + sum(len(self._encode(text)) for text in plan.small)
        for key, (text, times) in plan.misses.items():
            count = len(self._encode(text))
            self._store(key, count)
            total += count * times
        return total

    def _count_owned(self, small: list[str], owned: dict[int, tuple[str, Future[int]]]) -> int:
        """Worker-thread side of ``count_async``: resolve every owned future, even on failure."""
        try:
            for key, (text, pending) in owned.items():
                count = len(self._encode(text))
                self._store(key, count)
                pending.set_result(count)
            return sum(len(self._encode(text)) for text in small)
        except BaseException as exc:
            for _text, pending in owned.values():
                if not pending.done():
                    pending.set_exception(exc)
            raise
        finally:
            with self._lock:
                for key, (_text, pending) in owned.items():
                    if self._inflight.get(key) is pending:
                        del self._inflight[key]

    def _lookup(self, key: int) -> int | None:
        with self._lock:
            count = self._cache.get(key)
            if count is not None:
                self._cache.move_to_end(key)
            return count

    def _store(self, key: int, count: int) -> None:
        with self._lock:
            self._cache[key] = count
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _pool(self) -> Executor:
        return self._executor or _shared_pool()


_counters: dict[str, TokenCounter] = {}
_counters_lock = threading.Lock()


def counter_for(name: str) -> TokenCounter:
    """The process-wide counter of bundled encoding ``name`` (``KeyError`` if it is not bundled).

    Creating it costs nothing; the encoding is loaded by its first count.
    """
    counter = _counters.get(name)
    if counter is None:
        encode = encodings.encoder(name)  # KeyError before anything is stored
        with _counters_lock:
            counter = _counters.get(name)
            if counter is None:
                counter = TokenCounter(encode, load=lambda: encodings.get(name))
                _counters[name] = counter
    return counter


def file_counter(path: Path) -> TokenCounter:
    """The process-wide counter of a Hugging Face ``tokenizer.json`` (see ``tokenizer_file``)."""
    key = f"file:{path}"
    counter = _counters.get(key)
    if counter is None:
        with _counters_lock:
            counter = _counters.get(key)
            if counter is None:
                counter = TokenCounter(tokenizer_file.encoder(path), load=tokenizer_file.loader(path))
                _counters[key] = counter
    return counter


_default_counter = counter_for(CCR_ENCODING)


def default_counter() -> TokenCounter:
    """The process-wide cl100k counter (one cache shared by routing and ``/v1/messages/count_tokens``)."""
    return _default_counter


def text_tokens(text: str) -> int:
    """cl100k tokens in ``text``, special-token text counted as ordinary text."""
    return _default_counter.text(text)


def count_tokens(body: Mapping[str, Any]) -> int:
    """CCR's token count of an Anthropic Messages body (see the module docstring)."""
    return _default_counter.count(body)


async def count_tokens_async(body: Mapping[str, Any]) -> int:
    """``count_tokens`` that moves large uncached work off the event loop."""
    return await _default_counter.count_async(body)
