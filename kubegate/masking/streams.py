"""exec and attach output masked as it flows: stdout and stderr each through a streaming text masker of
their own (a value split across messages is still found, see text.py), with what they hold flushed
before the exit status and when the stream ends. stdin reaches the pod as typed; the recording
scrubs its own copy."""

from __future__ import annotations

from kubegate.flow import Message
from kubegate.kube import channels
from kubegate.masking.text import TextRules


class OutputMasks:
    """The text masks of one exec or attach stream, applied to the messages the client receives."""

    def __init__(self, rules: TextRules) -> None:
        self._out = {channels.STDOUT: rules.stream(), channels.STDERR: rules.stream()}

    def message(self, message: Message) -> list[Message]:
        if message.from_client or message.close:
            return [message]
        if message.channel == channels.ERROR:  # the exit status: everything held back goes first
            return [*self.flush(), message]
        masker = self._out.get(message.channel) if message.channel is not None else None
        if masker is None or not message.data:  # an empty stdout message says the stream is open
            return [message]
        out = masker.feed(message.data)
        return [message.replaced(out)] if out else []

    def flush(self) -> list[Message]:
        return [Message(False, channel, tail) for channel, masker in self._out.items() if (tail := masker.flush())]
