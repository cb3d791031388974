"""POST /v1/messages: route, translate, call the upstream, stream back.

Parse once, translate once, and forward Anthropic-to-Anthropic bytes untouched. Retries and failover
only ever happen before the first byte reaches the client (see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import orjson

from ccr_fast.admission import NOOP_TICKET, AdmissionContext, AdmissionController, Ticket
from ccr_fast.observe.metrics import RequestTimer
from ccr_fast.protocol.anthropic_events import message_to_events
from ccr_fast.protocol.anthropic_stream import AnthropicUsagePeek, usage_from_message
from ccr_fast.protocol.errors import GatewayError, error_event, from_upstream
from ccr_fast.protocol.server_tools import WARNING_HEADER
from ccr_fast.resilience import CANCELLED, NETWORK, TIMEOUT, AttemptPlan, AttemptResult
from ccr_fast.routing import session_id
from ccr_fast.server.dialects import DIALECTS, StreamTranslator, request_warning
from ccr_fast.server.http import CLIENT_CLOSED, JSON_HEADERS, SSE_HEADERS, Request, Response
from ccr_fast.server.validate import parse_json_body, validate_messages_body
from ccr_fast.upstream.auth import UpstreamAuthError
from ccr_fast.upstream.transport import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTimeout,
)

if TYPE_CHECKING:
    from ccr_fast.routing import RouteDecision
    from ccr_fast.server.gateway import Gateway
    from ccr_fast.transformers import Plan
    from ccr_fast.transformers.base import ResponseFilter

log = logging.getLogger("ccr_fast.messages")
access = logging.getLogger("ccr_fast.access")

#: sent when the upstream has been silent for ``Gateway.keepalive_s`` (the SDKs ignore pings)
PING_EVENT = b'event: ping\ndata: {"type": "ping"}\n\n'

#: client headers an Anthropic upstream needs to see (auth is replaced by the provider's key)
_FORWARD_TO_ANTHROPIC = ("anthropic-version", "anthropic-beta")


def _sse_headers(request_id: str) -> list[tuple[str, str]]:
    return [*SSE_HEADERS, ("request-id", request_id)]


async def handle_messages(gw: Gateway, req: Request) -> Response:
    started = time.perf_counter()
    body = parse_json_body(req.body)
    validate_messages_body(body)
    return await dispatch(gw, req, body, started)


async def dispatch(gw: Gateway, req: Request, body: dict[str, Any], started: float) -> Response:
    """Route and serve a parsed, validated Anthropic Messages body (shared by every inbound format)."""
    stream = body.get("stream") is True
    timer = gw.metrics.request_started(stream=stream)
    decision: RouteDecision | None = None
    ticket = NOOP_TICKET
    try:
        admission = gw.admission
        admit: AdmissionContext | None = None
        if admission is not None:
            admit = AdmissionContext(
                req.client,
                session_id(body, req.headers),
                req.key,
                priority=req.headers.get(gw.priority_header),
            )
            if admission.remote:  # State.backend "redis": the same limits, shared by every machine
                await _admitted_remote(gw, admission, admit)
            else:
                _admitted(gw, admission.check_client, admit, "client")  # 403 / 429 before any work
        decision = await gw.router.route(body, req.headers, body_size=len(req.body))
        route = f"{decision.provider},{decision.model}"
        if admission is not None and admit is not None:
            admit.provider, admit.model = decision.provider, decision.model
            max_tokens = body.get("max_tokens")
            admit.estimated_tokens = (decision.token_count or len(req.body) // 4) + (
                max_tokens if isinstance(max_tokens, int) else 0
            )
            try:
                ticket = await admission.acquire_provider(admit)  # may wait in the queue; cancellable
            except GatewayError:
                gw.metrics.rate_limited("provider")
                raise
            route = ticket.route or route
        return await _attempt(gw, req, body, started, decision, route, stream, ticket, timer)
    except GatewayError as err:
        ticket.release()
        timer.finish(
            provider=decision.provider if decision else "-",
            model=decision.model if decision else "-",
            scenario=decision.scenario if decision else "-",
            status=err.status,
            error_type=err.error_type,
        )
        raise
    except BaseException:
        ticket.release()
        timer.close()
        raise


async def _admitted_remote(gw: Gateway, admission: AdmissionController, ctx: AdmissionContext) -> None:
    try:
        await admission.check_client_remote(ctx)
    except GatewayError as err:
        if err.status == 429:
            gw.metrics.rate_limited("client")
        raise


def _admitted(
    gw: Gateway, check: Callable[[AdmissionContext], None], ctx: AdmissionContext, scope: str
) -> None:
    try:
        check(ctx)
    except GatewayError as err:
        if err.status == 429:
            gw.metrics.rate_limited(scope)
        raise


async def _attempt(
    gw: Gateway,
    req: Request,
    body: dict[str, Any],
    started: float,
    decision: RouteDecision,
    route: str,
    stream: bool,
    ticket: Ticket,
    timer: RequestTimer,
) -> Response:
    """Try the route's deployments (retries, failover) until one answers 2xx, then respond."""
    now = time.monotonic()
    attempts = gw.resilience.plan(
        route,
        now,
        scenario=decision.scenario,
        fallback=gw.config.fallback,
        long_context=gw.config.router.long_context,
    )
    attempt = attempts.first(now)
    pristine: bytes | None = None
    last_error: GatewayError | None = None
    while attempt is not None:
        if attempt.delay > 0:
            await asyncio.sleep(min(attempt.delay, attempts.remaining(time.monotonic())))
        dep = attempt.deployment
        provider = gw.config.provider(dep.provider)
        if provider is None:  # deployments are validated against Providers at load
            raise GatewayError(404, f"unknown provider '{dep.provider}'", "not_found_error")
        plan = gw.plans.get(provider, dep.model, api_key=dep.api_key)
        if plan.unavailable:
            raise GatewayError(400, plan.unavailable)
        if attempt.number > 1:
            if pristine is not None:  # undo the previous attempt's transformer hooks
                body = orjson.loads(pristine)
            log.info("%s attempt %d (%s) -> %s", req.request_id, attempt.number, attempt.kind.value, dep.name)
        elif plan.anthropic_hooks:
            pristine = orjson.dumps(body)
        sent_at = time.monotonic()
        try:
            upstream_req = _build_upstream_request(gw, req, body, plan, dep.model, stream)
            try:
                resp = await _send(gw, upstream_req, plan)
            finally:
                timer.upstream_wait(time.monotonic() - sent_at)
        except _SendFailed as failed:
            last_error = failed.error
            result = AttemptResult(status=failed.status, error=failed.kind, message=failed.error.message)
        else:
            ahead: _ReadAhead | None = None
            if (
                resp.status < 300
                and stream
                and plan.endpoint != "anthropic"
                and "text/event-stream" in resp.headers.get("content-type", "")
            ):
                # Nothing has reached the client yet: read ahead to the first content block, so an
                # upstream that answers 200 and then breaks (or reports an error) still fails over.
                ahead = await _read_ahead(resp, plan, decision, gw.keepalive_s)
                timer.upstream_wait(time.monotonic() - sent_at)
                if ahead.failure is not None:
                    kind = TIMEOUT if ahead.failure.error_type == "timeout_error" else NETWORK
                    log.warning(
                        "%s upstream %s failed before any content: %s",
                        req.request_id,
                        dep.name,
                        ahead.failure.message,
                    )
                    result = AttemptResult(error=kind, message=ahead.failure.message)
                    following = attempts.next_attempt(result, time.monotonic(), time.time())
                    if following is not None:
                        resp.close()
                        last_error, attempt = ahead.failure, following
                        continue
                    # nowhere else to go: the client gets this stream as it is, error event included
            if resp.status < 300:
                ttft = time.monotonic() - sent_at
                ctx = _Exchange(gw, req, decision, plan, started, stream, session_id(body, req.headers))
                ctx.ahead = ahead
                if ahead is not None and ahead.failure is not None:  # served as it is, failure recorded
                    ctx.failure = TIMEOUT if ahead.failure.error_type == "timeout_error" else NETWORK
                ctx.attempts, ctx.ttft, ctx.ticket, ctx.timer = attempts, ttft, ticket, timer
                response = await _respond(ctx, resp)
                warning = request_warning(body, plan, dep.model)
                if warning:
                    response.headers.append((WARNING_HEADER, warning))
                return response
            try:
                raw = await resp.read()
            except UpstreamError:
                raw = b""
            finally:
                resp.close()
            last_error = from_upstream(resp.status, raw, resp.headers)
            log.warning(
                "%s upstream %s answered %d: %s", req.request_id, dep.name, resp.status, last_error.message
            )
            result = AttemptResult(
                status=resp.status,
                error=last_error.error_type,
                headers=resp.headers,
                message=last_error.message,
                latency=time.monotonic() - sent_at,
            )
        attempt = attempts.next_attempt(result, time.monotonic(), time.time())
    if last_error is None:  # no deployment admitted even the first attempt
        last_error = GatewayError(
            529,
            f"every deployment for '{decision.provider},{decision.model}' is unavailable (circuit open); "
            "try again shortly",
            "overloaded_error",
        )
    last_error.headers.update(attempts.client_headers())
    raise last_error


