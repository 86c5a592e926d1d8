"""Each MCP tool call is recorded in its MCP session's recording, in the one hash chain, as two events.

`tool_call` (the tool, its arguments) is committed before the tool runs, as a request event is before it
is forwarded: a call that cannot be recorded does not run. `tool_result` (the text the client receives,
whether it is an error or waits for approval) is committed before the client gets it: a result that cannot
be recorded is withheld. The Kubernetes requests a call makes come between the two in chain order, each
with its own request and response events. Arguments go through the widest masking the gateway knows
(every profile, every detector) before they are stored: an apply manifest is masked as the objects it
holds, so a Secret's value in it is never stored; every other string goes through credentials-in-text,
as all recorded strings outside bodies do. A result is stored as the client reads it, like a response body:
it is made of what the pipeline already masked; an error's text goes through credentials-in-text.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from mcp.server.mcpserver.exceptions import ToolError

from kubegate.masking.marker import MARKER
from kubegate.recording.recorder import MCP
from kubegate.store.engine import StoreError

if TYPE_CHECKING:
    from kubegate.identity.model import Identity
    from kubegate.masking.masker import Masker
    from kubegate.mcp.loopback import Caller
    from kubegate.recording.recorder import Recorder

T = TypeVar("T")
OBJECT_ARGUMENTS = {"apply": ("manifest",)}
"""Arguments that carry Kubernetes objects as YAML or JSON: recorded masked as those objects."""


@dataclass
class Call:
    """One tool call being recorded: where its `tool_call` event is, and whether it ended held for approval."""

    session_id: str
    seq: int
    id: str
    tool: str
    pending: str = ""


_current: ContextVar[Call | None] = ContextVar("kubegate_mcp_call", default=None)


def note_pending(request_id: str) -> None:
    """The running tool call answers with a pending approval of this access request."""
    call = _current.get()
    if call is not None:
        call.pending = request_id


def masked_objects(text: str, masker: Masker) -> str:
    """A manifest as it may be stored: each document masked with every profile; unreadable, the marker."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError:
        return MARKER
    if not all(isinstance(d, dict) for d in docs):
        return MARKER
    profiles = sorted(masker.config.known())
    try:
        masked = [
            masker.mask_request_body(d, profiles, d.get("kind") if isinstance(d.get("kind"), str) else None)
            for d in docs
        ]
    except TypeError:  # a value JSON has no form for (!!binary): the apply cannot send it either
        return MARKER
    return yaml.safe_dump_all(masked, sort_keys=False)


def _capped(value: Any, limit: int) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"\n[{len(value)} characters in all; the rest was not stored]"
    if isinstance(value, list):
        return [_capped(v, limit) for v in value]
    if isinstance(value, dict):
        return {k: _capped(v, limit) for k, v in value.items()}
    return value


def masked_arguments(tool: str, arguments: dict[str, Any], masker: Masker, limit: int) -> dict[str, Any]:
    """The arguments as they may be stored: objects masked as objects, each string cut at `limit`."""
    out = dict(arguments)
    for name in OBJECT_ARGUMENTS.get(tool, ()):
        if isinstance(out.get(name), str):
            out[name] = masked_objects(out[name], masker)
    return {k: _capped(v, limit) for k, v in out.items()}


def text_of(result: object) -> str:
    """The text a client reads in a tool result (its text content blocks)."""
    return "".join(getattr(block, "text", "") for block in getattr(result, "content", None) or [])


def _cut(text: str, limit: int) -> dict[str, Any]:
    return {"body": text[:limit], "chars": len(text), "truncated": len(text) > limit}


class ToolCalls:
    """Records tool calls into the recorder the Kubernetes requests go to, in the caller's MCP session."""

    def __init__(self, recorder: Recorder, masker: Masker) -> None:
        self.recorder = recorder
        self.masker = masker

    async def around(
        self,
        identity: Identity,
        caller: Caller,
        connection: str,
        source: str,
        tool: str,
        arguments: dict[str, Any],
        run: Callable[[], Awaitable[T]],
    ) -> T:
        """`run()`'s result, recorded before and after; an exception's text is what the SDK sends for it."""
        call = await self.begin(identity, caller, connection, source, tool, arguments)
        token = _current.set(call)
        try:
            result = await run()
        except Exception as exc:
            await self.end(call, str(exc), True)
            raise
        finally:
            _current.reset(token)
        await self.end(call, text_of(result), bool(getattr(result, "is_error", False)))
        return result

    async def begin(
        self, identity: Identity, caller: Caller, connection: str, source: str, tool: str, arguments: dict[str, Any]
    ) -> Call:
        """Record the call before it runs; ToolError when that cannot be done (then it does not run)."""
        session_id = self.recorder.session(
            identity,
            connection,
            caller.kubectl_session,
            command=caller.command,
            user_agent=caller.user_agent,
            source=source,
            via=MCP,
        )
        call_id = uuid.uuid4().hex
        data = {
            "call": call_id,
            "tool": tool,
            "arguments": masked_arguments(tool, arguments, self.masker, self.recorder.max_body_bytes),
            "mcp_session": caller.session_id,
            "client": caller.client,
        }
        try:
            seq = await self.recorder.record_event(session_id, "tool_call", data, durable=True)
        except StoreError as exc:
            raise ToolError(
                f"kubegate cannot record this tool call, so it did not run it: {exc}; try again, "
                "and tell kubegate's operator if it keeps failing"
            ) from exc
        return Call(session_id, seq, call_id, tool)

    async def end(self, call: Call, text: str, error: bool) -> None:
        """Record what the client is about to receive; ToolError when that cannot be done (it is withheld).
        A result is stored as a body is (what the pipeline masked, as the client reads it); an error's text
        passes credentials-in-text first, as other messages do: it may quote an argument back."""
        if error:
            text = self.masker.scrub(text)
        data = {
            "call": call.id,
            "call_seq": call.seq,
            "tool": call.tool,
            "error": error,
            "pending": call.pending,
            **_cut(text, self.recorder.max_body_bytes),
        }
        try:
            await self.recorder.record_event(
                call.session_id, "tool_result", data, durable=True, outcome="pending" if call.pending else None
            )
        except StoreError as exc:
            raise ToolError(
                f"kubegate ran this tool call but cannot record its result, so it withholds the result: {exc}; "
                "its Kubernetes requests are recorded: check the state of what it changed before trying again"
            ) from exc
