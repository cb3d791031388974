"""Turn reasoning a model wrote inline, between tags, into a real thinking block.

Models served without a reasoning parser (``<think>`` from DeepSeek-R1 distills and Qwen3 on a plain
server, ``<reasoning_content>`` when ``forcereasoning`` asked for it) put their reasoning at the start of
the answer text.  Clients show that as part of the answer; Anthropic's format has a thinking block for it.

Only the first text block is looked at, and only when the tag opens it (after optional whitespace): a tag
later in an answer is the model talking *about* tags.  Everything up to the closing tag (or the end of the
block, if it never closes) is the thinking; whitespace after the closing tag is dropped and the rest
stays text.

In a stream the tags can be split anywhere, across deltas and network reads, so the filter holds back
only what might still be the start of a tag: up to ``len(open_tag)`` characters before deciding, and a
possible prefix of the closing tag while thinking.  Everything else is forwarded as soon as it arrives.
"""

from __future__ import annotations

from typing import Any

from ccr_fast.transformers.event_rewriter import EventRewriter, JSONDict

__all__ = ["TaggedThinking", "split_tagged_thinking"]


def split_tagged_thinking(message: dict[str, Any], open_tag: str, close_tag: str) -> None:
    """Non-stream: split a first text block that opens with ``open_tag`` into thinking + text."""
    content = message.get("content")
    if not isinstance(content, list):
        return
    for position, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text":
            continue
        text = block.get("text")
        if not isinstance(text, str) or not text.lstrip().startswith(open_tag):
            return
        thought, _, rest = text.lstrip()[len(open_tag) :].partition(close_tag)
        replacement: list[JSONDict] = [{"type": "thinking", "thinking": thought, "signature": ""}]
        rest = rest.lstrip()
        if rest:
            replacement.append({**block, "text": rest})
        content[position : position + 1] = replacement
        return


#: deciding whether the block opens with the tag; inside the thinking; after it (leading blanks are
#: dropped); no tag (everything is forwarded as it is)
_SNIFF, _THINK, _AFTER, _PLAIN = range(4)


class TaggedThinking(EventRewriter):
    """Stream filter: a first text block opening with ``open_tag`` becomes a thinking block + text block."""

    def __init__(self, open_tag: str, close_tag: str) -> None:
        super().__init__()
        self._open_tag = open_tag
        self._close_tag = close_tag
        self._watching = True  # no text block seen yet
        self._index: int | None = None  # upstream index of the text block being split
        self._state = _SNIFF
        self._held = ""  # text not forwarded yet
        self._block: JSONDict = {}  # the text block's start, reused for the text after the thinking
        self._thinking: int | None = None  # output index of the thinking block
        self._text: int | None = None  # output index of the text block after it

    def on_block_start(self, index: int, block: JSONDict) -> None:
        if self._watching and block.get("type") == "text":
            self._watching = False
            self._index = index
            self._block = block
            return
        self.forward_block(index, block)

    def on_block_delta(self, index: int, delta: JSONDict) -> None:
        if index != self._index:
            self.pass_delta(index)
            return
        text = delta.get("text")
        if delta.get("type") != "text_delta" or not isinstance(text, str):
            if self._text is not None:
                self.redirect_delta(self._text)  # citations and the like follow the text
            return
        self._take(text)

    def on_block_stop(self, index: int) -> None:
        if index != self._index:
            self.pass_stop(index)
            return
        self._index = None
        if self._state == _SNIFF:
            if self._held:
                self._say(self._held)
        elif self._state == _THINK:
            self._think(self._held)
            self._end_thinking()
        self._held = ""
        self._state = _PLAIN
        if self._text is not None:
            self.close_block(self._text)

    # --- the state machine ------------------------------------------------------------------------------

    def _take(self, text: str) -> None:
        if self._state == _SNIFF:
            self._held += text
            start = self._held.lstrip()
            if start.startswith(self._open_tag):
                self._state = _THINK
                self._thinking = self.open_block({"type": "thinking", "thinking": "", "signature": ""})
                rest, self._held = start[len(self._open_tag) :], ""
                self._take_thinking(rest)
            elif not self._open_tag.startswith(start):
                held, self._held = self._held, ""
                self._state = _PLAIN
                self._say(held)
        elif self._state == _THINK:
            self._take_thinking(text)
        else:
            self._say(text)

    def _take_thinking(self, text: str) -> None:
        pending = self._held + text
        end = pending.find(self._close_tag)
        if end < 0:
            keep = _partial_suffix(pending, self._close_tag)
            self._held = pending[len(pending) - keep :] if keep else ""
            self._think(pending[: len(pending) - keep])
            return
        self._held = ""
        self._think(pending[:end])
        self._end_thinking()
        self._state = _AFTER
        self._say(pending[end + len(self._close_tag) :])

    def _think(self, text: str) -> None:
        if text and self._thinking is not None:
            self.write(self._thinking, {"type": "thinking_delta", "thinking": text})

    def _end_thinking(self) -> None:
        if self._thinking is not None:
            self.write(self._thinking, {"type": "signature_delta", "signature": ""})
            self.close_block(self._thinking)
            self._thinking = None

    def _say(self, text: str) -> None:
        """Answer text: the text block opens on its first non-blank piece after the thinking."""
        if self._text is None:
            if self._state == _AFTER:
                text = text.lstrip()
            if not text:
                return
            self._text = self.open_block({**self._block, "text": ""})
        self.write(self._text, {"type": "text_delta", "text": text})


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a proper start of ``tag`` (0 if none)."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
