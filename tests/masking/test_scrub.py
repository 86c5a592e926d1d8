"""What kubegate keeps outside objects passes credentials-in-text, percent-encoded targets included."""

from __future__ import annotations

from kubegate.masking.config import MaskingConfig
from kubegate.masking.marker import MARKER
from kubegate.masking.masker import Masker
from kubegate.masking.scrub import scrubbed

TOKEN = "xoxb-" + "a1" * 12


def test_every_string_outside_bodies_is_scrubbed_and_targets_are_decoded_first() -> None:
    scrub = Masker(MaskingConfig()).scrub
    event = {
        "path": "/api/v1/namespaces/a/pods/app/exec",
        "query": f"command=echo&command=token%3D{TOKEN}",
        "info": {"command": ["sh", "-c", f"curl -H 'Authorization: Bearer {TOKEN}'"]},
        "body": f"kept as the decision masked it {TOKEN}",
        "note": [f"say {TOKEN}"],
    }
    out = scrubbed(event, scrub)
    assert TOKEN not in str({k: v for k, v in out.items() if k != "body"})
    assert out["body"] == event["body"], "bodies carry their own masks"
    assert MARKER in out["query"] and out["path"] == event["path"], "an unchanged target keeps its exact bytes"
    assert scrubbed("plain%20text", scrub, "query") == "plain%20text"
