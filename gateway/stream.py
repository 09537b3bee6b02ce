"""Reading a batch's results body as a stream: one ``results`` item at a time.

``GET /v1/batches/{id}/results`` answers with one JSON object holding every request's outcome
(no paging): for a 100,000-request batch, a few hundred MB. Building it as one Python object
would take gigabytes, so the body is decoded incrementally: the top-level object's keys are
walked by hand, each ``results`` item is decoded on its own, and only the unread tail of the
body is kept (as bytes: nothing is decoded twice). Memory stays flat whatever the body's size.

An item is decoded by orjson from the bytes between its ``{`` and its closing ``}``, found
without scanning the item (see ``_Buffer.item``); anything else (keys, other values, an item
whose end cannot be found that way, a broken item) by the stdlib's scanner, on a window that
grows until the value fits. Whatever the body's escaping (``\\uXXXX`` for any character,
surrogate pairs, Go's ``\\u003c``, ``\\/``) and wherever the transport cuts it, the items are
those ``json.loads`` gives for the whole body (tests/test_stream_escapes.py). Measured on the
200,000-line bench body (docs/costs.md): ~2x the speed of ijson's C backend, as light.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

_WS = b" \t\n\r"
_DECODER = json.JSONDecoder()
# Bytes read at a time, and the first window the stdlib scanner gets; a value that does not
# fit is tried again on a window twice as big, so one huge value costs O(n), not O(n^2).
_MIN_READ = 1 << 16
# A broken item can look like an incomplete one (an unterminated string): reading on for it is
# bounded here, which bounds memory too.
MAX_ITEM_CHARS = 64 << 20
# How far before the end of the text the stdlib scanner can point when the text stops inside
# a value: an escape cut short (``\ud83d\ude0``: the error points at the second backslash, 5
# characters before the end; a surrogate pair is 12 characters), a literal cut short
# (``-Infinit``: 8), a number cut short (``1e-``: 3); every other cut is reported at the end
# itself. A margin, not a count: reading on for an error that was real costs one retry.
_CUT_MARGIN = 16


class BodyError(ValueError):
    """The body is not the results object it should be (or ends early); ``str`` says where.
    ``cut``: it ended before its closing brace (a transfer cut short, worth a retry)."""

    def __init__(self, message: str, *, cut: bool = False) -> None:
        super().__init__(message)
        self.cut = cut


@dataclass
class ResultsBody:
    """What a results body held besides its items (filled as the stream is read)."""

    batch_id: str | None = None
    has_more: bool = False
    extra_fields: dict[str, Any] = field(default_factory=dict)
    items: int = 0
    complete: bool = False  # the closing brace was read


def _may_be_cut(e: json.JSONDecodeError, length: int) -> bool:
    """Whether a decoding error may come from the text stopping inside the value (read on and
    try again) rather than from a broken value. Decided by where the error points, not by its
    message: the messages differ by where the cut falls ("Invalid \\uXXXX escape" a few
    characters before the end was once refused as broken, whatever the body). An unterminated
    string points at the string's start, wherever the cut is."""
    return e.pos >= length - _CUT_MARGIN or e.msg.startswith("Unterminated string")


