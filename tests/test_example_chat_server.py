"""The chat-server example (examples/chat_server) against a real redis-server: over
HTTP (a conversation moves the affinity, an idle session is archived by the listener
in the app's lifespan, a reconnect keeps the affinity), over its WebSocket (refusals
are readable and write nothing, the running summary and the token budget shape the
context, an expiry is pushed to the page and summarized into what the personality
recalls on reconnect), its extractive summarizer, and the page in headless Chromium
(expiry, reconnect with recall, the archive view, the error display).

Set ``LUMINORA_CHAT_SCREENSHOTS=docs/screenshots`` to save the browser tests'
screenshots (the README shows them).

The servers come from the package's pytest plugin. The HTTP and WebSocket tests
run on each ``topology`` (conftest): on the shared server and, with
``create_app(cluster=True)``, on the shared 3-primary cluster, where the listener
subscribes on every primary (those runs are ``slow``, as every cluster test). The
browser tests and the outages run on the single server: the page is the same page
whatever the topology, and an outage is a private server's. The app's listener
turns keyspace notifications on, so each test puts the flags of the servers it used
back as it found them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.cluster
import uvicorn

import examples.chat_server.app
from examples.chat_server.app import create_app, env_flag
from examples.chat_server.chat import MAX_TEXT, ChatSettings
from examples.chat_server.live import REDIS_DOWN
from examples.chat_server.responder import POINTS_PER_WORD
from examples.chat_server.summarizer import summarize_conversation
from luminora_redis.core.models import ArchivedConversation, ArchiveReason, Message, Role, Sentiment
from luminora_redis.testing import RedisServer, free_port

from conftest import wait_until
from listener_support import flags_restored

ARCHIVE_TIMEOUT = 15.0  # seconds; an upper bound, the listener usually archives within ms

#: On the single server only (the browser tests, the outage of a private server).
SINGLE = pytest.mark.parametrize("topology", ["single"])


@pytest.fixture(autouse=True)
def notification_flags_restored(request: pytest.FixtureRequest) -> Iterator[None]:
    if "servers" not in request.fixturenames:
        yield
        return
    with flags_restored(request.getfixturevalue("servers")):
        yield


@dataclass(frozen=True)
class Target:
    """The Redis a test serves the example on: the shared server or the shared cluster."""

    url: str
    cluster: bool

    def client(self) -> Any:
        """A plain blocking client of that topology, to look behind the app's back."""
        if self.cluster:
            return redis.cluster.RedisCluster.from_url(self.url)
        return redis.Redis.from_url(self.url)


@pytest.fixture
def target(topology: str, store_url: str, servers: list[RedisServer]) -> Target:
    """The shared server or cluster (conftest's ``store_url``), flushed; its servers'
    notification flags are put back after the test (``notification_flags_restored``)."""
    return Target(store_url, cluster=topology == "cluster")


@contextmanager
def raw_client(target: Target) -> Iterator[Any]:
    client = target.client()
    try:
        yield client
    finally:
        client.close()


def key_count(raw: Any) -> int:
    """How many keys the topology holds: on a cluster, summed over every primary."""
    if isinstance(raw, redis.cluster.RedisCluster):
        return int(raw.dbsize(target_nodes=redis.cluster.RedisCluster.PRIMARIES))
    return int(raw.dbsize())


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


async def test_a_conversation_moves_affinity_and_ends_in_the_archive(target: Target) -> None:
    async with chat_client(target.url, cluster=target.cluster) as client:
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
        assert (await client.get(f"/users/ana/archive/{sid}")).json() == archived
        assert (await client.get(f"/users/bob/archive/{sid}")).status_code == 404
        recall = (await client.get("/users/ana/recall/alicia")).json()
        assert recall["affinity"] == {"points": 5, "level": "stranger"}
        assert [f["value"] for f in recall["facts"]] == ["astronomy"]  # "I love astronomy"

        for response in (await client.post(f"/sessions/{sid}/messages", json={"text": "hi"}),
                         await client.get(f"/sessions/{sid}/history"),
                         await client.delete(f"/sessions/{sid}")):
            assert response.status_code == 404, response.text
        assert (await client.get("/users/ana/archive")).json() == [archived]


