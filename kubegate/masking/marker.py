"""The one marker every masked value becomes, in the encodings clients expect to decode."""

from __future__ import annotations

import base64

MARKER = "<masked by kubegate>"
MARKER_BYTES = MARKER.encode()
# Secret `.data` values are base64; the marker's base64 keeps them decodable and hides their length.
MARKER_B64 = base64.b64encode(MARKER_BYTES).decode()
MARKER_B64_BYTES = MARKER_B64.encode()


def markers_in(body: bytes | bytearray) -> int:
    """How many markers a body holds, in either encoding: what masking added is this after minus before."""
    return body.count(MARKER_BYTES) + body.count(MARKER_B64_BYTES)
