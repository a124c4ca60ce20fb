"""One generated row's text: incremental detokenisation, stop sequences, final deltas.

Decoding a whole completion after every token costs O(n²); decoding only the new token
loses what depends on its neighbours (SentencePiece's leading space, a UTF-8 character
split over byte tokens). So each step decodes a short window: the tokens since the last
emitted piece, with the piece before it as context, and keeps the difference. The window
starts on the prompt's last tokens so the first completion token decodes in context too.

Stop sequences are matched on the text (a stop may span tokens); the text is cut before
the first one. A delta handed out is final: text that may be the start of a stop sequence
is held back until the next tokens decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Prompt tokens kept as decoding context for the first completion tokens.
CONTEXT_TOKENS = 6


class RowText:
    def __init__(self, tokenizer: Any, prompt: Sequence[int], stops: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.stops = tuple(s for s in stops if s)  # "" would match everywhere
        self._longest = max((len(s) for s in self.stops), default=0)
        self._ids = list(prompt[-CONTEXT_TOKENS:])
        self._prefix = 0  # window start (context)
        self._read = len(self._ids)  # tokens before this are already in `text`
        self.text = ""  # the completion so far, cut before a stop sequence once found
        self.stopped = False  # a stop sequence was found
        self._emitted = 0  # characters of `text` already handed out as deltas

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token: int) -> None:
        """Append a generated token (ignored once a stop sequence was found)."""
        if self.stopped:
            return
        self._ids.append(token)
        self._advance(final=False)

    def finish(self) -> None:
        """No more tokens: decode what was held back (e.g. an incomplete character)."""
        if not self.stopped:
            self._advance(final=True)

    def _advance(self, final: bool) -> None:
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        # U+FFFD at the end: a character split over tokens, wait for the rest.
        if len(after) <= len(before) or (after.endswith("\ufffd") and not final):
            return
        self._prefix, self._read = self._read, len(self._ids)
        self._append(after[len(before) :])

    def _append(self, piece: str) -> None:
        start = max(0, len(self.text) - self._longest + 1)  # a stop must end in `piece`
        self.text += piece
        found = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
        if found:
            self.text = self.text[: min(found)]
            self.stopped = True

    def _final_length(self) -> int:
        """How much of `text` no later token can change: all but a stop sequence's start."""
        if self.stopped:
            return len(self.text)
        for size in range(min(self._longest - 1, len(self.text)), 0, -1):
            tail = self.text[-size:]
            if any(s.startswith(tail) for s in self.stops):
                return len(self.text) - size
        return len(self.text)

    def delta(self, done: bool = False) -> str:
        """Text that became final since the last call (all of the rest when `done`)."""
        end = len(self.text) if done else self._final_length()
        piece = self.text[self._emitted : end]
        self._emitted = max(self._emitted, end)
        return piece
