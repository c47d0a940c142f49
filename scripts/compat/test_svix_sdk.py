"""Compatibility tests: the public svix Python SDK (pinned svix==2.9.1) against
the real hookd binary.

Every test talks to a real `hookd serve` (started once per session on an
ephemeral port with a temporary data dir) through the unmodified SDK, and every
webhook hookd sends lands on a real HTTP sink on 127.0.0.1, where it is verified
with both `standardwebhooks==1.1.0` and `svix.webhooks.Webhook`.

Tests are independent: each makes its own application, event type names and
sink paths (random suffixes), so any one of them can run alone.

The binary is `$HOOKD_BIN`, else `target/debug/hookd` under the repo root.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import standardwebhooks.webhooks as stdwh
from svix.api import (
    AppPortalAccessIn,
    ApplicationIn,
    ApplicationListOptions,
    ApplicationPatch,
    BackgroundTaskListOptions,
    BackgroundTaskStatus,
    BackgroundTaskType,
    EndpointGetStatsOptions,
    EndpointHeadersIn,
    EndpointHeadersPatchIn,
    EndpointIn,
    EndpointListOptions,
    EndpointPatch,
    EndpointSecretRotateIn,
    EndpointUpsertIn,
    EventExampleIn,
    EventTypeDeleteOptions,
    EventTypeIn,
    EventTypeListOptions,
    EventTypePatch,
    EventTypeUpsertIn,
    MessageAttemptListAttemptedMessagesOptions,
    MessageAttemptListByEndpointOptions,
    MessageAttemptListByMsgOptions,
    MessageCreateOptions,
    MessageGetOptions,
    MessageIn,
    MessageListOptions,
    MessageStatus,
    Ordering,
    RecoverIn,
    ReplayIn,
    StatusCodeClass,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError, HTTPValidationError
from svix.models import EmptyResponse
from svix.webhooks import Webhook as SvixWebhook

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "sk_sdk_compat_admin_token"
# A Standard Webhooks secret (24 random bytes, fixed so failures reproduce).
SECRET = "whsec_" + base64.b64encode(b"hookd-sdk-compat-secret!").decode()
STARTUP_TIMEOUT = 20.0
DELIVERY_TIMEOUT = 10.0
# The session's server, for conftest.py to show its log under a failed test.
RUNNING_SERVER = None


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def wait_until(predicate, timeout: float = DELIVERY_TIMEOUT, interval: float = 0.05, what: str = "condition"):
    """Polls `predicate` until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


# --------------------------------------------------------------------------- sink


class Received:
    """One request the sink got."""

    def __init__(self, method: str, path: str, headers: Dict[str, str], body: bytes):
        self.method = method
        self.path = path
        self.headers = headers  # lower-cased names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Received({self.method} {self.path} {self.body[:80]!r})"


class Sink:
    """A real HTTP receiver on 127.0.0.1 that records every request and
    answers 200 (or the status set for a path with `set_status`)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._received: List[Received] = []
        self._status: Dict[str, int] = {}
        self._delay: Dict[str, float] = {}
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this, Nagle's
            # algorithm and delayed ACKs hold every response back ~40 ms.
            disable_nagle_algorithm = True

            def _handle(self):
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with sink._cond:
                    status = sink._status.get(self.path, 200)
                    delay = sink._delay.get(self.path, 0.0)
                    sink._received.append(Received(self.command, self.path, headers, body))
                    sink._cond.notify_all()
                if delay:
                    time.sleep(delay)
                reply = b"ok" if status < 300 else b"failing on purpose"
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_POST = _handle
            do_PUT = _handle
            do_GET = _handle

            def log_message(self, *args):  # keep pytest output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def new_path(self) -> str:
        return "/hook/" + uuid.uuid4().hex

    def set_status(self, path: str, status: int) -> None:
        with self._cond:
            self._status[path] = status

    def set_delay(self, path: str, seconds: float) -> None:
        """Answers requests to `path` only after `seconds`."""
        with self._cond:
            self._delay[path] = seconds

    def received(self, path: str) -> List[Received]:
        with self._cond:
            return [r for r in self._received if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = DELIVERY_TIMEOUT) -> List[Received]:
        """Waits until `path` got at least `count` requests; returns them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self._received if r.path == path]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"sink path {path} got {len(got)} request(s), expected {count}: {got}")
                self._cond.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --------------------------------------------------------------------------- server


class Server:
    def __init__(self, base: str, proc: subprocess.Popen, log_path: Path):
        self.base = base
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def hookd_binary() -> Path:
    raw = os.environ.get("HOOKD_BIN", "target/debug/hookd")
    path = Path(raw)
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        pytest.fail(f"hookd binary not found at {path}: build it with `cargo build -p hookd` or set HOOKD_BIN")
    return path


