"""JSON for the journal and snapshots: msgspec, exact for integers of any size.

The journal and snapshots hold amounts and ids as JSON integers, some beyond 64 bits, and
every row is decoded again at recovery. msgspec encodes and decodes them exactly and about
twice as fast as the standard library (orjson, as fast, turns integers beyond 64 bits into
floats). Floats never appear in these documents.
"""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def dumps(obj: Any) -> str:
    """Return compact JSON text for `obj` (dicts keep their key order)."""
    return _encoder.encode(obj).decode()


def dumpb(obj: Any) -> bytes:
    """Return compact JSON bytes for `obj`."""
    return _encoder.encode(obj)


def loads(data: str | bytes) -> Any:
    """Decode JSON text or bytes.

    Raises:
        msgspec.DecodeError: `data` is not valid JSON.
    """
    return _decoder.decode(data)
