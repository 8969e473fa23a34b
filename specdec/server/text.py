"""A request's text as its tokens arrive: deltas that are safe to send, and the end cut before a stop string.

Tokens are decoded in a short window, not from the start each time (a long answer would cost a decode of all its
tokens at every step, on the event loop's thread): the new text is decode(tokens since the previous window
began) minus decode(the previous window), the difference that incremental detokenizers take, so a decoder that
treats a sequence's first token differently (dropping a leading space) treats both alike. Text is held back
while it ends in an incomplete UTF-8 character (the tokenizer shows it as U+FFFD) and while its end could be
the start of a stop string; the text from the first stop string on is never sent (the OpenAI API leaves the
stop string out).
"""

from __future__ import annotations

from collections.abc import Callable


class TextStream:
    def __init__(self, decode: Callable[[list[int]], str], stop: tuple[str, ...] = ()):
        self.decode, self.stop = decode, stop
        self.ids: list[int] = []
        self.text = ""             # the text of ids[:_read], complete characters only
        self.sent = ""             # the text sent so far
        self.stopped = False       # a stop string was seen: nothing more is sent
        self._prefix = 0           # the window: ids[_prefix:_read] decode to the end of `text`
        self._read = 0

    def add(self, ids: list[int]) -> str:
        """The text to send after these tokens (may be empty)."""
        self.ids += ids
        if self.stopped:
            return ""
        piece = self._pending()
        if piece and not piece.endswith("\ufffd"):     # an incomplete multi-byte character waits for the rest
            self.text += piece
            self._prefix, self._read = self._read, len(self.ids)
        text = self.text
        cut = self._stop_at(text)
        if cut is not None:
            self.stopped = True
            return self._advance(text[:cut])
        return self._advance(text[:len(text) - self._partial_stop(text)])

    def finish(self) -> str:
        """The rest of the text once the request has ended (an incomplete character is sent as it is)."""
        if self.stopped:
            return ""
        text = self.text + self._pending()
        cut = self._stop_at(text)
        return self._advance(text if cut is None else text[:cut])

    def _pending(self) -> str:
        """The text of the tokens after the window, decoded together with the window."""
        if self._read == len(self.ids):
            return ""
        return self.decode(self.ids[self._prefix:])[len(self.decode(self.ids[self._prefix:self._read])):]

    def _advance(self, safe: str) -> str:
        delta = safe[len(self.sent):]     # text already sent is never taken back
        self.sent += delta
        return delta

    def _stop_at(self, text: str) -> int | None:
        found = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        return min(found) if found else None

    def _partial_stop(self, text: str) -> int:
        """Length of the longest end of `text` that is the start of a stop string."""
        best = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:n]):
                    best = n
                    break
        return best
