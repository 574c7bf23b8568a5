"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a real
uvicorn server: sign in, load every page, promote and roll back through the forms."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Page, sync_playwright

from alphaops.core.config import AlphaOpsConfig
from alphaops.registry import Registry
from alphaops.serve import ServeConfig, create_app

from .conftest import KEY, Secrets

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def base_url(config: AlphaOpsConfig, registry: Registry, secrets: Secrets) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(config, ServeConfig()), host="127.0.0.1", port=0,
                       log_level="warning")
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Chromium is missing: bash scripts/services.sh start installs Debian's "
                    "chromium package", pytrace=False)  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser.new_page()
        browser.close()


def _sign_in(page: Page, base_url: str, secret: str) -> None:
    page.goto(f"{base_url}/ui")
    assert page.url.startswith(f"{base_url}/ui/login")  # no token: sent to sign in
    page.fill("#token", secret)
    page.click("#sign-in")


def test_an_operator_promotes_and_rolls_back_through_the_pages(
    page: Page, base_url: str, secrets: Secrets, registry: Registry, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    _sign_in(page, base_url, secrets.operator)
    assert page.url == f"{base_url}/ui"
    assert page.inner_text("#models").count(KEY) == 1
    page.screenshot(path=str(shots / "models.png"), full_page=True)

    page.click(f"text={KEY}")
    assert "champion → 1" in page.inner_text("#aliases")
    page.screenshot(path=str(shots / "model.png"), full_page=True)
    page.click("#versions a[href$='/versions/2']")
    assert page.inner_text("#gates").startswith("passed")
    page.screenshot(path=str(shots / "version.png"), full_page=True)

    page.go_back()
    page.select_option("#promote-version", "3")
    page.fill("#promote-reason", "better out of sample")
    page.click("#promote")
    assert "champion: 1 → 3" in page.inner_text("#message")
    assert registry.aliases(KEY) == {"champion": 3, "previous": 1}
    last = registry.history(KEY)[-1]
    assert (last.actor, last.reason) == ("token:operator-bot", "better out of sample")
    assert "better out of sample" in page.inner_text("#history")
    page.screenshot(path=str(shots / "promoted.png"), full_page=True)

    page.fill("#rollback-reason", "live drawdown")
    page.click("#rollback")
    assert "champion: 3 → 1" in page.inner_text("#message")
    assert registry.aliases(KEY)["champion"] == 1
    page.screenshot(path=str(shots / "rolled-back.png"), full_page=True)
    assert all((shots / n).stat().st_size > 1000 for n in
               ("models.png", "model.png", "version.png", "promoted.png", "rolled-back.png"))  # fmt: skip


def test_a_viewer_sees_no_forms_and_a_stale_form_shows_the_conflict(
    page: Page, base_url: str, secrets: Secrets, registry: Registry
) -> None:
    _sign_in(page, base_url, secrets.viewer)
    page.goto(f"{base_url}/ui/models/{KEY}")
    assert page.locator("#promote-form").count() == 0
    page.context.clear_cookies()
    _sign_in(page, base_url, secrets.operator)
    page.goto(f"{base_url}/ui/models/{KEY}")
    registry.promote(f"{KEY}/2", expect=1, reason="moved meanwhile")  # the page is now stale
    page.fill("#promote-reason", "stale page")
    page.click("#promote")
    assert "version_conflict" in page.inner_text("h1")
    assert registry.aliases(KEY)["champion"] == 2


def test_a_wrong_token_is_refused_at_sign_in(page: Page, base_url: str, secrets: Secrets) -> None:
    _sign_in(page, base_url, secrets.revoked)
    assert "revoked" in page.inner_text("#error")
