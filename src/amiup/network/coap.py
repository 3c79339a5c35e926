"""Real meter processes over CoAP/UDP (aiocoap): the same wire messages and meter agent.

One CoAP resource, ``POST /amiup``: the request payload is one encoded wire message, the
response payload the meter's reply (empty when there is none; blocks get none). The server
wraps ``MeterEndpoint``; the client drives a ``UnicastSession``. Only these two classes read
the wall clock or touch sockets: the protocol core stays sans-I/O. Loopback addresses only.

Multicast: the simulator covers multicast delivery; CoAP group communication over loopback
needs a multicast-capable interface and route, which a plain loopback setup lacks, so the
CoAP transport is unicast only (see docs/network.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import aiocoap
import aiocoap.resource as coap_resource

from amiup.errors import AmiupError, error
from amiup.headend.session import Delivery, SessionConfig, UnicastSession
from amiup.meter import DirStorage, Meter
from amiup.network.endpoint import MeterEndpoint
from amiup.package import UpgradeOrder, decode_package, manifest_digest, sign_order
from amiup.trust import PrivateKey
from amiup.wire import Accept, GetStatus, Message, Missing, Status, decode, decode_bitmap, encode

PATH = ("amiup",)
REQUEST_TIMEOUT_S = 3.0
TICK_S = 1.0
MAX_STEPS = 1_000_000  # bound on client loop iterations


def parse_url(url: str) -> tuple[str, int]:
    """``coap://127.0.0.1:5683`` -> (host, port); refuses anything but a loopback address."""
    parts = urlsplit(url)
    if parts.scheme != "coap" or not parts.hostname or parts.port is None:
        raise error("invalid-argument", f"{url!r}: expected coap://127.0.0.1:PORT")
    try:
        loopback = ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        loopback = parts.hostname == "localhost"
    if not loopback:
        raise error("invalid-argument", f"{url!r}: only loopback addresses are allowed")
    return parts.hostname, parts.port


# ---------------------------------------------------------------------- server
class _Resource(coap_resource.Resource):
    """POST /amiup: one wire message in, the meter's reply out."""

    def __init__(self, endpoint: MeterEndpoint, lock: asyncio.Lock) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.lock = lock

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            msg = decode(bytes(request.payload))
        except AmiupError:
            return aiocoap.Message(code=aiocoap.BAD_REQUEST, payload=b"malformed-message")
        async with self.lock:
            replies = self.endpoint.handle(msg, time.time())
        payload = encode(replies[0]) if replies else b""
        return aiocoap.Message(code=aiocoap.CONTENT if payload else aiocoap.CHANGED, payload=payload)


async def run_server(data_dir: Path, port: int, host: str = "127.0.0.1",
                     ready: Callable[[str], None] | None = None,
                     stop: asyncio.Event | None = None) -> None:
    """Serve the meter stored in ``data_dir`` until ``stop`` is set (or forever)."""
    if not ipaddress.ip_address(host).is_loopback:
        raise error("invalid-argument", "the meter serves on loopback addresses only")
    if not (data_dir / "rec" / "meter").is_dir():
        raise error("not-found", f"no meter in {data_dir} (run `amiup meter init` first)")
    meter = Meter(DirStorage(data_dir))
    meter.boot(time.time())  # recovery after a crash or kill -9 (a power loss)
    endpoint = MeterEndpoint(meter)
    lock = asyncio.Lock()
    site = coap_resource.Site()
    site.add_resource(PATH, _Resource(endpoint, lock))
    logging.getLogger("coap-server").setLevel(logging.ERROR)
    ctx = await aiocoap.Context.create_server_context(site, bind=(host, port))
    if ready is not None:
        ready(f"coap://{host}:{port}")
    stop = stop or asyncio.Event()
    try:
        while not stop.is_set():  # timers: scheduled activations, trial windows
            async with lock:
                meter.tick(time.time())
                endpoint.alarms()  # kept in the meter's log; pushed on the next status
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
    finally:
        await ctx.shutdown()


# ---------------------------------------------------------------------- client
class CoapLink:
    """Request/response to one meter; a lost or refused exchange returns None."""

    def __init__(self, ctx: aiocoap.Context, url: str) -> None:
        host, port = parse_url(url)
        self.ctx = ctx
        self.uri = f"coap://{host}:{port}/{'/'.join(PATH)}"

    async def ask(self, msg: Message, timeout: float = REQUEST_TIMEOUT_S) -> Message | None:
        req = aiocoap.Message(code=aiocoap.POST, uri=self.uri, payload=encode(msg))
        try:
            resp = await asyncio.wait_for(self.ctx.request(req).response, timeout)
        except (TimeoutError, aiocoap.error.Error, OSError):
            return None
        if not resp.code.is_successful() or not resp.payload:
            return None
        try:
            return decode(bytes(resp.payload))
        except AmiupError:
            return None


