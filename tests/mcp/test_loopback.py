from __future__ import annotations

from kubegate.mcp.loopback import warning_text
from kubegate.proxy.headers import warning_header


def test_a_warning_reads_as_kubectl_prints_it() -> None:
    text = 'kubegate masked 1 value (rule "r", profile secret-values)'
    assert warning_text(warning_header(text)) == text
    assert warning_text("not a warning header") == "not a warning header"
