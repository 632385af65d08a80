"""Reading chain heads exported by ``tether audit head`` (the anchors ``audit verify --expect`` checks)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tether.store import ChainHead

_HASH = re.compile(r"[0-9a-f]{64}")
MAX_ANCHOR_FILE_BYTES = 64 << 20
"""An anchor file larger than this is refused (one head is about 120 bytes)."""


class AnchorFileError(ValueError):
    """The file of exported heads cannot be read as such (the message names the line)."""


def read_heads(path: str | Path) -> list[ChainHead]:
    """The heads in a file written by ``tether audit head`` (``--json`` lines or plain text),
    or by several such exports appended to one file.

    Accepted: one JSON object per line (``{"session_id", "seq", "hash"}``), a JSON array of
    such objects, or plain lines ``SESSION SEQ HASH``; blank lines and ``#`` comments are
    skipped. A file with no heads is an error: checking against nothing proves nothing.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise AnchorFileError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if len(raw) > MAX_ANCHOR_FILE_BYTES:
        raise AnchorFileError(f"{str(path)!r} is larger than {MAX_ANCHOR_FILE_BYTES} bytes; not a file of exported heads")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnchorFileError(f"{str(path)!r} is not UTF-8 text (byte {exc.start})") from None
    heads = _from_array(text, path) if text.lstrip().startswith("[") else _from_lines(text, path)
    if not heads:
        raise AnchorFileError(f"{str(path)!r} holds no exported heads")
    return heads


def _from_array(text: str, path: str | Path) -> list[ChainHead]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise AnchorFileError(f"{str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise AnchorFileError(f"{str(path)!r}: expected a JSON array of heads")
    return [_head(item, f"{path}: item {i + 1}") for i, item in enumerate(data)]


def _from_lines(text: str, path: str | Path) -> list[ChainHead]:
    heads: list[ChainHead] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{n}"
        if line.startswith("{"):
            try:
                item = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise AnchorFileError(f"{where}: not valid JSON: {exc}") from None
            heads.append(_head(item, where))
            continue
        parts = line.rsplit(None, 2)
        if len(parts) != 3:
            raise AnchorFileError(f"{where}: expected 'SESSION SEQ HASH' or a JSON object, got {line[:80]!r}")
        sid, seq, digest = parts
        if not seq.isascii() or not seq.isdigit() or len(seq) > 18:
            raise AnchorFileError(f"{where}: sequence number {seq[:40]!r} is not a positive integer")
        heads.append(_head({"session_id": sid, "seq": int(seq), "hash": digest}, where))
    return heads


def _head(item: Any, where: str) -> ChainHead:
    if not isinstance(item, dict):
        raise AnchorFileError(f"{where}: expected an object with session_id, seq and hash, got a {type(item).__name__}")
    sid, seq, digest = item.get("session_id"), item.get("seq"), item.get("hash")
    if not isinstance(sid, str) or not sid:
        raise AnchorFileError(f"{where}: 'session_id' must be a non-empty string")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 1 << 62:
        raise AnchorFileError(f"{where}: 'seq' must be a positive integer, got {_short(seq)}")
    if not isinstance(digest, str) or not _HASH.fullmatch(digest):
        raise AnchorFileError(f"{where}: 'hash' must be 64 lowercase hex digits, got {_short(digest)}")
    return ChainHead(sid, seq, digest)


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a repr that fails (e.g. an int past the digit limit) still gets a message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."
