"""Reading a batch's results body as a stream: one ``results`` item at a time.

``GET /v1/batches/{id}/results`` answers with one JSON object holding every request's outcome
(no paging): for a 100,000-request batch, a few hundred MB. Building it as one Python object
would take gigabytes, so the body is decoded incrementally: the top-level object's keys are
walked by hand, each ``results`` item is decoded on its own by the stdlib's C scanner
(``JSONDecoder.raw_decode``), and only the unread tail of the body is kept. Memory stays
flat whatever the body's size.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

_WS = " \t\n\r"
_DECODER = json.JSONDecoder()
# Read this much more before trying again when a value does not fit the buffer; doubled for
# a value that stays incomplete, so one huge item costs O(n), not O(n^2).
_MIN_READ = 1 << 16
# A broken item can look like an incomplete one (an unterminated string): reading on for it is
# bounded here, which bounds memory too.
MAX_ITEM_CHARS = 64 << 20


class BodyError(ValueError):
    """The body is not the results object it should be (or ends early); ``str`` says where."""


@dataclass
class ResultsBody:
    """What a results body held besides its items (filled as the stream is read)."""

    batch_id: str | None = None
    has_more: bool = False
    extra_fields: dict[str, Any] = field(default_factory=dict)
    items: int = 0
    complete: bool = False  # the closing brace was read


class _Buffer:
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self.text = ""
        self.pos = 0
        self.eof = False
        self.consumed = 0  # characters dropped from the front (for positions in errors)

    def more(self, at_least: int = _MIN_READ) -> bool:
        """Append at least ``at_least`` characters (or what is left); False at the end."""
        if self.eof:
            return False
        if self.pos > len(self.text) // 2:  # drop what has been read
            self.consumed += self.pos
            self.text = self.text[self.pos:]
            self.pos = 0
        got = 0
        parts = [self.text]
        while got < at_least:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                try:
                    tail = self._utf8.decode(b"", final=True)
                except UnicodeDecodeError as e:
                    raise BodyError(f"the body is not UTF-8 ({e.reason})") from None
                parts.append(tail)
                self.eof = True
                break
            try:
                piece = self._utf8.decode(chunk)
            except UnicodeDecodeError as e:
                raise BodyError(f"the body is not UTF-8 ({e.reason})") from None
            parts.append(piece)
            got += len(piece)
        self.text = "".join(parts)
        return True

    def skip_ws(self) -> None:
        while True:
            text, n = self.text, len(self.text)
            p = self.pos
            while p < n and text[p] in _WS:
                p += 1
            self.pos = p
            if p < n or not self.more():
                return

    def peek(self) -> str:
        self.skip_ws()
        if self.pos >= len(self.text):
            raise BodyError(f"the body ends early (after {self.consumed + self.pos} characters)")
        return self.text[self.pos]

    def expect(self, ch: str) -> None:
        got = self.peek()
        if got != ch:
            raise BodyError(f"expected {ch!r} at character {self.consumed + self.pos}, "
                            f"found {got!r}")
        self.pos += 1

    def value(self) -> Any:
        """Decode one JSON value at the cursor, reading more until it is complete."""
        self.peek()
        want = _MIN_READ
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as e:
                # Incomplete (the buffer ends inside it) or broken: read on, unless at the end.
                if e.pos < len(self.text) - 1 and not _incomplete(e):
                    raise BodyError(f"{e.msg} at character {self.consumed + e.pos}") from None
                if len(self.text) - self.pos > MAX_ITEM_CHARS:
                    raise BodyError(f"{e.msg} at character {self.consumed + e.pos} (or an item "
                                    f"larger than {MAX_ITEM_CHARS >> 20} MB)") from None
                if not self.more(want):
                    where = self.consumed + e.pos
                    if e.pos >= len(self.text) - 1:
                        raise BodyError(f"the body ends inside a value (after "
                                        f"{self.consumed + len(self.text)} characters)") from None
                    raise BodyError(f"{e.msg} at character {where}") from None
                want *= 2
                continue
            if end == len(self.text) and isinstance(obj, int | float) \
                    and not isinstance(obj, bool):
                # A number at the very end of the buffer may go on in the next chunk; at the
                # end of the body it was cut short (a results object never ends in a number).
                if not self.more(want):
                    raise BodyError(f"the body ends inside a value (after "
                                    f"{self.consumed + len(self.text)} characters)")
                continue
            self.pos = end
            return obj


    def item(self) -> Any:
        """Decode one results item at the cursor.

        Bifrost (Go's encoder) writes items compactly, custom_id first, so an item ends where
        ``},{"custom_id":`` begins. That marker can only stand outside strings (a string
        cannot hold an unescaped quote), so its ``}`` closes the item or an object inside it;
        in the second case the slice is unbalanced and orjson refuses it. The slice is thus
        decoded by orjson (~3x faster than the stdlib scanner) when it parses, and by
        ``value()`` otherwise: the last item of the buffer, other layouts, broken items."""
        self.peek()
        text, pos = self.text, self.pos
        if text[pos] == "{":
            end = text.find(_NEXT_ITEM, pos)
            # orjson reads integers past 64 bits as floats: long numbers take the exact path
            if end > 0 and not _LONG_DIGITS.search(text, pos, end):
                try:
                    obj = orjson.loads(text[pos:end + 1])
                except orjson.JSONDecodeError:
                    pass
                else:
                    self.pos = end + 1
                    return obj
        return self.value()


_NEXT_ITEM = '},{"custom_id":'
_LONG_DIGITS = re.compile(r"\d{19}")  # past int64 (below -2**63) needs 19 digits


def _incomplete(e: json.JSONDecodeError) -> bool:
    # The messages raw_decode gives when the text stops inside a value.
    return e.msg.startswith(("Unterminated string", "Expecting value", "Expecting ',' delimiter",
                             "Expecting property name", "Expecting ':' delimiter",
                             "Invalid control character", "Invalid \\escape"))


def iter_results(chunks: Iterable[bytes], body: ResultsBody) -> Iterator[Any]:
    """Yield each item of the body's ``results`` array, in order; the other top-level fields
    land in ``body``. Raises ``BodyError`` when the body is not a results object or ends
    before its closing brace (after yielding the items that came before)."""
    buf = _Buffer(chunks)
    buf.expect("{")
    if buf.peek() == "}":
        buf.pos += 1
        body.complete = True
        return
    while True:
        key = buf.value()
        if not isinstance(key, str):
            raise BodyError("a key of the results object is not a string")
        buf.expect(":")
        if key == "results" and buf.peek() == "[":
            buf.pos += 1
            if buf.peek() == "]":
                buf.pos += 1
            else:
                while True:
                    item = buf.item()
                    body.items += 1
                    yield item
                    sep = buf.peek()
                    buf.pos += 1
                    if sep == "]":
                        break
                    if sep != ",":
                        raise BodyError(f"expected ',' or ']' after results item {body.items}, "
                                        f"found {sep!r}")
        else:
            value = buf.value()
            if key == "batch_id" and isinstance(value, str):
                body.batch_id = value
            elif key == "has_more":
                body.has_more = value is True
            elif key == "extra_fields" and isinstance(value, dict):
                body.extra_fields = value
            elif key == "results" and value is not None:
                raise BodyError("results is not an array")
        sep = buf.peek()
        buf.pos += 1
        if sep == "}":
            body.complete = True
            return
        if sep != ",":
            raise BodyError(f"expected ',' or '}}' after {key!r}, found {sep!r}")