async def test_bad_input_is_refused_and_nothing_is_written(target: Target) -> None:
    async with chat_client(target.url, cluster=target.cluster) as client:
        with raw_client(target) as raw:
            before = key_count(raw)
            for body in ({"user_id": "", "personality": "alicia"}, {"user_id": "ana"},
                         {"user_id": "ana", "personality": "x" * 65}):
                assert (await client.post("/sessions", json=body)).status_code == 422
            sid = (await start(client, "ana"))["session_id"]
            after_start = key_count(raw)
            assert after_start > before
            refused = await client.post(f"/sessions/{sid}/messages", json={"text": ""})
            assert refused.status_code == 422
            # one readable sentence, not a list of objects the page would print as [object Object]
            assert refused.json() == {"detail": "text: String should have at least 1 character"}
            assert key_count(raw) == after_start
        assert (await client.get(f"/sessions/{sid}/history")).json() == []


async def test_an_idle_session_is_archived_and_a_reconnect_keeps_the_affinity(target: Target) -> None:
    archived: asyncio.Queue[ArchivedConversation] = asyncio.Queue()
    async with chat_client(target.url, cluster=target.cluster, max_idle=0.3, sweep_interval=0.05,
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
    async with chat_client(target.url, cluster=target.cluster) as client:
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



# -- the extractive summarizer ---------------------------------------------------------


def conversation_of(*said: tuple[str, str]) -> ArchivedConversation:
    now = datetime.now(timezone.utc)
    return ArchivedConversation(
        session_id="s1", user_id="ana", personality_name="alicia", started_at=now, ended_at=now,
        reason=ArchiveReason.IDLE, message_count=len(said),
        messages=[Message(role=Role(role), content=text) for role, text in said])


def test_the_summarizer_keeps_the_first_message_as_title_and_the_most_frequent_sentences() -> None:
    episode = summarize_conversation(conversation_of(
        ("user", "Tell me about telescopes and the night sky"),
        ("assistant", "Telescopes are wonderful, everyone loves them."),
        ("user", "I bought a telescope last week. The weather was cloudy. "
                 "Telescope mirrors need cleaning, and a telescope needs a dark night sky."),
        ("user", "Anyway, lunch was pasta.")))
    assert episode is not None
    assert episode.title == "Tell me about telescopes and the night sky"
    # the assistant's words do not count, and the sentences about the recurring words win
    assert episode.summary == ("Tell me about telescopes and the night sky "
                                  "Telescope mirrors need cleaning, and a telescope needs a dark night sky.")
    assert episode.sentiment is Sentiment.NEUTRAL and episode.importance == 1.0
    assert summarize_conversation(conversation_of(("assistant", "anyone there?"))) is None


def test_the_summarizer_scores_sentiment_by_words_and_importance_by_length() -> None:
    warm = summarize_conversation(conversation_of(("user", "I love it, thanks, great " + "x" * 400)))
    cold = summarize_conversation(conversation_of(("user", "boring and awful")))
    both = summarize_conversation(conversation_of(("user", "I love it but I hate the end")))
    assert warm is not None and cold is not None and both is not None
    assert (warm.sentiment, cold.sentiment, both.sentiment) == (
        Sentiment.POSITIVE, Sentiment.NEGATIVE, Sentiment.MIXED)
    assert warm.importance == 3.0 and cold.importance == 1.0
    long = summarize_conversation(conversation_of(("user", "w" * 500)))
    assert long is not None and len(long.title) == 60 and long.title.endswith("…")


def test_redis_cluster_is_read_as_on_or_off_and_anything_else_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_CLUSTER", raising=False)
    assert env_flag("REDIS_CLUSTER") is False
    for on in ("1", "true", "Yes", " on "):
        monkeypatch.setenv("REDIS_CLUSTER", on)
        assert env_flag("REDIS_CLUSTER") is True
    for off in ("", "0", "false", "NO", "off"):
        monkeypatch.setenv("REDIS_CLUSTER", off)
        assert env_flag("REDIS_CLUSTER") is False
    monkeypatch.setenv("REDIS_CLUSTER", "cluster")
    with pytest.raises(ValueError, match="REDIS_CLUSTER='cluster'"):
        env_flag("REDIS_CLUSTER")


def test_the_page_loads_nothing_from_other_sites_and_labels_its_inputs() -> None:
    static = Path(examples.chat_server.app.__file__).parent / "static"
    for page in static.iterdir():
        text = page.read_text()
        assert not re.search(r"(?:https?:)?//[\w.-]+\.\w+/", text), f"{page.name} fetches from elsewhere"
    html = (static / "index.html").read_text()
    for field in re.findall(r"<input [^>]*id=\"([\w-]+)\"", html):
        assert re.search(rf"<label[^>]*>[^<]*<input [^>]*id=\"{field}\"", html), f"#{field} has no label"


# -- the WebSocket chat ----------------------------------------------------------------


@pytest.fixture
def serve(target: Target) -> Iterator[Callable[..., str]]:
    """Serve the example with ``create_app(url, **options)`` by uvicorn on a free loopback
    port, in a thread; returns its http:// base URL. Stopped at the end of the test. The
    URL defaults to the test's ``target``, with ``cluster=`` to match."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(url: str | None = None, **options: Any) -> str:
        port = free_port()
        if url is None:
            url, options = target.url, {"cluster": target.cluster, **options}
        app = create_app(url, **{"sweep_interval": 0.05, **options})
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="on"))
        thread = threading.Thread(target=server.run, name="chat-server", daemon=True)
        thread.start()
        servers.append((server, thread))
        wait_until(lambda: server.started, timeout=20, what="uvicorn to start")
        return f"http://127.0.0.1:{port}"

    try:
        yield start
    finally:
        for server, _ in servers:
            server.should_exit = True
        for _, thread in servers:
            thread.join(timeout=30)
            assert not thread.is_alive()


class Socket:
    """A test's WebSocket to the example: JSON out, the next message of a type in."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def send(self, **message: Any) -> None:
        await self.connection.send(json.dumps(message))

    async def expect(self, kind: str, timeout: float = ARCHIVE_TIMEOUT) -> dict[str, Any]:
        """The next message of type ``kind``; others (pushed meanwhile) are skipped."""
        async def next_of_kind() -> dict[str, Any]:
            while True:
                message: dict[str, Any] = json.loads(await self.connection.recv())
                if message["type"] == kind:
                    return message
        return await asyncio.wait_for(next_of_kind(), timeout)


@asynccontextmanager
async def socket_to(base: str) -> AsyncIterator[Socket]:
    from websockets.asyncio.client import connect

    async with connect(base.replace("http://", "ws://") + "/ws", open_timeout=20) as connection:
        yield Socket(connection)


async def test_a_refused_message_is_readable_and_writes_nothing(serve: Callable[..., str],
                                                                target: Target) -> None:
    base = serve()
    async with socket_to(base) as ws:
        await ws.send(type="say", id=1, text="hello?")
        assert (await ws.expect("refused")) == {"type": "refused", "id": 1,
                                                "error": "No session: start one first."}
        await ws.send(type="start", user_id="ana", personality="alicia")
        started = await ws.expect("started")
        sid = started["session_id"]
        assert started["greeting"] == "Hi, I'm alicia. Tell me about yourself."
        assert started["session"]["absolute_deadline_ms"] >= started["session"]["idle_deadline_ms"]
        with raw_client(target) as raw:
            before = key_count(raw)
            await ws.send(type="say", id=2, text="x" * (MAX_TEXT + 1))
            too_long = f"Too long: a message has at most {MAX_TEXT} characters, this one has {MAX_TEXT + 1}."
            assert (await ws.expect("refused")) == {"type": "refused", "id": 2, "error": too_long}
            await ws.send(type="say", id=3, text="   ")
            assert (await ws.expect("refused"))["error"] == "An empty message is not sent."
            assert key_count(raw) == before
        await ws.send(type="say", id=4, text="hi there")
        assert (await ws.expect("turn"))["id"] == 4
        async with httpx.AsyncClient(base_url=base) as client:
            history = (await client.get(f"/sessions/{sid}/history")).json()
        assert [m["content"] for m in history][0] == "hi there" and len(history) == 2

        await ws.send(type="end")
        assert (await ws.expect("ended"))["reason"] == "ended"
        await ws.send(type="say", id=5, text="still there?")
        assert (await ws.expect("refused"))["error"] == "No session: start one first."


@SINGLE
async def test_redis_down_is_said_plainly_over_the_socket(serve: Callable[..., str]) -> None:
    with RedisServer() as server:
        base = serve(server.url)
        async with socket_to(base) as ws:
            await ws.send(type="start", user_id="ana", personality="alicia")
            await ws.expect("started")
            server.kill()
            await ws.send(type="say", id=1, text="hello?")
            assert (await ws.expect("refused")) == {"type": "refused", "id": 1, "error": REDIS_DOWN}
            await ws.send(type="memory")
            assert (await ws.expect("error")) == {"type": "error", "error": REDIS_DOWN}


async def test_the_context_stays_within_the_budget_and_starts_with_the_running_summary(
        serve: Callable[..., str]) -> None:
    settings = ChatSettings(budget=60, summarize_after=6, keep_recent=2, last=20)
    base = serve(settings=settings)
    said = [f"Message number {n} is about gardens and tomatoes in the garden." for n in range(8)]
    async with socket_to(base) as ws:
        await ws.send(type="start", user_id="gil", personality="alicia")
        await ws.expect("started")
        turns = []
        for n, text in enumerate(said):
            await ws.send(type="say", id=n, text=text)
            turns.append(await ws.expect("turn"))
    for turn in turns:
        assert turn["context"]["tokens"] <= 60  # each message is ~16 tokens: never all of them
    summarized = [t for t in turns if t["summary"] is not None]
    assert summarized, "the running summary was never written"
    first = summarized[0]["summary"]
    assert first["through"] > 0 and "garden" in first["text"]
    later = turns[turns.index(summarized[0]) + 1]["context"]
    # from the next turn on, the context starts with that summary and only newer messages follow
    assert later["summary"] is not None and later["through"] >= first["through"]
    assert said[0] not in [m["content"] for m in later["messages"]]
    assert later["messages"][-2]["content"] == said[turns.index(summarized[0]) + 1]


async def test_an_expiry_is_pushed_and_summarized_into_the_recall_of_the_next_session(
        serve: Callable[..., str]) -> None:
    base = serve(max_idle=1.0)
    async with socket_to(base) as ws:
        await ws.send(type="start", user_id="emma", personality="alicia")
        assert (await ws.expect("started"))["recall"]["episodes"] == []
        await ws.send(type="say", id=1, text="My name is Emma. I love astronomy and the stars.")
        turn = await ws.expect("turn")
        assert turn["affinity"]["points"] == POINTS_PER_WORD
        ended = await ws.expect("ended")
        assert ended["reason"] == "idle"
        memory = await ws.expect("memory")
        (episode,) = memory["recall"]["episodes"]
        assert episode["title"] == "My name is Emma. I love astronomy and the stars."
        assert episode["episode_type"] == "session_summary" and episode["sentiment"] == "positive"
        assert [a["session_id"] for a in memory["archive"]] == [ended["session_id"]]

        await ws.send(type="open", session_id=ended["session_id"])
        conversation = (await ws.expect("conversation"))["conversation"]
        assert [m["content"] for m in conversation["messages"]] == [
            "My name is Emma. I love astronomy and the stars.", turn["reply"]]

    async with socket_to(base) as ws:  # reconnect: a new page, a new session
        await ws.send(type="start", user_id="emma", personality="alicia")
        again = await ws.expect("started")
        assert again["session_id"] != ended["session_id"]
        assert again["greeting"] == ("Welcome back, Emma! Last time you told me: "
                                     "\u201cMy name is Emma. I love astronomy and the stars.\u201d.")
        assert again["affinity"] == {"points": POINTS_PER_WORD, "level": "stranger"}
        facts = {(f["key"], f["value"]) for f in again["recall"]["facts"]}
        assert facts == {("name", "Emma"), ("likes", "astronomy and the stars")}
        assert [e["title"] for e in again["recall"]["episodes"]] == [episode["title"]]


# -- the page in a headless browser ----------------------------------------------------

SHOTS = os.environ.get("LUMINORA_CHAT_SCREENSHOTS")  # a folder to save screenshots into


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (skips without Debian's chromium and chromium-driver)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if path is None or driver_path is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver to run it")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = path
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,860", "--force-prefers-reduced-motion"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(Path(SHOTS) / f"chat-{name}.png"))


def text_of(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    text: str = driver.find_element(By.ID, element_id).text
    return text


def start_on_page(driver: Any, base: str, user: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 20)
    driver.get(base + "/")
    wait.until(lambda d: d.find_element(By.ID, "start").is_enabled())  # the socket is open
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "start").click()
    wait.until(lambda d: d.find_element(By.ID, "message").is_enabled())
    return wait


def type_message(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, "message")
    # send_keys types one key at a time: long texts go in by script, then the form is sent
    driver.execute_script("arguments[0].value = arguments[1];", field, text)
    driver.find_element(By.ID, "send").click()


@pytest.mark.slow
@SINGLE
def test_the_page_shows_a_refusal_as_not_sent_and_opens_an_archived_conversation(
        serve: Callable[..., str], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    base = serve()
    driver = browser
    wait = start_on_page(driver, base, "dora")
    assert text_of(driver, "affinity-level") == "stranger"
    assert all(driver.execute_script("return arguments[0].labels.length", field) == 1
               for field in driver.find_elements(By.CSS_SELECTOR, "input"))

    type_message(driver, "I love the sea, thanks! My name is Dora.")
    wait.until(lambda d: text_of(d, "affinity-points") == "10")
    wait.until(lambda d: "name: Dora" in text_of(d, "recall-facts"))  # learned during the turn
    type_message(driver, "Tell me everything about " + "supercalifragilistic" * 12)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#log .msg.assistant")) == 3)
    type_message(driver, "w" * (MAX_TEXT + 1))
    refused = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#log .msg.refused"))
    (note,) = [e.text for e in refused[0].find_elements(By.CLASS_NAME, "note")]
    expected = f"Too long: a message has at most {MAX_TEXT} characters, this one has {MAX_TEXT + 1}."
    assert note == "Not sent: " + expected
    assert text_of(driver, "status") == expected and "[object Object]" not in driver.page_source
    sent = driver.find_elements(By.CSS_SELECTOR, "#log .msg.user:not(.refused):not(.pending)")
    assert len(sent) == 2  # the refused one is not shown as sent
    log = driver.find_element(By.ID, "log")
    assert driver.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", log)
    wait.until(lambda d: "of 400 tokens" in text_of(d, "context-info"))
    shot(driver, "conversation")

    driver.find_element(By.ID, "end").click()
    wait.until(lambda d: text_of(d, "status").startswith("Session ended and archived."))
    assert not driver.find_element(By.ID, "message").is_enabled()
    opened = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#archive-list button"))
    assert opened[0].text.startswith("I love the sea, thanks! My name is Dora.")
    wait.until(lambda d: text_of(d, "recall-episodes").startswith("I love the sea"))
    opened[0].click()
    wait.until(lambda d: d.find_element(By.ID, "archive-view").is_displayed())
    shown = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#archive-messages .msg")]
    assert shown[0] == "I love the sea, thanks! My name is Dora." and len(shown) == 4
    assert "ended: ended" in text_of(driver, "archive-meta")
    shot(driver, "archive")


@pytest.mark.slow
@SINGLE
def test_the_page_counts_down_shows_the_expiry_and_recalls_on_reconnect(
        serve: Callable[..., str], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    base = serve(max_idle=2.0)
    driver = browser
    wait = start_on_page(driver, base, "emma")
    assert text_of(driver, "recall-episodes") == "nothing yet"
    type_message(driver, "My name is Emma. I love astronomy and the stars.")
    wait.until(lambda d: text_of(d, "affinity-points") == "5")
    assert text_of(driver, "idle-countdown").endswith(" s")
    assert text_of(driver, "absolute-deadline") != "–"
    shot(driver, "countdown")

    wait.until(lambda d: text_of(d, "status").startswith("The session timed out after being idle."))
    assert not driver.find_element(By.ID, "message").is_enabled()
    assert text_of(driver, "idle-countdown") == "ended"
    wait.until(lambda d: text_of(d, "recall-episodes").startswith("My name is Emma."))

    driver.find_element(By.ID, "start").click()  # reconnect: a new session
    wait.until(lambda d: d.find_element(By.ID, "message").is_enabled())
    greeting = driver.find_elements(By.CSS_SELECTOR, "#log .msg.assistant")[-1].text
    assert greeting.startswith("Welcome back, Emma! Last time you told me:")
    facts = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#recall-facts li")]
    assert any(f.startswith("name: Emma") for f in facts)
    assert text_of(driver, "affinity-points") == "5"
    shot(driver, "recall")
