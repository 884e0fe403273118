"""The chat-server example (examples/chat_server) over HTTP against a real
redis-server: a conversation moves the affinity, an idle session is archived
by the listener in the app's lifespan, a reconnect keeps the affinity, and a
headless Chromium drives the page.

The server comes from the package's pytest plugin (``luminora_redis_url``);
the app's listener turns keyspace notifications on, so each test puts the
shared server's flags back as it found them.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis
import uvicorn

from examples.chat_server.app import create_app
from examples.chat_server.responder import POINTS_PER_WORD
from luminora_redis.core.models import ArchivedConversation
from luminora_redis.testing import RedisServer, free_port

from conftest import wait_until
from listener_support import flags_restored

ARCHIVE_TIMEOUT = 15.0  # seconds; an upper bound, the listener usually archives within ms


@pytest.fixture(autouse=True)
def notification_flags_restored(request: pytest.FixtureRequest) -> Iterator[None]:
    if "luminora_redis_url" not in request.fixturenames:
        yield
        return
    with flags_restored([request.getfixturevalue("redis_server")]):
        yield


@asynccontextmanager
async def chat_client(url: str, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The example app on ``url``, lifespan (and so the listener) running, behind an ASGI client."""
    app = create_app(url, **options)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://chat") as client:
            yield client


async def start(client: httpx.AsyncClient, user: str, personality: str = "alicia") -> dict[str, Any]:
    response = await client.post("/sessions", json={"user_id": user, "personality": personality})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def say(client: httpx.AsyncClient, session_id: str, text: str) -> dict[str, Any]:
    response = await client.post(f"/sessions/{session_id}/messages", json={"text": text})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_conversation_moves_affinity_and_ends_in_the_archive(luminora_redis_url: str) -> None:
    async with chat_client(luminora_redis_url) as client:
        session = await start(client, "ana")
        assert session["affinity"] == {"points": 0, "level": "stranger"}
        sid = session["session_id"]

        warm = await say(client, sid, "I love astronomy, thanks!")
        assert warm["delta"] == 2 * POINTS_PER_WORD
        assert warm["affinity"] == {"points": 10, "level": "stranger"}
        assert warm["reply"]
        cold = await say(client, sid, "this is boring")
        assert cold["delta"] == -POINTS_PER_WORD
        assert cold["affinity"]["points"] == 5

        history = (await client.get(f"/sessions/{sid}/history")).json()
        assert [(m["role"], m["content"]) for m in history] == [
            ("user", "I love astronomy, thanks!"), ("assistant", warm["reply"]),
            ("user", "this is boring"), ("assistant", cold["reply"])]
        assert (await client.get("/users/ana/affinity/alicia")).json() == {"points": 5, "level": "stranger"}
        assert (await client.get("/users/bob/affinity/alicia")).json()["points"] == 0

        ended = await client.delete(f"/sessions/{sid}")
        assert ended.status_code == 200 and ended.json()["archived"] is True
        (archived,) = (await client.get("/users/ana/archive")).json()
        assert archived["session_id"] == sid and archived["reason"] == "ended"
        assert [m["content"] for m in archived["messages"]] == [m["content"] for m in history]

        for response in (await client.post(f"/sessions/{sid}/messages", json={"text": "hi"}),
                         await client.get(f"/sessions/{sid}/history"),
                         await client.delete(f"/sessions/{sid}")):
            assert response.status_code == 404, response.text
        assert (await client.get("/users/ana/archive")).json() == [archived]


async def test_bad_input_is_refused_and_nothing_is_written(luminora_redis_url: str) -> None:
    async with chat_client(luminora_redis_url) as client:
        with redis.Redis.from_url(luminora_redis_url) as raw:
            before = raw.dbsize()
            for body in ({"user_id": "", "personality": "alicia"}, {"user_id": "ana"},
                         {"user_id": "ana", "personality": "x" * 65}):
                assert (await client.post("/sessions", json=body)).status_code == 422
            sid = (await start(client, "ana"))["session_id"]
            after_start = raw.dbsize()
            assert after_start > before
            assert (await client.post(f"/sessions/{sid}/messages", json={"text": ""})).status_code == 422
            assert raw.dbsize() == after_start
        assert (await client.get(f"/sessions/{sid}/history")).json() == []