class _Buffer:
    def __init__(self, chunks: Iterable[bytes], read_size: int = _MIN_READ) -> None:
        self._chunks = iter(chunks)
        self.read_size = read_size
        self.data = b""
        self.pos = 0
        self.eof = False
        self.consumed = 0  # bytes dropped from the front (for positions in errors)
        self._item_end: bytes | None = None  # how this body's items end (see ``item``)
        self._misses = 0
        self._digits: bytes | None = None  # the buffer's digits (see ``long_digits``)

    def more(self, at_least: int | None = None) -> bool:
        """Append at least ``at_least`` bytes (default ``read_size``; or what is left);
        False at the end."""
        if self.eof:
            return False
        need = self.read_size if at_least is None else at_least
        if self.pos > len(self.data) // 2:  # drop what has been read
            self.consumed += self.pos
            self.data = self.data[self.pos:]
            self.pos = 0
        parts = [self.data]
        got = 0
        while got < need:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self.eof = True
                break
            parts.append(chunk)
            got += len(chunk)
        self.data = b"".join(parts)
        self._digits = None
        return True

    def long_digits(self, start: int, stop: int) -> bool:
        """Whether ``data[start:stop]`` holds a run of 19 digits (a number orjson would read
        past 64 bits as a float). A copy of the buffer with every digit as ``0`` and every
        other byte as ``.`` is searched: ~10x faster than a regex over each item."""
        if self._digits is None:
            self._digits = self.data.translate(_DIGIT_MAP)
        return self._digits.find(_LONG_RUN, start, stop) >= 0

    def skip_ws(self) -> None:
        while True:
            data, n, p = self.data, len(self.data), self.pos
            while p < n and data[p] in _WS:
                p += 1
            self.pos = p
            if p < n or not self.more():
                return

    def peek(self) -> int:
        self.skip_ws()
        if self.pos >= len(self.data):
            raise BodyError(f"the body ends early (after {self.consumed + self.pos} bytes)",
                            cut=True)
        return self.data[self.pos]

    def expect(self, ch: bytes) -> None:
        got = self.peek()
        if got != ch[0]:
            raise BodyError(f"expected {ch.decode()!r} at byte {self.consumed + self.pos}, "
                            f"found {chr(got)!r}")
        self.pos += 1

    def _window(self, size: int) -> tuple[str, bool]:
        """Up to ``size`` bytes from the cursor as text (a character the window cuts is left
        out), reading more first if there are fewer; and whether it reaches the body's end."""
        while len(self.data) - self.pos < size and self.more(size):
            pass
        raw = self.data[self.pos:self.pos + size]
        whole = self.eof and self.pos + size >= len(self.data)
        try:
            text, used = codecs.utf_8_decode(raw, "strict", whole)
        except UnicodeDecodeError as e:
            raise BodyError(f"the body is not UTF-8 ({e.reason} at byte "
                            f"{self.consumed + self.pos + e.start})") from None
        return text, whole and used == len(raw)

    def value(self) -> Any:
        """Decode one JSON value at the cursor with the stdlib's scanner, on a window of the
        body that grows until the value fits."""
        self.peek()
        size = min(self.read_size, _FIRST_WINDOW)
        while True:
            text, whole = self._window(size)
            try:
                obj, end = _DECODER.raw_decode(text, 0)
            except json.JSONDecodeError as e:
                where = self.consumed + self.pos + len(text[:e.pos].encode("utf-8"))
                if whole or not _may_be_cut(e, len(text)):
                    if whole and e.pos >= len(text) - _CUT_MARGIN:
                        raise BodyError(f"the body ends inside a value (after "
                                        f"{self.consumed + len(self.data)} bytes)",
                                        cut=True) from None
                    raise BodyError(f"{e.msg} at byte {where}") from None
                if size > MAX_ITEM_CHARS:
                    raise BodyError(f"{e.msg} at byte {where} (or an item larger than "
                                    f"{MAX_ITEM_CHARS >> 20} MB)") from None
                size *= 2
                continue
            if end == len(text) and isinstance(obj, int | float) and not isinstance(obj, bool):
                # A number at the very end of the window may go on after it; at the end of
                # the body it was cut short (a results object never ends in a number).
                if whole:
                    raise BodyError(f"the body ends inside a value (after "
                                    f"{self.consumed + len(self.data)} bytes)", cut=True)
                size *= 2
                continue
            used = len(text[:end].encode("utf-8")) if not text.isascii() else end
            if _SURROGATE_ESCAPE.search(self.data, self.pos, self.pos + used):
                obj = _without_lone_surrogates(obj)
            self.pos += used
            return obj

    def item(self) -> Any:
        """Decode one results item at the cursor.

        An item ends where its closing ``}`` stands, and that can be found without reading
        the item, by the body's layout: Go's encoder (Bifrost) writes items compactly,
        custom_id first, so an item ends where ``},{"custom_id":`` begins; a pretty-printer
        puts the item's ``}`` on a line of its own at the indentation its ``{`` had (a string
        cannot hold a raw newline, so such a line is never inside one). The bytes up to there
        are decoded by orjson (~3x faster than the stdlib scanner, and no text is built) when
        they parse: a slice that parses as one object from the item's ``{`` is the item (a
        JSON object cannot go on once closed). Otherwise (the marker closed an object inside
        the item, an item with integers past 64 bits, other layouts, a broken item) the
        stdlib's scanner decides, exactly."""
        start = self.consumed + self.pos  # absolute: peek() may drop the front of the buffer
        self.peek()
        data, pos = self.data, self.pos
        if data[pos] != 0x7B or self._misses > _MAX_MISSES:  # not an object, or no fast layout
            return self.value()
        marker = self._item_end
        if marker is None:
            rel = start - self.consumed
            if rel < 0:  # the whitespace before the item was dropped: learn at the next one
                return self.value()
            marker = self._item_end = _item_end(data[rel:pos])
        looked = 0  # absolute position up to which the marker is known to be absent
        while True:
            end = data.find(marker, max(pos, looked - self.consumed))
            # the item's end is further on: read on, within bounds (an item that big goes to
            # the stdlib's scanner, whose window grows)
            if end >= 0 or self.eof or len(data) - pos > _FAST_ITEM_BYTES:
                break
            looked = self.consumed + len(data) - len(marker) + 1
            self.more()
            data, pos = self.data, self.pos
        stop = end + marker.index(b"}") + 1 if end >= 0 else -1
        # orjson reads integers past 64 bits as floats: long numbers take the exact path
        if stop > 0 and not self.long_digits(pos, stop):
            try:
                obj = orjson.loads(data[pos:stop])
            except orjson.JSONDecodeError:
                pass
            else:
                self.pos = stop
                return obj
        # A miss: the last item, an object inside the item closed by the marker, a broken
        # item, or a layout other than the learnt one (learnt again at the next item). A body
        # that keeps missing is read by the stdlib's scanner alone.
        self._misses += 1
        self._item_end = None
        return self.value()


