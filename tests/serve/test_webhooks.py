"""Signed webhooks to a real HTTP receiver on loopback: every alias move, rollout transition
and gate run arrives signed and in order; a receiver that was down gets them later."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from alphaops.registry import Registry
from alphaops.registry.testing import record_passing_gates
from alphaops.serve import WebhookConfig
from alphaops.serve.webhooks import WebhookDispatcher, verify_signature
from alphaops.services.rollout import RolloutController

from .conftest import KEY

SECRET = "whsec-0123456789abcdef"


class Receiver:
    """A stdlib HTTP server that verifies each signature; ``down`` answers 503."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.forged = 0
        self.down = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if owner.down:
                    self.send_response(503)
                elif not verify_signature(SECRET, dict(self.headers), body):
                    owner.forged += 1
                    self.send_response(401)
                else:
                    owner.events.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    opened = Receiver()
    yield opened
    opened.close()


def _wait(condition: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_moves_rollouts_and_gates_arrive_signed_in_order(
    registry: Registry, receiver: Receiver
) -> None:
    hook = WebhookConfig(url=receiver.url, secret=SECRET)
    dispatcher = WebhookDispatcher(registry.database, [hook], poll_s=0.05, backoff_s=0.01)
    dispatcher.start()
    try:
        registry.promote(f"{KEY}/2", expect=1, reason="better", actor="token:ops")
        registry.rollback(KEY, reason="worse", actor="token:ops")
        RolloutController(registry, actor="token:ops").start(f"{KEY}/3", steps="shadow,10")
        record_passing_gates(registry, f"{KEY}/3")
        _wait(
            lambda: (
                any(e["type"] == "gates.passed" for e in receiver.events)
                and any(e["type"].startswith("rollout.") for e in receiver.events)
            )
        )
        types = [e["type"] for e in receiver.events if e["id"].startswith("audit-")]
        assert types[:2] == ["registry.promote", "registry.rollback"]
        promote = next(e for e in receiver.events if e["type"] == "registry.promote")
        assert (promote["model"], promote["from_version"], promote["to_version"],
                promote["actor"]) == (KEY, 1, 2, "token:ops")  # fmt: skip
        rollout = next(e for e in receiver.events if e["type"].startswith("rollout."))
        assert (rollout["to_phase"], rollout["version"]) == ("shadow", 3)
        assert receiver.forged == 0
        assert len({e["id"] for e in receiver.events}) == len(receiver.events)  # no duplicates
    finally:
        dispatcher.close()


def test_a_receiver_that_was_down_gets_every_event_later_even_after_a_restart(
    registry: Registry, receiver: Receiver
) -> None:
    hook = WebhookConfig(url=receiver.url, secret=SECRET)
    receiver.down = True
    first = WebhookDispatcher(registry.database, [hook], poll_s=0.05, backoff_s=0.01)
    first.start()
    registry.promote(f"{KEY}/2", expect=1, reason="while down")
    _wait(lambda: first.failures >= 3)  # retried with back-off, never taken
    first.close()  # the server stops; the event stays in the outbox
    registry.promote(f"{KEY}/3", expect=2, reason="still down")
    receiver.down = False
    second = WebhookDispatcher(registry.database, [hook], poll_s=0.05, backoff_s=0.01)
    second.start()
    try:
        _wait(lambda: len([e for e in receiver.events if e["type"] == "registry.promote"]) == 2)
        reasons = [e["reason"] for e in receiver.events if e["type"] == "registry.promote"]
        assert reasons == ["while down", "still down"]
    finally:
        second.close()


def test_a_forged_or_stale_signature_is_rejected() -> None:
    from alphaops.serve.webhooks import sign

    body = b'{"type": "registry.promote"}'
    headers = sign(SECRET, "audit-9", 1_700_000_000, body)
    assert verify_signature(SECRET, headers, body, now=1_700_000_010)
    assert not verify_signature("another-secret-0000", headers, body, now=1_700_000_010)
    assert not verify_signature(SECRET, headers, body, now=1_700_000_000 + 3600)
    assert not verify_signature(SECRET, {}, body)


def test_a_webhook_secret_must_be_long_enough() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        WebhookConfig(url="http://127.0.0.1:1/x", secret="short")
    with pytest.raises(ValueError, match="http"):
        WebhookConfig(url="ftp://x/y", secret="s" * 16)