async def read_status(url: str, *, full: bool = True, attempts: int = 3,
                      timeout: float = REQUEST_TIMEOUT_S) -> Status:
    """One status read (``unreachable`` if the meter does not answer)."""
    ctx = await aiocoap.Context.create_client_context()
    try:
        link = CoapLink(ctx, url)
        for _ in range(attempts):
            nonce = os.urandom(16)
            reply = await link.ask(GetStatus(nonce, "", full), timeout)
            if isinstance(reply, Status) and reply.nonce == nonce:
                return reply
        raise error("unreachable", f"no status from {url}")
    finally:
        await ctx.shutdown()


@dataclass
class PushResult:
    """What a push did: final state, blocks sent, what was missing when it started."""

    meter_id: str
    outcome: str
    code: str | None
    block_count: int
    missing_at_start: int
    blocks_sent: int
    running: str


Progress = Callable[[int, int], None]  # (blocks the meter holds, block count)


async def push(url: str, package: bytes, utility_key: PrivateKey, *,
               activate: str | int = "now", block_size: int = 512, window: int = 16,
               rate: float = 0.0, validity_s: int = 7 * 86400,
               progress: Progress | None = None) -> PushResult:
    """Upgrade one meter: sign an order for it, offer, send blocks, verify, read back.

    A meter that already runs the package's version is reported as confirmed, untouched.
    Pushing again after an interruption resumes: the meter's accept lists only the blocks
    it still misses (SM-2). ``rate`` > 0 paces blocks per second (traffic control).
    """
    pkg = decode_package(package)
    ctx = await aiocoap.Context.create_client_context()
    try:
        link = CoapLink(ctx, url)
        status = await link.ask(GetStatus(os.urandom(16), pkg.manifest.component))
        if not isinstance(status, Status):
            raise error("unreachable", f"{url} does not answer")
        now = int(time.time())
        order = UpgradeOrder(manifest_digest(pkg.manifest_bytes), (status.meter_id,), now - 300,
                             now + validity_s, status.order_counter + 1,
                             activation=activate if activate != "on-command" else "on-command")
        # also say it with an explicit activate: a re-push may find the image staged already
        explicit = None if activate == "on-command" else activate
        delivery = Delivery(sign_order(order, utility_key), pkg.signed_header, pkg.payload,
                            pkg.manifest.component, pkg.manifest.version, block_size,
                            explicit)  # type: ignore[arg-type]
        cfg = SessionConfig(window=window, timeout_s=REQUEST_TIMEOUT_S, max_retries=3,
                            backoff=1.5, poll_s=1.0, max_polls=120, wait_for_activation=False)
        session = UnicastSession(status.meter_id, delivery, cfg)
        missing_at_start = -1
        now_comp = status.component(delivery.component)
        if now_comp and now_comp.running == delivery.version and now_comp.state in ("committed", "idle"):
            return PushResult(status.meter_id, "confirmed", None, 0, 0, 0, now_comp.running)

        def seen(reply: Message) -> None:
            nonlocal missing_at_start
            if isinstance(reply, Accept) and missing_at_start < 0:
                missing_at_start = len(decode_bitmap(reply.missing, reply.block_count))
            if isinstance(reply, Accept | Missing) and progress is not None:
                bits = reply.missing if isinstance(reply, Accept) else reply.bitmap
                progress(reply.block_count - len(decode_bitmap(bits, reply.block_count)),
                         reply.block_count)

        await drive(link, session, rate=rate, on_reply=seen)
        final = await link.ask(GetStatus(os.urandom(16), delivery.component))
        comp = final.component(delivery.component) if isinstance(final, Status) else None
        if session.phase == "done":  # confirmed, or staged: verified / scheduled
            outcome = session.code if session.code in ("verified", "scheduled") else "confirmed"
        else:
            outcome = "failed"
        return PushResult(status.meter_id, outcome, None if outcome != "failed" else session.code,
                          session.block_count, missing_at_start, session.blocks_sent,
                          comp.running if comp else "?")
    finally:
        await ctx.shutdown()


async def drive(link: CoapLink, session: UnicastSession, *, rate: float = 0.0,
                at: Literal["offer", "readback"] = "offer",
                on_reply: Callable[[Message], None] | None = None) -> None:
    """Run ``session`` against one meter until it ends (bounded by ``MAX_STEPS``)."""
    outbox = session.start(time.time(), at=at)
    for _ in range(MAX_STEPS):
        if session.done:
            return
        if not outbox:
            due = session.deadline if session.deadline is not None else time.time()
            await asyncio.sleep(max(0.0, min(due - time.time(), 5.0)))
            outbox = session.expire(time.time())
            continue
        replies = await _exchange(link, outbox, rate)
        outbox = []
        for reply in replies:
            if on_reply is not None:
                on_reply(reply)
            outbox += session.receive(reply, time.time())


async def _exchange(link: CoapLink, outbox: list[Message], rate: float) -> list[Message]:
    """Send a burst (blocks concurrently, paced by ``rate``), then its final request."""
    *blocks, last = outbox
    if blocks:
        if rate > 0:
            for b in blocks:
                await link.ask(b)
                await asyncio.sleep(1.0 / rate)
        else:
            await asyncio.gather(*(link.ask(b) for b in blocks))
    reply = await link.ask(last)
    return [reply] if reply is not None else []