async def _respond(ctx: _Exchange, resp: UpstreamResponse) -> Response:
    """The upstream answered 2xx: from here on nothing is retried (bytes may reach the client)."""
    plan, stream, req = ctx.plan, ctx.stream, ctx.req
    if not stream:
        return await _non_stream(ctx, resp)
    ctype = resp.headers.get("content-type", "")
    if "text/event-stream" not in ctype and "json" in ctype:
        # Some servers ignore `stream: true` and answer with one JSON body: stream it anyway.
        return await _json_as_stream(ctx, resp)
    gen = _passthrough_stream(ctx, resp) if plan.endpoint == "anthropic" else _translated_stream(ctx, resp)
    if plan.response_filters:
        gen = _filtered(gen, [make() for make in plan.response_filters])
    return Response(200, _sse_headers(req.request_id), stream=gen, on_complete=ctx.complete)


def _build_upstream_request(
    gw: Gateway, req: Request, body: dict[str, Any], plan: Plan, model: str, stream: bool
) -> UpstreamRequest:
    for hook in plan.anthropic_hooks:
        hook(body)
    headers = dict(plan.headers)
    if plan.endpoint == "anthropic":
        if plan.platform is None:  # Vertex AI names the model in the URL
            body["model"] = model
        for name in _FORWARD_TO_ANTHROPIC:
            v = req.headers.get(name)
            if v:
                headers[name] = v
        headers.setdefault("anthropic-version", "2023-06-01")
        payload = orjson.dumps(body)
        url = plan.stream_url if stream and plan.stream_url else plan.url
    else:
        url, extra, payload = DIALECTS[plan.endpoint].encode(body, plan, model, stream)
        headers.update(extra)
    if stream:
        headers["accept"] = "text/event-stream"
    return UpstreamRequest(
        "POST",
        url,
        headers,
        payload,
        timeout=gw.upstream_timeout,
        stream=stream,
        provider=plan.provider,
        proxy=gw.config.proxy_url,
    )


