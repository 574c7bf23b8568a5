"""End to end: tokens made with the real CLI, a real `alphaops serve` process on loopback,
a promotion over HTTP audited with the token's name, and the refusals at start."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from alphaops.core.config import AlphaOpsConfig
from alphaops.registry import Registry

from .conftest import KEY


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alphaops", "--home", str(home), *args],
        capture_output=True, text=True, timeout=120, env=os.environ | {"NO_COLOR": "1"},
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_tokens_from_the_cli_authenticate_a_real_server_and_the_audit_names_them(
    config: AlphaOpsConfig, registry: Registry
) -> None:
    home = config.home
    made = _cli(home, "token", "create", "deploy-bot", "--role", "operator", "--json")
    assert made.returncode == 0, made.stderr
    secret = json.loads(made.stdout)["token"]
    listed = _cli(home, "token", "list", "--json")
    assert secret not in listed.stdout
    assert [(t["name"], t["role"], t["active"]) for t in json.loads(listed.stdout)] == [
        ("deploy-bot", "operator", True)
    ]
    assert _cli(home, "token", "create", "deploy-bot").returncode == 1  # names are unique

    port = _free_port()
    log = home / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "alphaops", "--home", str(home), "serve", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "alphaops serve did not start within 60 s"
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {secret}"}
        assert (
            httpx.post(f"{base}/api/v1/models/{KEY}/rollback", json={"reason": "x"}).status_code
            == 401
        )
        moved = httpx.post(
            f"{base}/api/v1/models/{KEY}/promote",
            json={"version": 2, "expect": 1, "reason": "end to end"}, headers=auth,
        )  # fmt: skip
        assert moved.status_code == 200, moved.text
        assert registry.history(KEY)[-1].actor == "token:deploy-bot"
        assert _cli(home, "token", "revoke", "deploy-bot").returncode == 0
        assert httpx.get(f"{base}/api/v1/models", headers=auth).status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_refuses_a_public_address_without_tokens_and_never_listens(
    config: AlphaOpsConfig, registry: Registry
) -> None:
    refused = _cli(config.home, "serve", "--host", "0.0.0.0", "--port", str(_free_port()))
    assert refused.returncode == 1
    assert "no active API token" in refused.stderr
    assert "alphaops token create" in refused.stderr


def test_serve_refuses_a_home_without_a_registry(tmp_path: Path) -> None:
    refused = _cli(tmp_path / "nowhere", "serve", "--port", str(_free_port()))
    assert refused.returncode == 1
    assert "does not exist" in refused.stderr
