"""The HTTP API over a real registry: auth (401 vs 403 on every mutation), promote with
compare-and-swap, rollback, rollouts, idempotent retries and problem bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alphaops.core.errors import ConfigError
from alphaops.registry import Registry
from alphaops.serve import ServeConfig, check_can_start

from .conftest import KEY, Secrets

BASE = f"/api/v1/models/{KEY}"
MUTATIONS: list[tuple[str, dict[str, Any]]] = [
    (f"{BASE}/promote", {"version": 2, "expect": 1, "reason": "better"}),
    (f"{BASE}/rollback", {"reason": "worse"}),
    (f"{BASE}/rollouts", {"version": 2, "steps": "shadow,10,100", "reason": "try it"}),
    (f"{BASE}/rollout/advance", {"reason": "next"}),
    (f"{BASE}/rollout/pause", {"reason": "hold"}),
    (f"{BASE}/rollout/resume", {"reason": "go"}),
    (f"{BASE}/rollout/abort", {"reason": "stop"}),
]


@pytest.mark.parametrize(("path", "body"), MUTATIONS)
def test_every_mutation_is_401_without_a_valid_token_and_403_for_a_viewer(
    client: TestClient, secrets: Secrets, registry: Registry, path: str, body: dict[str, Any]
) -> None:
    before = registry.history(KEY)
    for headers in ({}, secrets.header("revoked"), {"Authorization": "Bearer aops_forged"},
                    {"Authorization": "Basic abc"}):  # fmt: skip
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["code"] == "unauthenticated"
        assert response.json()["fix"]
    denied = client.post(path, json=body, headers=secrets.header("viewer"))
    assert denied.status_code == 403
    assert denied.json()["code"] == "forbidden"
    assert "viewer-bot" in denied.json()["detail"]
    # Auth is checked before the body: an empty body still gets 401, not 422.
    assert client.post(path, headers={}).status_code == 401
    assert registry.history(KEY) == before  # nothing moved


def test_revoked_token_message_names_when_and_who(client: TestClient, secrets: Secrets) -> None:
    response = client.get("/api/v1/models", headers=secrets.header("revoked"))
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    assert "by admin" in response.json()["detail"]


def test_reads_need_a_token_unless_anonymous_reads_are_allowed_on_loopback(
    make_client: Callable[..., TestClient], secrets: Secrets
) -> None:
    closed = make_client()
    assert closed.get("/api/v1/models").status_code == 401
    listed = closed.get("/api/v1/models", headers=secrets.header("viewer")).json()
    assert [(m["model"], m["aliases"]) for m in listed] == [(KEY, {"champion": 1})]
    opened = make_client(anonymous_read=True)
    assert opened.get("/api/v1/models").status_code == 200
    assert opened.post(f"{BASE}/rollback", json={"reason": "x"}).status_code == 401


def test_operator_promotes_with_expect_and_the_audit_log_names_the_token(
    client: TestClient, secrets: Secrets, registry: Registry
) -> None:
    response = client.post(
        f"{BASE}/promote",
        json={"version": 2, "expect": 1, "reason": "better sharpe"},
        headers=secrets.header("operator"),
    )
    assert response.status_code == 200, response.text
    assert response.json() | {"at": None} == {
        "model": KEY, "alias": "champion", "from_version": 1, "to_version": 2,
        "generation": response.json()["generation"], "at": None,
    }  # fmt: skip
    last = registry.history(KEY)[-1]
    assert (last.action, last.actor, last.reason, last.to_version) == (
        "promote", "token:operator-bot", "better sharpe", 2,
    )  # fmt: skip
    assert registry.aliases(KEY) == {"champion": 2, "previous": 1}


def test_a_stale_expect_is_a_409_problem_and_nothing_moves(
    client: TestClient, secrets: Secrets, registry: Registry
) -> None:
    response = client.post(
        f"{BASE}/promote",
        json={"version": 3, "expect": 2, "reason": "stale"},
        headers=secrets.header("operator"),
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "version_conflict"
    assert body["type"] == "urn:alphaops:error:version_conflict"
    assert body["status"] == 409
    assert body["fix"]
    assert registry.aliases(KEY) == {"champion": 1}


def test_forcing_past_the_gates_needs_an_admin(
    client: TestClient, secrets: Secrets, registry: Registry
) -> None:
    body = {"version": 3, "expect": 1, "reason": "hotfix", "force": True}
    denied = client.post(f"{BASE}/promote", json=body, headers=secrets.header("operator"))
    assert denied.status_code == 403
    assert "admin" in denied.json()["detail"]
    allowed = client.post(f"{BASE}/promote", json=body, headers=secrets.header("admin"))
    assert allowed.status_code == 200, allowed.text
    assert registry.history(KEY)[-1].actor == "token:admin-bot"


def test_rollback_over_the_api_restores_the_previous_champion(
    client: TestClient, secrets: Secrets, registry: Registry
) -> None:
    registry.promote(f"{KEY}/2", expect=1, reason="second")
    response = client.post(
        f"{BASE}/rollback", json={"reason": "live loss", "expect": 2},
        headers=secrets.header("operator"),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert registry.aliases(KEY)["champion"] == 1
    assert registry.history(KEY)[-1].actor == "token:operator-bot"


def test_a_rollout_is_driven_through_every_step_and_each_event_names_the_caller(
    client: TestClient, secrets: Secrets, registry: Registry
) -> None:
    op = secrets.header("operator")
    started = client.post(
        f"{BASE}/rollouts", json={"version": 2, "steps": "shadow,10,100"}, headers=op
    )
    assert started.status_code == 200, started.text
    assert started.json()["phase"] == "shadow"
    phases = []
    for action in ("advance", "pause", "resume", "advance", "advance"):
        moved = client.post(f"{BASE}/rollout/{action}", json={}, headers=op)
        assert moved.status_code == 200, moved.text
        phases.append((moved.json()["phase"], moved.json()["percentage"]))
    assert phases == [("canary", 10), ("paused", 10), ("canary", 10), ("canary", 100),
                      ("live", 100)]  # fmt: skip
    assert registry.aliases(KEY)["champion"] == 2
    (rollout,) = client.get(f"{BASE}/rollouts", headers=op).json()
    assert {e["actor"] for e in rollout["events"]} == {"token:operator-bot"}
    illegal = client.post(f"{BASE}/rollout/resume", json={}, headers=op)
    assert illegal.status_code == 404  # no active rollout any more
    assert illegal.json()["code"] == "not_found"


def test_abort_needs_a_reason_and_removes_the_challenger(
    client: TestClient, secrets: Secrets, registry: Registry
) -> None:
    op = secrets.header("operator")
    client.post(f"{BASE}/rollouts", json={"version": 3, "steps": "shadow,50"}, headers=op)
    assert registry.aliases(KEY)["challenger"] == 3
    assert client.post(f"{BASE}/rollout/abort", json={}, headers=op).status_code == 400
    aborted = client.post(f"{BASE}/rollout/abort", json={"reason": "bad shadow"}, headers=op)
    assert aborted.json()["phase"] == "rolled_back"
    assert "challenger" not in registry.aliases(KEY)


def test_a_retried_mutation_with_the_same_idempotency_key_acts_once(
    client: TestClient, secrets: Secrets, registry: Registry
) -> None:
    headers = secrets.header("operator") | {"Idempotency-Key": "7f9c-promote-2"}
    body = {"version": 2, "expect": 1, "reason": "retry me"}
    first = client.post(f"{BASE}/promote", json=body, headers=headers)
    moves = len(registry.history(KEY))
    second = client.post(f"{BASE}/promote", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert len(registry.history(KEY)) == moves  # the retry did not act
    other = client.post(f"{BASE}/promote", json=body | {"version": 3}, headers=headers)
    assert other.status_code == 400
    assert "already used for another request" in other.json()["detail"]
    # Without the key the same request acts, and the stale expectation is refused.
    assert (
        client.post(f"{BASE}/promote", json=body, headers=secrets.header("operator")).status_code
        == 409
    )


def test_a_refused_mutation_is_replayed_as_refused(
    client: TestClient, secrets: Secrets, registry: Registry
) -> None:
    headers = secrets.header("operator") | {"Idempotency-Key": "stale-1"}
    body = {"version": 3, "expect": 2, "reason": "stale"}
    first = client.post(f"{BASE}/promote", json=body, headers=headers)
    registry.promote(f"{KEY}/2", expect=1, reason="now 2 is champion")
    again = client.post(f"{BASE}/promote", json=body, headers=headers)
    assert first.status_code == again.status_code == 409
    assert again.json() == first.json()


def test_reads_return_models_versions_gates_aliases_and_history(
    client: TestClient, secrets: Secrets
) -> None:
    v = secrets.header("viewer")
    model = client.get(f"{BASE}", headers=v).json()
    assert [x["version"] for x in model["versions"]] == [1, 2, 3]
    assert all(x["gates_passed"] for x in model["versions"])
    version = client.get(f"{BASE}/versions/2", headers=v).json()
    assert version["ref"] == f"{KEY}/2"
    assert version["gates"]["passed"] is True
    champion = client.get(f"{BASE}/aliases/champion", headers=v).json()
    assert champion["version"] == 1
    history = client.get(f"{BASE}/history?limit=2", headers=v).json()
    assert history[-1]["action"] == "promote"
    assert client.get("/api/v1/whoami", headers=v).json()["role"] == "viewer"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/models/BTCUSDT/nope", 404, "not_found"),
        (f"{BASE}/versions/99", 404, "not_found"),
        ("/api/v1/models/BTC..USDT/logreg", 422, "usage_error"),  # the schema refuses it
        (f"{BASE}/aliases/challenger", 404, "not_found"),
    ],
)
def test_errors_are_problem_documents_with_the_error_tables_status(
    client: TestClient, secrets: Secrets, path: str, status: int, code: str
) -> None:
    response = client.get(path, headers=secrets.header("viewer"))
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert response.json()["fix"]


def test_refuses_to_listen_beyond_loopback_without_tokens() -> None:
    with pytest.raises(ConfigError, match="no active API token"):
        check_can_start(ServeConfig(host="0.0.0.0"), active_tokens=0)
    with pytest.raises(ConfigError, match="anonymous-read"):
        check_can_start(ServeConfig(host="10.1.2.3", anonymous_read=True), active_tokens=1)
    check_can_start(ServeConfig(host="0.0.0.0"), active_tokens=1)
    check_can_start(ServeConfig(host="::1"), active_tokens=0)