class _SendFailed(Exception):
    def __init__(self, error: GatewayError, kind: str, status: int | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.kind = kind
        self.status = status


async def _send(gw: Gateway, upstream_req: UpstreamRequest, plan: Plan) -> UpstreamResponse:
    if plan.auth is not None:  # a credential that expires (Vertex AI); static keys are in plan.headers
        try:
            await plan.auth.authorize(upstream_req, gw.transport)
        except UpstreamAuthError as exc:
            status, kind = exc.attempt
            raise _SendFailed(exc.gateway_error(plan.provider), kind, status) from None
    try:
        return await gw.transport.send(upstream_req)
    except UpstreamTimeout as exc:
        err = GatewayError(504, f"provider '{plan.provider}' timed out: {exc}", "timeout_error")
        raise _SendFailed(err, TIMEOUT) from None
    except UpstreamConnectError as exc:
        err = GatewayError(502, f"provider '{plan.provider}' is unreachable: {exc}", "api_error")
        raise _SendFailed(err, NETWORK) from None
    except UpstreamError as exc:
        err = GatewayError(502, f"provider '{plan.provider}' request failed: {exc}", "api_error")
        raise _SendFailed(err, NETWORK) from None


class _Exchange:
    """Per-request context for accounting once the response has ended."""

    __slots__ = (
        "ahead",
        "attempts",
        "decision",
        "failure",
        "gw",
        "plan",
        "req",
        "session",
        "started",
        "stream",
        "ticket",
        "timer",
        "ttft",
        "usage",
    )

    def __init__(
        self,
        gw: Gateway,
        req: Request,
        decision: RouteDecision,
        plan: Plan,
        started: float,
        stream: bool,
        session: str | None,
    ) -> None:
        self.session = session
        self.gw = gw
        self.req = req
        self.decision = decision
        self.plan = plan
        self.started = started
        self.stream = stream
        self.usage: dict[str, int] = {}
        self.attempts: AttemptPlan | None = None
        #: a translated stream read ahead to its first content (see _read_ahead)
        self.ahead: _ReadAhead | None = None
        self.ticket: Ticket = NOOP_TICKET
        self.timer: RequestTimer | None = None
        self.ttft: float | None = None
        #: set when the upstream broke after answering (TIMEOUT / NETWORK), for passive health
        self.failure: str | None = None

    def complete(self, status: int) -> None:
        if self.attempts is not None:
            latency = time.perf_counter() - self.started
            if status == CLIENT_CLOSED:
                result = AttemptResult(error=CANCELLED)
            elif self.failure is not None:
                result = AttemptResult(error=self.failure, latency=latency, ttft=self.ttft)
            else:
                result = AttemptResult(status=200, latency=latency, ttft=self.ttft)
            self.attempts.finish(result, time.monotonic())
        usage = self.usage
        total_in = (
            usage.get("input_tokens", 0)
            + usage.get("cache_read_input_tokens", 0)
            + usage.get("cache_creation_input_tokens", 0)
        )
        if total_in and self.session:
            self.gw.sessions.record(self.session, total_in)
        if self.ticket is not NOOP_TICKET:
            self.ticket.charge_tokens(total_in + usage.get("output_tokens", 0))
            self.ticket.release()
        if self.timer is not None:
            failed = self.failure is not None
            self.timer.finish(
                provider=self.plan.provider,
                model=self.plan.model,
                scenario=self.decision.scenario,
                status=502 if failed and status == 200 else status,
                error_type="api_error" if failed else None,
                input_tokens=usage.get("input_tokens", 0),
                output_tokens=usage.get("output_tokens", 0),
                cache_read=usage.get("cache_read_input_tokens", 0),
                cache_write=usage.get("cache_creation_input_tokens", 0),
                session=self.session,
            )
        if access.isEnabledFor(logging.INFO):
            access.info(
                "%s %s %s %s %d %s,%s scenario=%s stream=%s key=%s in=%d out=%d %.1fms",
                self.req.request_id,
                self.req.client or "-",
                self.req.method,
                self.req.path,
                status,
                self.plan.provider,
                self.plan.model,
                self.decision.scenario,
                self.stream,
                self.req.key or "-",
                total_in,
                usage.get("output_tokens", 0),
                (time.perf_counter() - self.started) * 1000,
            )


async def _read_body(resp: UpstreamResponse, plan: Plan, timer: RequestTimer | None = None) -> bytes:
    waited = time.monotonic()
    try:
        return await resp.read()
    except UpstreamTimeout as exc:
        raise GatewayError(504, f"provider '{plan.provider}' timed out: {exc}", "timeout_error") from None
    except UpstreamError as exc:
        raise GatewayError(502, f"provider '{plan.provider}' failed: {exc}", "api_error") from None
    finally:
        if timer is not None:
            timer.upstream_wait(time.monotonic() - waited)
        resp.close()


def _parse_upstream_json(raw: bytes, plan: Plan) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise GatewayError(
            502, f"provider '{plan.provider}' returned a body that is not JSON", "api_error"
        ) from None
    if not isinstance(data, dict):
        raise GatewayError(502, f"provider '{plan.provider}' returned unexpected JSON", "api_error")
    if isinstance(data.get("error"), dict | str):
        raise from_upstream(500, raw)
    return data


async def _non_stream(ctx: _Exchange, resp: UpstreamResponse) -> Response:
    raw = await _read_body(resp, ctx.plan, ctx.timer)
    headers = [*JSON_HEADERS]  # the gateway adds request-id to every non-streamed response
    plan = ctx.plan
    if plan.passthrough:
        ctx.usage = usage_from_message(raw)
        return Response(200, headers, raw, on_complete=ctx.complete)
    message = _decode_message(ctx, raw)
    return Response(200, headers, orjson.dumps(message), on_complete=ctx.complete)


def _decode_message(ctx: _Exchange, raw: bytes) -> dict[str, Any]:
    plan = ctx.plan
    data = _parse_upstream_json(raw, plan)
    message = data if plan.endpoint == "anthropic" else DIALECTS[plan.endpoint].decode(data, plan.model)
    for hook in plan.message_hooks:
        hook(message)
    ctx.usage = dict(message.get("usage") or {})
    return message


async def _json_as_stream(ctx: _Exchange, resp: UpstreamResponse) -> Response:
    raw = await _read_body(resp, ctx.plan, ctx.timer)
    events = message_to_events(_decode_message(ctx, raw))

    async def once() -> AsyncIterator[bytes]:
        yield events

    return Response(200, _sse_headers(ctx.req.request_id), stream=once(), on_complete=ctx.complete)


async def _timed(chunks: AsyncIterator[bytes], ctx: _Exchange) -> AsyncIterator[bytes]:
    """Count the time spent waiting on the upstream (not the gateway's own overhead), and mark the
    first content chunk for time-to-first-token."""
    timer = ctx.timer
    if timer is None:
        async for chunk in chunks:
            yield chunk
        return
    clock = time.perf_counter
    first = True
    while True:
        t0 = clock()
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            timer.upstream_wait(clock() - t0)
            return
        timer.upstream_wait(clock() - t0)
        if first and chunk:
            first = False
            timer.first_token()
        yield chunk


class _ReadAhead:
    """A translated stream read up to its first content block before anything is sent to the client."""

    __slots__ = ("chunks", "failure", "output", "translator")

    def __init__(self, translator: StreamTranslator, chunks: AsyncIterator[bytes]) -> None:
        self.translator = translator
        self.chunks = chunks
        #: translated events produced so far, sent first once the stream is committed
        self.output: list[bytes] = []
        #: set when the upstream broke, ended or reported an error before any content: fail over
        self.failure: GatewayError | None = None


async def _read_ahead(
    resp: UpstreamResponse, plan: Plan, decision: RouteDecision, idle: float | None
) -> _ReadAhead:
    """Feed the translator until it opens a content block. Stops early (and commits to the stream)
    after one keep-alive interval without data, so a slow first token is bridged by pings as usual."""
    ahead = _ReadAhead(
        DIALECTS[plan.endpoint].translator(plan.model, decision.token_count or 0), resp.iter_chunks(idle)
    )
    translator = ahead.translator

    def failed(message: str, etype: str = "api_error") -> _ReadAhead:
        ahead.failure = GatewayError(502, f"provider '{plan.provider}' stream failed: {message}", etype)
        ahead.chunks = _empty()
        return ahead

    while True:
        try:
            chunk = await anext(ahead.chunks)
        except StopAsyncIteration:
            # a finished answer (even an empty one) is served; a stream cut before anything is not
            finished = translator.stop_reason is not None
            ahead.output.append(translator.close())
            ahead.chunks = _empty()
            if finished or any(b"content_block_start" in out for out in ahead.output):
                return ahead
            return failed("upstream ended the stream before any content")
        except UpstreamError as exc:
            etype = "timeout_error" if isinstance(exc, UpstreamTimeout) else "api_error"
            ahead.output.append(translator.fail(etype, f"provider '{plan.provider}' stream failed: {exc}"))
            return failed(str(exc), etype)
        if not chunk:  # a keep-alive interval passed: commit and let pings take over
            return ahead
        out = translator.feed(chunk)
        if out:
            ahead.output.append(out)
        if translator.errored:
            return failed("upstream reported an error before any content")
        if b"content_block_start" in out:
            return ahead


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


async def _translated_stream(ctx: _Exchange, resp: UpstreamResponse) -> AsyncIterator[bytes]:
    ahead = ctx.ahead
    if ahead is not None:
        translator = ahead.translator
        chunks = ahead.chunks
        if ahead.output:
            if ctx.timer is not None:
                ctx.timer.first_token()
            yield b"".join(ahead.output)
    else:
        translator = DIALECTS[ctx.plan.endpoint].translator(ctx.plan.model, ctx.decision.token_count or 0)
        chunks = resp.iter_chunks(ctx.gw.keepalive_s)
    try:
        async for chunk in _timed(chunks, ctx):
            if not chunk:
                yield PING_EVENT
                continue
            out = translator.feed(chunk)
            if out:
                yield out
        out = translator.close()
        if out:
            yield out
    except UpstreamError as exc:
        log.warning("%s stream from %s failed: %s", ctx.req.request_id, ctx.plan.provider, exc)
        etype = "timeout_error" if isinstance(exc, UpstreamTimeout) else "api_error"
        ctx.failure = TIMEOUT if isinstance(exc, UpstreamTimeout) else NETWORK
        yield translator.fail(etype, f"provider '{ctx.plan.provider}' stream failed: {exc}")
    finally:
        resp.close()
        ctx.usage = dict(translator.usage)


async def _filtered(stream: AsyncIterator[bytes], filters: list[ResponseFilter]) -> AsyncIterator[bytes]:
    """Run whole-event output through the plan's response filters, in chain order."""
    try:
        async for data in stream:
            for f in filters:
                data = f.feed(data)
            if data:
                yield data
        tail = b""
        for f in filters:
            tail = f.feed(tail) + f.close() if tail else f.close()
        if tail:
            yield tail
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


async def _passthrough_stream(ctx: _Exchange, resp: UpstreamResponse) -> AsyncIterator[bytes]:
    """Forward upstream bytes untouched, but only whole events, so a failure can still be reported
    with a well-formed `event: error` instead of a torn frame."""
    peek = AnthropicUsagePeek()
    pending = b""
    try:
        async for chunk in _timed(resp.iter_chunks(ctx.gw.keepalive_s), ctx):
            if not chunk:
                if not pending:  # only between whole events
                    yield PING_EVENT
                continue
            peek.feed(chunk)
            data = pending + chunk if pending else chunk
            cut = max(data.rfind(b"\n\n"), data.rfind(b"\r\r"))
            crlf = data.rfind(b"\r\n\r\n")
            if crlf >= 0 and crlf + 2 > cut:
                cut = crlf + 2
            if cut < 0:
                pending = data
                continue
            pending = data[cut + 2 :]
            yield data[: cut + 2]
        peek.close()
        if peek.saw_message_stop or peek.error is not None:
            if pending:
                yield pending
        else:
            # whatever is pending is a torn event: forwarding it would swallow the error frame
            yield error_event("api_error", f"provider '{ctx.plan.provider}' ended the stream early")
    except UpstreamError as exc:
        log.warning("%s stream from %s failed: %s", ctx.req.request_id, ctx.plan.provider, exc)
        ctx.failure = TIMEOUT if isinstance(exc, UpstreamTimeout) else NETWORK
        if not peek.saw_message_stop:
            etype = "timeout_error" if isinstance(exc, UpstreamTimeout) else "api_error"
            yield error_event(etype, f"provider '{ctx.plan.provider}' stream failed: {exc}")
    finally:
        resp.close()
        ctx.usage = dict(peek.usage)
