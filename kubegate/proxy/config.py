"""The streams section of kubegate.yaml."""

from __future__ import annotations

from pydantic import Field

from kubegate.configbase import Strict


class StreamsConfig(Strict):
    """Long-lived streams: watches, followed logs, exec, attach and port-forward."""

    close_on_token_expiry: bool = Field(default=True, description="end a stream when the caller's token expires")
    retry_window_seconds: float = Field(
        default=15,
        gt=0,
        le=300,
        description="how long a refused WebSocket upgrade is remembered, so kubectl's SPDY retry is the same attempt",
    )
