"""The one marker every masked value becomes, in the encodings clients expect to decode."""

from __future__ import annotations

import base64

MARKER = "<masked by kubegate>"
MARKER_BYTES = MARKER.encode()
# Secret `.data` values are base64; the marker's base64 keeps them decodable and hides their length.
MARKER_B64 = base64.b64encode(MARKER_BYTES).decode()