def _item_end(gap: bytes) -> bytes:
    """The bytes that end an item, from the whitespace before one (``gap``): a pretty-printer
    puts the item's ``}`` on a line of its own, at the indentation of its ``{`` (a string
    cannot hold a raw newline, so such a line is never inside one); a compact writer follows
    it with ``,``, the same whitespace and the next item's first key, which Bifrost (Go's
    encoder, fields in struct order) writes as custom_id."""
    newline = gap.rfind(b"\n")
    if newline >= 0:
        return b"\n" + gap[newline + 1:] + b"}"
    return b"}," + gap + b'{"custom_id":'


_MAX_MISSES = 64  # items the fast path missed before a body is read by the stdlib alone
_FAST_ITEM_BYTES = 1 << 22  # how far ahead an item's end is looked for (4 MB)
# The stdlib scanner's first window: a key or an item that the fast path left (they are small);
# doubled while the value does not fit.
_FIRST_WINDOW = 4096
# A \uD800-\uDFFF escape: half of a surrogate pair. A pair decodes to one character; a lone
# half (JSON allows it: Python's ensure_ascii writes one for a str holding it) is no Unicode
# character, cannot be stored as UTF-8 (Arrow, DuckDB and polars refuse it) and becomes
# U+FFFD, as Go's encoder (Bifrost) writes invalid text. orjson refuses such items, so only
# the stdlib's path meets them.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(v: Any) -> Any:
    if isinstance(v, str):
        return _LONE_SURROGATE.sub("\ufffd", v)
    if isinstance(v, list):
        return [_without_lone_surrogates(x) for x in v]
    if isinstance(v, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(x) for k, x in v.items()}
    return v


_DIGIT_MAP = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))
_LONG_RUN = b"0" * 19  # past int64 (below -2**63) needs 19 digits


def iter_results(chunks: Iterable[bytes], body: ResultsBody, *, read_size: int = _MIN_READ
                 ) -> Iterator[Any]:
    """Yield each item of the body's ``results`` array, in order; the other top-level fields
    land in ``body``. Raises ``BodyError`` when the body is not a results object or ends
    before its closing brace (after yielding the items that came before). ``read_size``:
    bytes read at a time (tests make it tiny so that every cut of the transport falls at the
    end of the buffer)."""
    buf = _Buffer(chunks, read_size)
    buf.expect(b"{")
    if buf.peek() == 0x7D:
        buf.pos += 1
        body.complete = True
        return
    while True:
        key = buf.value()
        if not isinstance(key, str):
            raise BodyError("a key of the results object is not a string")
        buf.expect(b":")
        if key == "results" and buf.peek() == 0x5B:  # "["
            buf.pos += 1
            if buf.peek() == 0x5D:  # "]"
                buf.pos += 1
            else:
                while True:
                    item = buf.item()
                    body.items += 1
                    yield item
                    sep = buf.peek()
                    buf.pos += 1
                    if sep == 0x5D:
                        break
                    if sep != 0x2C:  # ","
                        raise BodyError(f"expected ',' or ']' after results item {body.items}, "
                                        f"found {chr(sep)!r}")
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
        if sep == 0x7D:
            body.complete = True
            return
        if sep != 0x2C:
            raise BodyError(f"expected ',' or '}}' after {key!r}, found {chr(sep)!r}")