@pytest.fixture(scope="session")
def server():
    data_dir = Path(tempfile.mkdtemp(prefix="hookd-sdk-"))
    log_path = data_dir / "hookd.log"
    # The server is configured by its flags alone: no HOOKD_* from the caller's environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}
    env["HOOKD_LOG"] = os.environ.get("HOOKD_SDK_TEST_LOG", "warn")
    cmd = [
        str(hookd_binary()),
        "serve",
        "--listen", "127.0.0.1:0",
        "--data-dir", str(data_dir / "data"),
        "--admin-token", TOKEN,
        "--retry-schedule", "200ms,200ms",
        "--poll-interval", "100ms",
        "--allow-private-networks",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env)
    lines: "queue.Queue[Optional[str]]" = queue.Queue()

    def pump():
        for raw in proc.stdout:  # keep draining so the server never blocks on a full pipe
            lines.put(raw.decode(errors="replace").rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    base = None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while base is None:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            proc.kill()
            raise RuntimeError(f"hookd did not print its listening line; log:\n{log_path.read_text(errors='replace')}")
        if line.startswith("listening on "):
            base = line[len("listening on "):].strip()
    srv = Server(base, proc, log_path)
    global RUNNING_SERVER
    RUNNING_SERVER = srv
    try:
        yield srv
    finally:
        RUNNING_SERVER = None
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture(scope="session")
def svix(server) -> Svix:
    return Svix(TOKEN, SvixOptions(server_url=server.base))


@pytest.fixture
def app(svix):
    """A fresh application for one test, deleted afterwards."""
    out = svix.application.create(ApplicationIn(name="sdk compat", uid=unique("app-")))
    yield out
    try:
        svix.application.delete(out.id)
    except HttpError:
        pass


@pytest.fixture
def event_type(svix):
    """A fresh registered event type (org-wide, so its name is unique per test)."""
    name = unique("sdk.test.")
    svix.event_type.create(EventTypeIn(name=name, description="made by the SDK compat tests"))
    return name


# --------------------------------------------------------------------------- helpers


def verify(received: Received, secret: str):
    """Verifies a delivered request with both public verifiers; returns the parsed body."""
    stdwh.Webhook(secret).verify(received.body, received.headers)
    SvixWebhook(secret).verify(received.body, received.headers)
    # Both header spellings are sent and agree.
    for name in ("id", "timestamp", "signature"):
        assert received.headers[f"webhook-{name}"] == received.headers[f"svix-{name}"]
    return received.json()


def assert_rejected(received: Received, secret: str):
    with pytest.raises(stdwh.WebhookVerificationError):
        stdwh.Webhook(secret).verify(received.body, received.headers)
    with pytest.raises(stdwh.WebhookVerificationError):
        SvixWebhook(secret).verify(received.body, received.headers)


def make_endpoint(svix, sink, app_id: str, **kwargs):
    path = sink.new_path()
    kwargs.setdefault("secret", SECRET)
    ep = svix.endpoint.create(app_id, EndpointIn(url=sink.base + path, **kwargs))
    return ep, path


def ago(**kw) -> datetime:
    return datetime.now(timezone.utc) - timedelta(**kw)


# --------------------------------------------------------------------------- tests


def test_health(svix):
    assert svix.health.get() is None


def test_application_lifecycle(svix):
    uid = unique("app-")
    created = svix.application.create(ApplicationIn(name="first", uid=uid, metadata={"team": "a"}))
    assert created.id.startswith("app_")
    assert created.uid == uid
    assert created.name == "first"
    assert created.metadata == {"team": "a"}
    assert created.created_at.tzinfo is not None

    assert svix.application.get(created.id).id == created.id
    assert svix.application.get(uid).id == created.id  # by uid

    # get_or_create finds the existing one by uid, and creates a missing one.
    same = svix.application.get_or_create(ApplicationIn(name="ignored", uid=uid))
    assert same.id == created.id and same.name == "first"
    other_uid = unique("app-")
    other = svix.application.get_or_create(ApplicationIn(name="second", uid=other_uid))
    assert other.id != created.id and other.uid == other_uid

    page = svix.application.list(ApplicationListOptions(limit=250))
    ids = {a.id for a in page.data}
    assert {created.id, other.id} <= ids
    assert isinstance(page.done, bool)

    # Paging with a small limit walks every app exactly once.
    seen: List[str] = []
    iterator = None
    while True:
        p = svix.application.list(ApplicationListOptions(limit=1, iterator=iterator))
        seen.extend(a.id for a in p.data)
        if p.done:
            break
        iterator = p.iterator
    assert len(seen) == len(set(seen))
    assert {created.id, other.id} <= set(seen)

    # "update" in SDK 2.9.1 is upsert (PUT).
    updated = svix.application.upsert(created.id, ApplicationIn(name="renamed", uid=uid, throttle_rate=50))
    assert updated.id == created.id and updated.name == "renamed" and updated.throttle_rate == 50
    upserted_uid = unique("app-")
    upserted = svix.application.upsert(upserted_uid, ApplicationIn(name="via put", uid=upserted_uid))
    assert upserted.uid == upserted_uid

    patched = svix.application.patch(created.id, ApplicationPatch(metadata={"team": "b"}))
    assert patched.name == "renamed" and patched.metadata == {"team": "b"} and patched.throttle_rate == 50
    cleared = svix.application.patch(created.id, ApplicationPatch(throttle_rate=None))
    assert cleared.throttle_rate is None and cleared.name == "renamed"

    for app_id in (created.id, other.id, upserted.id):
        assert svix.application.delete(app_id) is None
    with pytest.raises(HttpError) as e:
        svix.application.get(created.id)
    assert e.value.status_code == 404


def test_unknown_app_is_http_error_404(svix):
    with pytest.raises(HttpError) as e:
        svix.application.get("app_doesnotexist" + uuid.uuid4().hex[:8])
    assert e.value.status_code == 404
    assert e.value.code  # e.g. "not_found"
    assert isinstance(e.value.detail, str)


def test_event_type_lifecycle(svix):
    name = unique("sdk.lifecycle.")
    schema = {"1": {"type": "object", "examples": [{"hello": "world"}]}}
    created = svix.event_type.create(
        EventTypeIn(name=name, description="first", schemas=schema, feature_flags=["beta"], group_name="sdk")
    )
    assert created.name == name and created.description == "first"
    assert created.deprecated is False
    assert created.schemas == schema
    assert created.feature_flags == ["beta"]
    assert created.group_name == "sdk"

    got = svix.event_type.get(name)
    assert got.name == name and got.description == "first"

    listed = svix.event_type.list(EventTypeListOptions(limit=250))
    assert name in {e.name for e in listed.data}

    # Creating the same name again is a conflict.
    with pytest.raises(HttpError) as e:
        svix.event_type.create(EventTypeIn(name=name, description="again"))
    assert e.value.status_code == 409

    updated = svix.event_type.upsert(name, EventTypeUpsertIn(description="second", deprecated=True))
    assert updated.description == "second" and updated.deprecated is True
    patched = svix.event_type.patch(name, EventTypePatch(description="third"))
    assert patched.description == "third" and patched.deprecated is True

    # Delete archives: gone from the default list, present with include_archived.
    assert svix.event_type.delete(name) is None
    assert name not in {e.name for e in svix.event_type.list(EventTypeListOptions(limit=250)).data}
    archived = [e for e in svix.event_type.list(EventTypeListOptions(limit=250, include_archived=True)).data if e.name == name]
    assert len(archived) == 1 and archived[0].archived is True


def test_endpoint_lifecycle(svix, sink, app):
    ep, path = make_endpoint(
        svix, sink, app.id,
        uid=unique("ep-"),
        description="primary",
        channels=["orders"],
        metadata={"k": "v"},
        headers={"X-Inline": "one", "X-Api-Key": "hidden"},
    )
    assert ep.id.startswith("ep_")
    assert ep.url == sink.base + path
    assert ep.description == "primary"
    assert ep.channels == ["orders"]
    assert ep.metadata == {"k": "v"}

    assert svix.endpoint.get(app.id, ep.id).url == ep.url
    assert svix.endpoint.get(app.id, ep.uid).id == ep.id  # by uid
    assert [e.id for e in svix.endpoint.list(app.id, EndpointListOptions()).data] == [ep.id]

    assert svix.endpoint.get_secret(app.id, ep.id).key == SECRET

    headers = svix.endpoint.get_headers(app.id, ep.id)
    assert headers.headers.get("X-Inline") == "one"
    assert "X-Api-Key" in headers.sensitive and "X-Api-Key" not in headers.headers

    assert svix.endpoint.set_headers(app.id, ep.id, EndpointHeadersIn(headers={"X-A": "1", "X-B": "2"})) is None
    assert svix.endpoint.get_headers(app.id, ep.id).headers == {"X-A": "1", "X-B": "2"}
    assert svix.endpoint.patch_headers(
        app.id, ep.id, EndpointHeadersPatchIn(headers={"X-C": "3"}, delete_headers=["X-A"])
    ) is None
    assert svix.endpoint.get_headers(app.id, ep.id).headers == {"X-B": "2", "X-C": "3"}

    # "update" in SDK 2.9.1 is upsert (PUT).
    new_url = sink.base + sink.new_path()
    updated = svix.endpoint.upsert(app.id, ep.id, EndpointUpsertIn(url=new_url, description="updated", uid=ep.uid))
    assert updated.id == ep.id and updated.url == new_url and updated.description == "updated"
    patched = svix.endpoint.patch(app.id, ep.id, EndpointPatch(disabled=True, description="patched"))
    assert patched.disabled is True and patched.description == "patched" and patched.url == new_url
    # Patching does not touch the secret.
    assert svix.endpoint.get_secret(app.id, ep.id).key == SECRET

    stats = svix.endpoint.get_stats(app.id, ep.id)
    assert (stats.success, stats.pending, stats.sending, stats.fail, stats.canceled) == (0, 0, 0, 0, 0)

    assert svix.endpoint.delete(app.id, ep.id) is None
    with pytest.raises(HttpError) as e:
        svix.endpoint.get(app.id, ep.id)
    assert e.value.status_code == 404


def test_endpoint_generated_secret(svix, sink, app):
    # No secret given: the server generates a `whsec_` one.
    ep = svix.endpoint.create(app.id, EndpointIn(url=sink.base + sink.new_path()))
    key = svix.endpoint.get_secret(app.id, ep.id).key
    assert key.startswith("whsec_") and len(base64.b64decode(key[len("whsec_"):])) >= 24
    assert ep.description == ""
    assert ep.metadata == {}


def test_endpoint_bad_url_is_http_validation_error_422(svix, app):
    with pytest.raises(HTTPValidationError) as e:
        svix.endpoint.create(app.id, EndpointIn(url="not a url"))
    assert e.value.status_code == 422
    assert isinstance(e.value.detail, list) and e.value.detail
    assert any("url" in [str(x) for x in item.loc] for item in e.value.detail)


def test_message_delivery_is_signed_and_queryable(svix, sink, app, event_type):
    ep, path = make_endpoint(svix, sink, app.id, channels=["orders"], headers={"X-Tenant": "t1"})
    payload = {"order": 42, "text": "héllo", "nested": {"ok": True}}
    event_id = unique("evt-")
    msg = svix.message.create(
        app.id, MessageIn(event_type=event_type, payload=payload, event_id=event_id, channels=["orders"])
    )
    assert msg.id.startswith("msg_")
    assert msg.event_id == event_id
    assert msg.event_type == event_type
    assert msg.channels == ["orders"]
    assert msg.payload == {}  # SDK 2.9.1 sends with_content=false on create

    [got] = sink.wait_for(path)
    assert got.method == "POST"
    assert verify(got, SECRET) == payload
    assert got.headers["webhook-id"] == msg.id
    assert got.headers["x-tenant"] == "t1"
    assert got.headers["content-type"].startswith("application/json")
    # A wrong secret must not verify.
    assert_rejected(got, "whsec_" + base64.b64encode(b"some-other-secret-123456").decode())

    # with_content=True gives the payload back.
    full = svix.message.create(
        app.id, MessageIn(event_type=event_type, payload={"n": 2}, channels=["orders"]),
        MessageCreateOptions(with_content=True),
    )
    assert full.payload == {"n": 2}
    sink.wait_for(path, 2)

    assert svix.message.get(app.id, msg.id).payload == {}
    assert svix.message.get(app.id, msg.id, MessageGetOptions(with_content=True)).payload == payload
    by_event_id = svix.message.get(app.id, event_id, MessageGetOptions(with_content=True))
    assert by_event_id.id == msg.id

    other_type = unique("sdk.other.")
    svix.message.create(app.id, MessageIn(event_type=other_type, payload={"other": True}))

    everything = svix.message.list(app.id, MessageListOptions(limit=50))
    assert {msg.id, full.id} <= {m.id for m in everything.data}
    assert len(everything.data) == 3
    filtered = svix.message.list(app.id, MessageListOptions(event_types=[event_type], with_content=True))
    assert sorted(m.id for m in filtered.data) == sorted([msg.id, full.id])
    assert all(m.event_type == event_type for m in filtered.data)
    assert {m.id: m.payload for m in filtered.data}[msg.id] == payload
    two_types = svix.message.list(app.id, MessageListOptions(event_types=[event_type, other_type]))
    assert len(two_types.data) == 3
    by_channel = svix.message.list(app.id, MessageListOptions(channel="orders"))
    assert sorted(m.id for m in by_channel.data) == sorted([msg.id, full.id])

    assert svix.message.expunge_content(app.id, msg.id) is None
    after = svix.message.get(app.id, msg.id, MessageGetOptions(with_content=True))
    assert after.id == msg.id and after.payload == {}


def test_channels_filter_fan_out(svix, sink, app, event_type):
    ep_a, path_a = make_endpoint(svix, sink, app.id, channels=["a"])
    ep_b, path_b = make_endpoint(svix, sink, app.id, channels=["b"])
    ep_typed, path_typed = make_endpoint(svix, sink, app.id, event_types=[event_type])
    msg = svix.message.create(app.id, MessageIn(event_type=event_type, payload={"x": 1}, channels=["a"]))
    [got] = sink.wait_for(path_a)
    assert verify(got, SECRET) == {"x": 1}
    [got] = sink.wait_for(path_typed)
    assert verify(got, SECRET) == {"x": 1}
    dests = svix.message_attempt.list_attempted_destinations(app.id, msg.id)
    assert {d.id for d in dests.data} == {ep_a.id, ep_typed.id}
    assert sink.received(path_b) == []


def test_duplicate_event_id_is_http_error_409(svix, app, event_type):
    event_id = unique("evt-")
    first = svix.message.create(app.id, MessageIn(event_type=event_type, payload={"n": 1}, event_id=event_id))
    with pytest.raises(HttpError) as e:
        svix.message.create(app.id, MessageIn(event_type=event_type, payload={"n": 2}, event_id=event_id))
    assert e.value.status_code == 409
    assert e.value.code
    assert [m.id for m in svix.message.list(app.id).data] == [first.id]


def test_idempotency_key_returns_the_same_message(svix, app, event_type):
    opts = MessageCreateOptions(idempotency_key=unique("idem-"))
    a = svix.message.create(app.id, MessageIn(event_type=event_type, payload={"n": 1}), opts)
    b = svix.message.create(app.id, MessageIn(event_type=event_type, payload={"n": 1}), opts)
    assert a.id == b.id
    assert len(svix.message.list(app.id).data) == 1


def test_message_attempts_and_resend(svix, sink, app, event_type):
    ep, path = make_endpoint(svix, sink, app.id)
    msg = svix.message.create(app.id, MessageIn(event_type=event_type, payload={"attempt": 1}))
    [first] = sink.wait_for(path)
    verify(first, SECRET)

    def success_attempts():
        data = svix.message_attempt.list_by_endpoint(app.id, ep.id).data
        return data if data and all(a.status == 0 for a in data) else None

    [attempt] = wait_until(success_attempts, what="a recorded successful attempt")
    assert attempt.id.startswith("atmpt_")
    assert attempt.msg_id == msg.id and attempt.endpoint_id == ep.id
    assert attempt.url == ep.url
    assert attempt.response_status_code == 200
    assert attempt.status_text == "success"
    assert int(attempt.trigger_type) == 0

    by_msg = svix.message_attempt.list_by_msg(app.id, msg.id)
    assert [a.id for a in by_msg.data] == [attempt.id]
    filtered = svix.message_attempt.list_by_msg(app.id, msg.id, MessageAttemptListByMsgOptions(endpoint_id=ep.id))
    assert [a.id for a in filtered.data] == [attempt.id]
    none = svix.message_attempt.list_by_endpoint(app.id, ep.id, MessageAttemptListByEndpointOptions(status=MessageStatus.FAIL))
    assert none.data == []

    got = svix.message_attempt.get(app.id, msg.id, attempt.id)
    assert got.id == attempt.id and got.response_status_code == 200 and got.response == "ok"

    dests = svix.message_attempt.list_attempted_destinations(app.id, msg.id)
    assert [d.id for d in dests.data] == [ep.id]
    assert dests.data[0].status == 0 and dests.data[0].url == ep.url

    msgs = svix.message_attempt.list_attempted_messages(app.id, ep.id)
    assert [m.id for m in msgs.data] == [msg.id]
    assert msgs.data[0].status == 0 and msgs.data[0].event_type == event_type

    assert isinstance(svix.message_attempt.resend(app.id, msg.id, ep.id), EmptyResponse)
    first_again, second = sink.wait_for(path, 2)
    assert verify(second, SECRET) == {"attempt": 1}
    # The webhook id is stable across sends of one message to one endpoint.
    assert second.headers["webhook-id"] == first.headers["webhook-id"] == msg.id

    def two_attempts():
        data = svix.message_attempt.list_by_msg(app.id, msg.id).data
        return data if len(data) == 2 and all(a.status == 0 for a in data) else None

    attempts = wait_until(two_attempts, what="the resend's attempt")
    assert sorted(int(a.trigger_type) for a in attempts) == [0, 1]  # scheduled, manual

    stats = svix.endpoint.get_stats(app.id, ep.id)
    assert stats.success >= 1 and stats.fail == 0 and stats.canceled == 0


def test_rotate_secret(svix, sink, app, event_type):
    ep, path = make_endpoint(svix, sink, app.id)
    rotated = svix.endpoint.rotate_secret(app.id, ep.id, EndpointSecretRotateIn())
    assert rotated is not None and rotated.key.startswith("whsec_") and rotated.key != SECRET
    assert svix.endpoint.get_secret(app.id, ep.id).key == rotated.key

    svix.message.create(app.id, MessageIn(event_type=event_type, payload={"after": "rotation"}))
    [got] = sink.wait_for(path)
    assert verify(got, rotated.key) == {"after": "rotation"}
    # During the default grace period the old secret still signs too.
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    verify(got, SECRET)

    # A chosen key, with no grace period: only it signs.
    chosen = "whsec_" + base64.b64encode(b"a-chosen-secret-of-24-by").decode()
    out = svix.endpoint.rotate_secret(app.id, ep.id, EndpointSecretRotateIn(key=chosen, grace_period_seconds=0))
    assert out.key == chosen
    svix.message.create(app.id, MessageIn(event_type=event_type, payload={"after": "second"}))
    _, got2 = sink.wait_for(path, 2)
    assert verify(got2, chosen) == {"after": "second"}
    assert_rejected(got2, rotated.key)


def test_send_example(svix, sink, app):
    name = unique("sdk.example.")
    example = {"example": True, "id": 7}
    svix.event_type.create(
        EventTypeIn(name=name, description="has an example", schemas={"1": {"type": "object", "examples": [example]}})
    )
    ep, path = make_endpoint(svix, sink, app.id)
    out = svix.endpoint.send_example(app.id, ep.id, EventExampleIn(event_type=name))
    assert out.id.startswith("msg_") and out.event_type == name
    [got] = sink.wait_for(path)
    assert verify(got, SECRET) == example

    custom = svix.endpoint.send_example(app.id, ep.id, EventExampleIn(event_type=name, payload={"custom": 1}))
    assert custom.id != out.id
    _, got2 = sink.wait_for(path, 2)
    assert verify(got2, SECRET) == {"custom": 1}


def test_recover_failed_deliveries(svix, sink, app, event_type):
    ep, path = make_endpoint(svix, sink, app.id)
    sink.set_status(path, 500)
    since = ago(minutes=1)
    msg = svix.message.create(app.id, MessageIn(event_type=event_type, payload={"recover": "me"}))
    # --retry-schedule 200ms,200ms: three attempts, then the delivery fails.
    sink.wait_for(path, 3)

    def failed():
        data = svix.message_attempt.list_attempted_messages(app.id, ep.id).data
        return data if data and data[0].status == 2 else None

    wait_until(failed, what="the delivery to be marked failed")
    stats = svix.endpoint.get_stats(app.id, ep.id)
    assert stats.fail == 1 and stats.success == 0
    attempts = svix.message_attempt.list_by_endpoint(app.id, ep.id).data
    assert len(attempts) == 3 and all(a.response_status_code == 500 and a.status == 2 for a in attempts)
    only_failed = svix.message_attempt.list_by_endpoint(app.id, ep.id, MessageAttemptListByEndpointOptions(status=MessageStatus.FAIL))
    assert len(only_failed.data) == 3
    for r in sink.received(path):
        verify(r, SECRET)

    sink.set_status(path, 200)
    task = svix.endpoint.recover(app.id, ep.id, RecoverIn(since=since))
    assert task.id and task.task == BackgroundTaskType.ENDPOINT_RECOVER
    received = sink.wait_for(path, 4)
    assert verify(received[3], SECRET) == {"recover": "me"}
    assert received[3].headers["webhook-id"] == msg.id

    def succeeded():
        data = svix.message_attempt.list_attempted_messages(app.id, ep.id).data
        return data if data and data[0].status == 0 else None

    wait_until(succeeded, what="the recovered delivery to succeed")

    # The recover runs as a background task the SDK can follow.
    def finished():
        t = svix.background_task.get(task.id)
        return t if t.status == BackgroundTaskStatus.FINISHED else None

    done = wait_until(finished, what="the recover task to finish")
    assert done.task == BackgroundTaskType.ENDPOINT_RECOVER and done.data["messagesSent"] == 1
    listed = svix.background_task.list(BackgroundTaskListOptions(task=BackgroundTaskType.ENDPOINT_RECOVER)).data
    assert task.id in [t.id for t in listed]


def test_recover_further_back_than_fourteen_days_is_http_validation_error_422(svix, sink, app):
    ep, _ = make_endpoint(svix, sink, app.id)
    with pytest.raises(HTTPValidationError) as e:
        svix.endpoint.recover(app.id, ep.id, RecoverIn(since=ago(minutes=15 * 24 * 60)))
    assert e.value.detail[0].loc == ["body", "since"]


def test_replay_missing(svix, sink, app, event_type):
    since = ago(minutes=1)
    # Sent while the application has no endpoint: nothing is delivered.
    msg = svix.message.create(app.id, MessageIn(event_type=event_type, payload={"missed": True}))
    ep, path = make_endpoint(svix, sink, app.id)
    assert svix.message_attempt.list_attempted_messages(app.id, ep.id).data == []

    task = svix.endpoint.replay_missing(app.id, ep.id, ReplayIn(since=since))
    assert task.id and task.task == BackgroundTaskType.ENDPOINT_REPLAY
    [got] = sink.wait_for(path)
    assert verify(got, SECRET) == {"missed": True}
    assert got.headers["webhook-id"] == msg.id

    # Replaying again sends nothing new: the message is no longer missing.
    svix.endpoint.replay_missing(app.id, ep.id, ReplayIn(since=since))
    time.sleep(0.5)
    assert len(sink.received(path)) == 1


def test_app_portal_access(svix, server, sink, app):
    out = svix.authentication.app_portal_access(app.id, AppPortalAccessIn())
    assert out.token and out.url
    # The portal token works through the SDK for its own application only.
    portal = Svix(out.token, SvixOptions(server_url=server.base))
    assert portal.application.get(app.id).id == app.id
    ep = portal.endpoint.create(app.id, EndpointIn(url=sink.base + sink.new_path()))
    assert [e.id for e in portal.endpoint.list(app.id).data] == [ep.id]
    other = svix.application.create(ApplicationIn(name="other", uid=unique("app-")))
    try:
        with pytest.raises(HttpError) as e:
            portal.application.get(other.id)
        assert e.value.status_code == 404
        # Sending messages takes an organisation token: 403 on its own
        # application, 404 on any other.
        with pytest.raises(HttpError) as e:
            portal.message.create(app.id, MessageIn(event_type="a.b", payload={"forged": True}))
        assert e.value.status_code == 403
        with pytest.raises(HttpError) as e:
            portal.message.create(other.id, MessageIn(event_type="a.b", payload={}))
        assert e.value.status_code == 404
    finally:
        svix.application.delete(other.id)


def test_bad_token_is_http_error_401(server):
    bad = Svix("sk_not_a_real_token", SvixOptions(server_url=server.base))
    with pytest.raises(HttpError) as e:
        bad.application.list()
    assert e.value.status_code == 401


def test_query_parameter_shapes(svix, sink, app, event_type):
    """Datetimes (sent as isoformat with +00:00), ordering, enum and bool params
    as SDK 2.9.1 serialises them, plus inline app creation and hard delete."""
    ep, path = make_endpoint(svix, sink, app.id)
    before_all = ago(seconds=30)
    first = svix.message.create(app.id, MessageIn(event_type=event_type, payload={"i": 1}))
    time.sleep(0.01)
    second = svix.message.create(app.id, MessageIn(event_type=event_type, payload={"i": 2}))
    sink.wait_for(path, 2)
    later = datetime.now(timezone.utc) + timedelta(minutes=1)

    assert [m.id for m in svix.message.list(app.id).data] == [second.id, first.id]  # newest first
    assert len(svix.message.list(app.id, MessageListOptions(after=before_all, before=later)).data) == 2
    assert svix.message.list(app.id, MessageListOptions(after=later)).data == []
    assert svix.message.list(app.id, MessageListOptions(before=before_all)).data == []
    page = svix.message.list(app.id, MessageListOptions(limit=1))
    assert [m.id for m in page.data] == [second.id] and page.done is False and page.iterator
    rest = svix.message.list(app.id, MessageListOptions(limit=1, iterator=page.iterator))
    assert [m.id for m in rest.data] == [first.id]

    def two_done():
        data = svix.message_attempt.list_by_endpoint(app.id, ep.id).data
        return data if len(data) == 2 and all(a.status == MessageStatus.SUCCESS for a in data) else None

    wait_until(two_done, what="two successful attempts")
    ok = svix.message_attempt.list_by_endpoint(
        app.id, ep.id, MessageAttemptListByEndpointOptions(status_code_class=StatusCodeClass.CODE2XX, with_msg=True)
    )
    assert len(ok.data) == 2 and all(a.msg is not None and a.msg.event_type == event_type for a in ok.data)
    ranged = svix.message_attempt.list_by_endpoint(
        app.id, ep.id, MessageAttemptListByEndpointOptions(after=before_all, before=later, event_types=[event_type])
    )
    assert len(ranged.data) == 2

    stats = svix.endpoint.get_stats(app.id, ep.id, EndpointGetStatsOptions(since=before_all, until=later))
    assert stats.success == 2

    asc = svix.application.list(ApplicationListOptions(order=Ordering.ASCENDING, limit=250)).data
    desc = svix.application.list(ApplicationListOptions(order=Ordering.DESCENDING, limit=250)).data
    assert [a.id for a in asc] == [a.id for a in reversed(desc)]

    # A message may create its application inline (uid = the path's app id).
    inline_uid = unique("inline-")
    msg = svix.message.create(
        inline_uid, MessageIn(event_type=event_type, payload={}, application=ApplicationIn(name="inline"))
    )
    inline_app = svix.application.get(inline_uid)
    assert inline_app.uid == inline_uid and inline_app.name == "inline"
    assert svix.message.get(inline_uid, msg.id).id == msg.id
    svix.application.delete(inline_uid)

    # Event types: delete with expunge removes it entirely.
    name = unique("sdk.expunge.")
    svix.event_type.create(EventTypeIn(name=name, description="to expunge"))
    svix.event_type.delete(name, EventTypeDeleteOptions(expunge=True))
    with pytest.raises(HttpError) as e:
        svix.event_type.get(name)
    assert e.value.status_code == 404


def test_deleting_an_app_with_a_delivery_in_flight(svix, sink, event_type):
    """Regression: an outcome recorded after its application was deleted must not
    land on another delivery. (SQLite reused the deleted delivery's row id for the
    next message's delivery: the late outcome then updated that row, its attempt
    failed the foreign key on every retry, and the node stopped recording and
    sending anything at all.)"""
    doomed = svix.application.create(ApplicationIn(name="doomed", uid=unique("app-")))
    slow_ep, slow_path = make_endpoint(svix, sink, doomed.id)
    sink.set_delay(slow_path, 1.0)
    svix.message.create(doomed.id, MessageIn(event_type=event_type, payload={"slow": True}))
    sink.wait_for(slow_path)  # the request is in flight for another second
    svix.application.delete(doomed.id)

    app = svix.application.create(ApplicationIn(name="survivor", uid=unique("app-")))
    try:
        ep, path = make_endpoint(svix, sink, app.id)
        sent = [svix.message.create(app.id, MessageIn(event_type=event_type, payload={"i": i})).id for i in range(3)]
        got = sink.wait_for(path, 3)
        assert sorted(r.headers["webhook-id"] for r in got) == sorted(sent)
        time.sleep(1.0)  # the doomed request's outcome arrives meanwhile

        def all_succeeded():
            data = svix.message_attempt.list_attempted_messages(app.id, ep.id).data
            return data if len(data) == 3 and all(m.status == MessageStatus.SUCCESS for m in data) else None

        wait_until(all_succeeded, what="three successful deliveries")
        attempts = svix.message_attempt.list_by_endpoint(app.id, ep.id).data
        assert sorted(a.msg_id for a in attempts) == sorted(sent)
        # And the node still delivers afterwards.
        later = svix.message.create(app.id, MessageIn(event_type=event_type, payload={"later": True}))
        assert sink.wait_for(path, 4)[3].headers["webhook-id"] == later.id
    finally:
        svix.application.delete(app.id)


@pytest.fixture(scope="module")
def one_delivered(svix, sink):
    """An app with one endpoint and one delivered message (channel `c1`, tag `t1`)."""
    event_type = unique("sdk.filters.")
    app = svix.application.create(ApplicationIn(name="filters", uid=unique("app-")))
    ep, path = make_endpoint(svix, sink, app.id)
    msg = svix.message.create(
        app.id, MessageIn(event_type=event_type, payload={"f": 1}, channels=["c1"], tags=["t1"])
    )
    sink.wait_for(path)
    wait_until(
        lambda: svix.message_attempt.list_by_endpoint(app.id, ep.id).data,
        what="the attempt to be recorded",
    )
    yield app, ep, msg
    svix.application.delete(app.id)


ATTEMPT_FILTERS = [
    ("status_code_class", StatusCodeClass.CODE5XX),
    ("event_types", ["sdk.no.such.type"]),
    ("channel", "no-such-channel"),
    ("tag", "no-such-tag"),
]


@pytest.mark.parametrize(
    "call,name,value",
    [("list_by_endpoint", n, v) for n, v in ATTEMPT_FILTERS]
    + [("list_by_msg", n, v) for n, v in ATTEMPT_FILTERS]
    + [("list_attempted_messages", n, v) for n, v in ATTEMPT_FILTERS[1:]],
)
def test_attempt_list_filters_exclude_non_matching(svix, one_delivered, call, name, value):
    app, ep, msg = one_delivered
    if call == "list_by_endpoint":
        out = svix.message_attempt.list_by_endpoint(app.id, ep.id, MessageAttemptListByEndpointOptions(**{name: value}))
    elif call == "list_by_msg":
        out = svix.message_attempt.list_by_msg(app.id, msg.id, MessageAttemptListByMsgOptions(**{name: value}))
    else:
        out = svix.message_attempt.list_attempted_messages(
            app.id, ep.id, MessageAttemptListAttemptedMessagesOptions(**{name: value})
        )
    assert out.data == [], f"{call}({name}={value!r}) returned items that do not match"


def test_attempt_list_status_filter(svix, one_delivered):
    """The `status` filter, by contrast, is applied everywhere."""
    app, ep, msg = one_delivered
    fail = MessageStatus.FAIL
    assert svix.message_attempt.list_by_endpoint(app.id, ep.id, MessageAttemptListByEndpointOptions(status=fail)).data == []
    assert svix.message_attempt.list_by_msg(app.id, msg.id, MessageAttemptListByMsgOptions(status=fail)).data == []
    assert svix.message_attempt.list_attempted_messages(
        app.id, ep.id, MessageAttemptListAttemptedMessagesOptions(status=fail)
    ).data == []
    ok = MessageStatus.SUCCESS
    assert len(svix.message_attempt.list_by_msg(app.id, msg.id, MessageAttemptListByMsgOptions(status=ok)).data) == 1


def test_operational_webhook_endpoints(svix, sink, app):
    from svix.models import (
        OperationalWebhookEndpointHeadersIn,
        OperationalWebhookEndpointIn,
        OperationalWebhookEndpointSecretIn,
    )

    path = sink.new_path()
    ops = svix.operational_webhook.endpoint.create(
        OperationalWebhookEndpointIn(url=sink.base + path, event_types=["endpoint.created"], secret=SECRET)
    )
    try:
        assert ops.id and ops.event_types == ["endpoint.created"]
        assert any(e.id == ops.id for e in svix.operational_webhook.endpoint.list().data)
        assert svix.operational_webhook.endpoint.get(ops.id).url == sink.base + path
        assert svix.operational_webhook.endpoint.get_secret(ops.id).key == SECRET
        svix.operational_webhook.endpoint.set_headers(ops.id, OperationalWebhookEndpointHeadersIn(headers={"X-Ops": "1"}))
        assert svix.operational_webhook.endpoint.get_headers(ops.id).headers == {"X-Ops": "1"}

        # Creating an endpoint is reported, signed with the operational endpoint's secret.
        ep, _ = make_endpoint(svix, sink, app.id)

        def reported():
            for r in sink.received(path):
                body = verify(r, SECRET)
                if body["data"]["endpointId"] == ep.id:
                    return body
            return None

        event = wait_until(reported, what="endpoint.created to arrive")
        assert event["type"] == "endpoint.created" and event["data"]["appId"] == app.id
        assert sink.received(path)[0].headers["x-ops"] == "1"
        svix.operational_webhook.endpoint.rotate_secret(ops.id, OperationalWebhookEndpointSecretIn())
        assert svix.operational_webhook.endpoint.get_secret(ops.id).key != SECRET
    finally:
        svix.operational_webhook.endpoint.delete(ops.id)
    with pytest.raises(HttpError) as e:
        svix.operational_webhook.endpoint.get(ops.id)
    assert e.value.status_code == 404


def test_bulk_replay_of_dead_letters(svix, sink, app, event_type):
    from svix.models import BulkReplayIn

    ep, path = make_endpoint(svix, sink, app.id)
    sink.set_status(path, 500)
    since = ago(minutes=1)
    msg = svix.message.create(app.id, MessageIn(event_type=event_type, payload={"dead": "letter"}))
    sink.wait_for(path, 3)

    def dead():
        opts = MessageAttemptListAttemptedMessagesOptions(status=MessageStatus.FAIL)
        data = svix.message_attempt.list_attempted_messages(app.id, ep.id, opts).data
        return data or None

    assert [m.id for m in wait_until(dead, what="the dead letter")] == [msg.id]
    sink.set_status(path, 200)
    task = svix.endpoint.bulk_replay(
        app.id, ep.id, BulkReplayIn(since=since, event_types=[event_type], status=MessageStatus.FAIL)
    )
    assert task.task == BackgroundTaskType.ENDPOINT_BULK_REPLAY
    received = sink.wait_for(path, 4)
    assert verify(received[3], SECRET) == {"dead": "letter"}


def test_ed25519_v1a_signatures_verify_with_an_independent_implementation(svix, server, sink, app, event_type):
    """A `whsk_` secret (made here, not by hookd) signs `v1a`; the public key checks it."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, PrivateFormat, NoEncryption

    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key()
    secret = "whsk_" + base64.b64encode(seed).decode()
    ep, path = make_endpoint(svix, sink, app.id, secret=secret)
    assert svix.endpoint.get_secret(app.id, ep.id).key == secret

    svix.message.create(app.id, MessageIn(event_type=event_type, payload={"signed": "asymmetrically"}))
    [got] = sink.wait_for(path)
    signatures = got.headers["webhook-signature"].split(" ")
    assert [s.split(",")[0] for s in signatures] == ["v1a"]
    content = b".".join([got.headers["webhook-id"].encode(), got.headers["webhook-timestamp"].encode(), got.body])
    public.verify(base64.b64decode(signatures[0].split(",", 1)[1]), content)
    with pytest.raises(InvalidSignature):
        public.verify(base64.b64decode(signatures[0].split(",", 1)[1]), content + b" ")
    assert json.loads(got.body) == {"signed": "asymmetrically"}

    # The public key hookd shows (an extension field) is this key's.
    import urllib.request

    req = urllib.request.Request(
        f"{server.base}/api/v1/app/{app.id}/endpoint/{ep.id}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(req) as resp:
        shown = json.loads(resp.read())
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert shown["publicKey"] == "whpk_" + base64.b64encode(raw).decode()


def test_payload_encryption_decrypts_with_an_independent_jose_library(svix, server, sink, app, event_type):
    """An endpoint with an `encryptionKey` (a P-256 JWK made here) gets a JWE that jwcrypto decrypts."""
    import urllib.error
    import urllib.request

    from jwcrypto import jwe, jwk

    private = jwk.JWK.generate(kty="EC", crv="P-256")
    public = private.export_public(as_dict=True)
    path = sink.new_path()
    body = json.dumps({"url": sink.base + path, "secret": SECRET, "encryptionKey": public}).encode()
    req = urllib.request.Request(
        f"{server.base}/api/v1/app/{app.id}/endpoint", data=body, method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as resp:
        ep = json.loads(resp.read())
    assert ep["encryptionKey"]["x"] == public["x"]

    payload = {"card": "4111 1111 1111 1111", "amount": 42}
    svix.message.create(app.id, MessageIn(event_type=event_type, payload=payload))
    [got] = sink.wait_for(path)
    assert got.headers["content-type"] == "application/jose"
    assert b"4111" not in got.body
    # The signature covers the bytes sent: verify, then decrypt.
    import hashlib
    import hmac

    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{got.headers['webhook-id']}.{got.headers['webhook-timestamp']}.".encode() + got.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert f"v1,{expected}" in got.headers["webhook-signature"].split(" ")
    token = jwe.JWE()
    token.deserialize(got.body.decode(), key=private)
    assert json.loads(token.payload) == payload
    assert token.jose_header["alg"] == "ECDH-ES" and token.jose_header["enc"] == "A256GCM"
    # Another key cannot decrypt it.
    with pytest.raises(Exception):
        jwe.JWE().deserialize(got.body.decode(), key=jwk.JWK.generate(kty="EC", crv="P-256"))

    # A key that is not a P-256 public JWK is refused with the field named.
    bad = json.dumps({"url": sink.base + path, "encryptionKey": private.export_private(as_dict=True)}).encode()
    req = urllib.request.Request(
        f"{server.base}/api/v1/app/{app.id}/endpoint", data=bad, method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req)
    assert refused.value.code == 422
    assert json.loads(refused.value.read())["detail"][0]["loc"] == ["body", "encryptionKey"]


def test_event_types_import_from_openapi_and_validate_payloads(svix, server, app):
    """The SDK's OpenAPI import (YAML text) makes event types; one that validates
    refuses a payload its schema does not allow, with the failing place."""
    from svix.models import EventTypeImportOpenApiIn

    name = unique("sdk.pet.")
    spec_raw = f"""
openapi: 3.1.0
info: {{title: Pets, version: 1.0.0}}
webhooks:
  {name}:
    post:
      description: A new pet
      requestBody:
        content:
          application/json:
            schema: {{$ref: "#/components/schemas/Pet"}}
components:
  schemas:
    Pet: {{type: object, required: [id], properties: {{id: {{type: integer}}}}}}
"""
    dry = svix.event_type.import_openapi(EventTypeImportOpenApiIn(spec_raw=spec_raw, dry_run=True))
    assert dry.data.modified == [name]
    assert dry.data.to_modify[0].name == name
    with pytest.raises(HttpError):
        svix.event_type.get(name)
    done = svix.event_type.import_openapi(EventTypeImportOpenApiIn(spec_raw=spec_raw))
    assert done.data.modified == [name]
    et = svix.event_type.get(name)
    assert et.description == "A new pet"
    assert et.schemas["1"]["$defs"]["Pet"]["required"] == ["id"]

    # validatePayloads is an extension field: set over plain HTTP.
    import urllib.request

    req = urllib.request.Request(
        f"{server.base}/api/v1/event-type/{name}",
        data=json.dumps({"validatePayloads": True}).encode(),
        method="PATCH",
        headers={"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req) as resp:
        assert json.loads(resp.read())["validatePayloads"] is True
    with pytest.raises(HTTPValidationError) as refused:
        svix.message.create(app.id, MessageIn(event_type=name, payload={"id": "not a number"}))
    assert refused.value.detail[0].loc == ["body", "payload", "id"]
    svix.message.create(app.id, MessageIn(event_type=name, payload={"id": 7}))