async def test_an_idle_session_is_archived_and_a_reconnect_keeps_the_affinity(
        luminora_redis_url: str) -> None:
    archived: asyncio.Queue[ArchivedConversation] = asyncio.Queue()
    async with chat_client(luminora_redis_url, max_idle=0.3, sweep_interval=0.05,
                           on_archived=archived.put_nowait) as client:
        first = (await start(client, "carlos"))["session_id"]
        turn = await say(client, first, "hello, I love your stories")
        assert turn["affinity"]["points"] == POINTS_PER_WORD

        conversation = await asyncio.wait_for(archived.get(), ARCHIVE_TIMEOUT)
        assert conversation.session_id == first and conversation.reason.value == "idle"
        assert [m.content for m in conversation.messages] == ["hello, I love your stories", turn["reply"]]
        gone = await client.post(f"/sessions/{first}/messages", json={"text": "still there?"})
        assert gone.status_code == 404 and gone.json()["detail"] == "session expired or ended"
        (listed,) = (await client.get("/users/carlos/archive")).json()
        assert listed["session_id"] == first and listed["reason"] == "idle"

        assert archived.empty()

    # Reconnect (to a restarted server with a long idle timeout, so the new session
    # cannot idle out under load): a new session, the same affinity.
    async with chat_client(luminora_redis_url) as client:
        second = await start(client, "carlos")
        assert second["session_id"] != first
        assert second["affinity"] == {"points": POINTS_PER_WORD, "level": "stranger"}
        again = await say(client, second["session_id"], "thanks, that was great")
        assert again["affinity"]["points"] == 3 * POINTS_PER_WORD
        history = (await client.get(f"/sessions/{second['session_id']}/history")).json()
        assert [m["content"] for m in history] == ["thanks, that was great", again["reply"]]
        assert (await client.get("/users/carlos/affinity/alicia")).json()["points"] == 3 * POINTS_PER_WORD


async def test_redis_down_is_503_not_404() -> None:
    with RedisServer() as server:
        async with chat_client(server.url, sweep_interval=0.05) as client:
            sid = (await start(client, "ana"))["session_id"]
            server.kill()
            response = await client.post(f"/sessions/{sid}/messages", json={"text": "hello?"})
            assert response.status_code == 503
            assert response.json() == {"detail": "Redis is unavailable"}


# -- the page in a headless browser ----------------------------------------------------


def browser_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver to run it")
    return browser, driver


@pytest.fixture
def live_server(luminora_redis_url: str) -> Iterator[str]:
    """The example served by uvicorn on a free loopback port, in a thread."""
    port = free_port()
    config = uvicorn.Config(create_app(luminora_redis_url, sweep_interval=0.05), host="127.0.0.1",
                            port=port, log_level="warning", ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="chat-server", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=20, what="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive()


@pytest.mark.slow
def test_the_page_chats_and_shows_the_affinity(live_server: str) -> None:
    browser, driver_path = browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(live_server + "/")
        driver.find_element(By.ID, "user").send_keys("dora")
        driver.find_element(By.ID, "start").click()
        wait.until(lambda d: d.find_element(By.ID, "message").is_enabled())
        assert driver.find_element(By.ID, "affinity-level").text == "stranger"

        driver.find_element(By.ID, "message").send_keys("I love this, thanks!")
        driver.find_element(By.ID, "send").click()
        wait.until(lambda d: d.find_element(By.ID, "affinity-points").text == "10")
        lines = [p.text for p in driver.find_elements(By.CSS_SELECTOR, "#log p")]
        assert "I love this, thanks!" in lines
        assert any(line.startswith("That makes me happy") for line in lines)

        driver.find_element(By.ID, "end").click()
        wait.until(lambda d: d.find_element(By.ID, "status").text == "Session ended and archived.")
        assert not driver.find_element(By.ID, "message").is_enabled()
    finally:
        driver.quit()
    with httpx.Client(base_url=live_server) as client:
        (archived,) = client.get("/users/dora/archive").json()
        assert [m["content"] for m in archived["messages"]][0] == "I love this, thanks!"
        assert client.get("/users/dora/affinity/alicia").json()["points"] == 10
