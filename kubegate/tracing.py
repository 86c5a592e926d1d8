"""OpenTelemetry traces: a span per request, a child span per stage hook and one per upstream call, exported
over OTLP/HTTP when `tracing.otlp_endpoint` is set. The upstream span's W3C trace context goes to the
cluster in `traceparent` (in the form kube-apiserver parses, see level_one), so kube-apiserver's own tracing
records it; a caller's `traceparent` is the parent of the request span. No span holds a token, a query string or a body.

The SDK is imported only when tracing is configured (the `tracing` extra). Stage hooks are wrapped, not
the pipeline: a wrapped stage keeps exactly the hooks it had, so chunks never pay for a span.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubegate.flow import Flow, FlowKey, Stage

if TYPE_CHECKING:
    from kubegate.config import TracingConfig

SPANNED = ("on_request", "on_response", "on_end")
PASSED = ("on_chunk", "on_eof", "on_message", "on_stream_end", "close")
ROOT: FlowKey[Any] = FlowKey("tracing")  # the request's span
UPSTREAM: FlowKey[Any] = FlowKey("tracing.upstream")  # the upstream call's span, until it answers


class Tracing:
    def __init__(self, config: TracingConfig) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}))
        self.provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=config.otlp_endpoint, headers=dict(config.headers)))
        )
        self.tracer = self.provider.get_tracer("kubegate")
        self.propagator = TraceContextTextMapPropagator()

    def instrument(self, stages: list[Stage]) -> list[Stage]:
        return [RequestSpan(self), *(traced(s, self) for s in stages), UpstreamSpan(self)]

    def context_of(self, flow: Flow) -> Any:
        from opentelemetry import trace

        span = flow.kept(ROOT)
        return trace.set_span_in_context(span) if span is not None else None

    def shutdown(self) -> None:
        """Flush and stop the exporter (blocking: call it from a thread)."""
        self.provider.shutdown()


class RequestSpan(Stage):
    """First in the pipeline: opens the request's span, and closes it after every other stage's on_end."""

    name = "tracing"

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    async def on_request(self, flow: Flow) -> None:
        from opentelemetry.trace import SpanKind

        parent = self.tracing.propagator.extract(dict(flow.request.headers))
        flow.keep(
            ROOT,
            self.tracing.tracer.start_span(
                "kubegate request",
                context=parent,
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": flow.method,
                    "url.path": flow.raw_path,
                    "kubegate.connection": flow.connection.name,
                },
            ),
        )

    async def on_end(self, flow: Flow) -> None:
        from opentelemetry.trace import Status, StatusCode

        span = flow.kept(ROOT)
        if span is None:
            return
        info, decision = flow.info, flow.decision
        code = flow.response_status or (flow.refusal.code if flow.refusal is not None else 0)
        attributes = {
            "http.response.status_code": code,
            "enduser.id": flow.identity.username if flow.identity else "",
            "k8s.verb": info.verb if info else "",
            "k8s.resource": info.resource if info else "",
            "k8s.namespace": info.namespace if info else "",
            "kubegate.decision": decision.action if decision is not None else "",
        }
        span.set_attributes({k: v for k, v in attributes.items() if v != ""})
        if flow.refusal is not None or flow.error or code >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()


class UpstreamSpan(Stage):
    """Last in the pipeline: its on_request is the last before forwarding and its on_response the first
    once the cluster answered, so its span is the upstream call; it hands the cluster the trace context."""

    name = "tracing-upstream"

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    async def on_request(self, flow: Flow) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        span = self.tracing.tracer.start_span(
            f"upstream {flow.method}",
            context=self.tracing.context_of(flow),
            kind=SpanKind.CLIENT,
            attributes={"kubegate.connection": flow.connection.name},
        )
        flow.keep(UPSTREAM, span)
        carrier: dict[str, str] = {}
        self.tracing.propagator.inject(carrier, context=trace.set_span_in_context(level_one(span)))
        for key, value in carrier.items():
            flow.headers[key] = value

    async def on_response(self, flow: Flow) -> None:
        span = flow.drop(UPSTREAM)
        if span is not None:
            span.set_attribute("http.response.status_code", flow.response_status)
            span.end()

    async def on_end(self, flow: Flow) -> None:
        from opentelemetry.trace import Status, StatusCode

        span = flow.drop(UPSTREAM)
        if span is not None:  # the call failed before an answer came
            span.set_status(Status(StatusCode.ERROR, flow.error or "no answer from the cluster"))
            span.end()


def level_one(span: Any) -> Any:
    """The span's context with only the sampled flag. The SDK also sets W3C Trace Context Level 2's
    random-trace-id flag (flags 03) on traces it starts, and kube-apiserver's propagator (Go's
    OpenTelemetry) refuses version-00 flags above 02 and so would drop the context of every request kubegate
    starts the trace for (any kubectl, which sends none)."""
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    ctx = span.get_span_context()
    flags = TraceFlags(ctx.trace_flags & TraceFlags.SAMPLED)
    return NonRecordingSpan(SpanContext(ctx.trace_id, ctx.span_id, ctx.is_remote, flags, ctx.trace_state))


def traced(stage: Stage, tracing: Tracing) -> Stage:
    """`stage` with a child span around each of its request, response and end hooks."""

    def spanned(hook: str) -> Any:
        async def run(self: Stage, flow: Flow) -> Any:
            with tracing.tracer.start_as_current_span(f"{stage.name} {hook}", context=tracing.context_of(flow)):
                return await getattr(stage, hook)(flow)

        return run

    def passed(hook: str) -> Any:
        async def run(self: Stage, *args: Any) -> Any:
            return await getattr(stage, hook)(*args)

        return run

    overrides = {h for h in (*SPANNED, *PASSED) if getattr(type(stage), h) is not getattr(Stage, h)}
    methods = {h: spanned(h) if h in SPANNED else passed(h) for h in overrides}
    cls = type(f"Traced{type(stage).__name__}", (Stage,), {"name": stage.name, **methods})
    wrapper: Stage = cls()
    return wrapper
