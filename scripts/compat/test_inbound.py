"""Compatibility tests: hookd's inbound sources (the Svix ingest API) receive
requests signed by the providers' own libraries, pinned in requirements.txt:
stripe, slack_sdk, twilio, standardwebhooks, and the svix SDK's ingest clients.

Each test makes its own source with one ingest endpoint pointing at the loopback
sink, sends to the source's `ingestUrl` as the provider would, and checks what a
user relies on: a genuine request is acknowledged (2xx) and forwarded, signed
with Standard Webhooks under the ingest endpoint's secret; a forged, tampered or
stale one is refused with 401.

The server and sink fixtures and a few helpers are test_svix_sdk.py's (`hookd serve`
on an ephemeral port with a temporary data dir; `$HOOKD_BIN`).
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
import standardwebhooks
import stripe
from slack_sdk.signature import SignatureVerifier
from svix.api import IngestEndpointIn, IngestSourceIn, Svix, SvixOptions
from svix.api.ingest_source import IngestSourceListOptions
from svix.models import StripeConfig
from twilio.request_validator import RequestValidator

from test_svix_sdk import TOKEN, server, sink, unique, wait_until  # noqa: F401 (server, sink: fixtures)

# How long a verified request may take to reach the sink.
FORWARD_TIMEOUT = 20.0
# This module's server, for conftest.py to show its log under a failed test.
RUNNING_SERVER = None


@pytest.fixture(autouse=True)
def _show_log_on_failure(server):
    global RUNNING_SERVER
    RUNNING_SERVER = server


# --------------------------------------------------------------------------- helpers


def send(url: str, body, headers=None, method: str = "POST"):
    """Sends a request as a provider would; returns (status, body text)."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def api(server, method: str, path: str, body=None):
    """Calls hookd's management API as the admin; returns (status, parsed JSON or None)."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    data = json.dumps(body) if body is not None else None
    status, text = send(server.base + path, data, headers, method)
    return status, (json.loads(text) if text else None)


@dataclass
class Source:
    id: str
    url: str  # the ingestUrl the provider is given
    endpoint_id: str
    path: str  # where its ingest endpoint forwards to on the sink


@pytest.fixture
def new_source(server, sink):
    """Makes a source of a type with one ingest endpoint to a fresh sink path;
    the test's sources are deleted when it ends."""
    made = []

    def make(kind: str, config: dict) -> Source:
        status, src = api(server, "POST", "/ingest/api/v1/source",
                          {"name": f"{kind} compat", "type": kind, "config": config})
        assert status == 201, src
        made.append(src["id"])
        assert not set(config) & set(src["config"]), "secrets are never shown again"
        path = sink.new_path()
        status, ep = api(server, "POST", f"/ingest/api/v1/source/{src['id']}/endpoint", {"url": sink.base + path})
        assert status == 201, ep
        return Source(src["id"], src["ingestUrl"], ep["id"], path)

    yield make
    for source_id in made:
        api(server, "DELETE", f"/ingest/api/v1/source/{source_id}")


def endpoint_secret(server, src: Source) -> str:
    status, out = api(server, "GET", f"/ingest/api/v1/source/{src.id}/endpoint/{src.endpoint_id}/secret")
    assert status == 200, out
    return out["key"]


def request_log(server, src: Source) -> list:
    """The source's received requests, newest first."""
    status, out = api(server, "GET", f"/ingest/api/v1/source/{src.id}/request")
    assert status == 200, out
    return out["data"]


def assert_forwarded(server, sink, src: Source, body: bytes):
    """The one request at the sink is `body` byte for byte, signed with the ingest endpoint's secret."""
    [got] = sink.wait_for(src.path, timeout=FORWARD_TIMEOUT)
    assert got.body == body
    assert got.headers["webhook-id"].startswith("msg_")
    verified = standardwebhooks.Webhook(endpoint_secret(server, src)).verify(got.body, got.headers)
    assert verified == json.loads(body)
    return got


def assert_refused(status: int, answer: str, src: Source, server):
    assert status == 401, answer
    newest = request_log(server, src)[0]
    assert newest["status"] == "rejected" and newest.get("msgId") is None, newest


def whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


# --------------------------------------------------------------------------- stripe


def stripe_event() -> str:
    return json.dumps({"id": unique("evt_"), "object": "event", "type": "payment_intent.succeeded",
                       "data": {"object": {"id": unique("pi_"), "amount": 2000, "currency": "usd"}}})


def test_stripe_signed_event_is_forwarded_with_standard_webhooks_signature(server, sink, new_source):
    secret = whsec()
    src = new_source("stripe", {"secret": secret})
    body = stripe_event()
    header = stripe.WebhookSignature.generate_signature_header(body, secret)

    status, answer = send(src.url, body, {"Stripe-Signature": header, "Content-Type": "application/json"})
    assert 200 <= status < 300, answer
    assert json.loads(answer)["id"].startswith("req_")
    assert_forwarded(server, sink, src, body.encode())

    def forwarded():
        log = request_log(server, src)
        return log if log[0]["status"] == "forwarded" else None

    [entry] = wait_until(forwarded, FORWARD_TIMEOUT, what="the request log to show it forwarded")
    assert entry["eventId"] == json.loads(body)["id"]
    assert entry["eventType"] == "payment_intent.succeeded"


def test_stripe_tampered_body_is_refused(server, sink, new_source):
    secret = whsec()
    src = new_source("stripe", {"secret": secret})
    body = stripe_event()
    header = stripe.WebhookSignature.generate_signature_header(body, secret)
    tampered = body.replace('"amount": 2000', '"amount": 1')
    assert tampered != body

    status, answer = send(src.url, tampered, {"Stripe-Signature": header, "Content-Type": "application/json"})
    assert_refused(status, answer, src, server)


# --------------------------------------------------------------------------- slack


def slack_event() -> str:
    return json.dumps({"token": "legacy", "team_id": "T1", "type": "event_callback", "event_id": unique("Ev"),
                       "event": {"type": "app_mention", "user": "U1", "text": "<@U2> hi", "channel": "C1"}})


def test_slack_signed_event_is_forwarded(server, sink, new_source):
    secret = unique("slack-signing-")
    src = new_source("slack", {"secret": secret})
    body = slack_event()
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)

    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature,
               "Content-Type": "application/json"}
    status, answer = send(src.url, body, headers)
    assert 200 <= status < 300, answer
    assert_forwarded(server, sink, src, body.encode())


def test_slack_stale_timestamp_is_refused(server, sink, new_source):
    secret = unique("slack-signing-")
    src = new_source("slack", {"secret": secret})
    body = slack_event()
    stale = str(int(time.time()) - 6 * 60)
    verifier = SignatureVerifier(secret)
    signature = verifier.generate_signature(timestamp=stale, body=body)
    assert not verifier.is_valid(body=body, timestamp=stale, signature=signature), "slack_sdk refuses it too"

    headers = {"X-Slack-Request-Timestamp": stale, "X-Slack-Signature": signature,
               "Content-Type": "application/json"}
    status, answer = send(src.url, body, headers)
    assert_refused(status, answer, src, server)


# --------------------------------------------------------------------------- twilio


def test_twilio_signed_form_post_is_forwarded_as_json(server, sink, new_source):
    token = unique("twilio-auth-")
    src = new_source("twilio", {"authToken": token})
    # A status callback URL with its own query string: Twilio signs the URL it calls, query included.
    url = src.url + "?tenant=acme"
    params = {"MessageSid": unique("SM"), "MessageStatus": "delivered", "To": "+15551234567",
              "From": "+15557654321", "Body": "caf\u00e9 & more = 100%"}
    signature = RequestValidator(token).compute_signature(url, params)

    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    status, answer = send(url, urllib.parse.urlencode(params), headers)
    assert 200 <= status < 300, answer
    [got] = sink.wait_for(src.path, timeout=FORWARD_TIMEOUT)
    forwarded = standardwebhooks.Webhook(endpoint_secret(server, src)).verify(got.body, got.headers)
    assert forwarded == params


def test_twilio_signature_with_the_wrong_token_is_refused(server, sink, new_source):
    src = new_source("twilio", {"authToken": unique("twilio-auth-")})
    params = {"MessageSid": unique("SM"), "MessageStatus": "sent"}
    signature = RequestValidator("not-the-auth-token").compute_signature(src.url, params)

    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    status, answer = send(src.url, urllib.parse.urlencode(params), headers)
    assert_refused(status, answer, src, server)


# --------------------------------------------------------------------------- standard webhooks


@pytest.mark.parametrize("kind,prefix", [("standard-webhooks", "webhook-"), ("svix", "svix-")])
def test_standard_webhooks_signed_event_is_forwarded(server, sink, new_source, kind, prefix):
    secret = whsec()
    src = new_source(kind, {"secret": secret})
    body = json.dumps({"type": "invoice.paid", "data": {"invoice": unique("inv_")}})
    msg_id = unique("msg_")
    now = datetime.now(timezone.utc)
    signature = standardwebhooks.Webhook(secret).sign(msg_id, now, body)

    headers = {f"{prefix}id": msg_id, f"{prefix}timestamp": str(int(now.timestamp())),
               f"{prefix}signature": signature, "Content-Type": "application/json"}
    status, answer = send(src.url, body, headers)
    assert 200 <= status < 300, answer
    assert_forwarded(server, sink, src, body.encode())

    # Signed with another secret: refused.
    other = standardwebhooks.Webhook(whsec()).sign(unique("msg_"), now, body)
    status, answer = send(src.url, body, {**headers, f"{prefix}signature": other})
    assert_refused(status, answer, src, server)


# --------------------------------------------------------------------------- svix SDK


def test_svix_sdk_ingest_clients_create_a_working_source(server, sink):
    svix = Svix(TOKEN, SvixOptions(server_url=server.base))
    secret = whsec()
    uid = unique("stripe-")
    source = svix.ingest.source.create(IngestSourceIn(name="Stripe via SDK", uid=uid, type="stripe",
                                                      config=StripeConfig(secret=secret)))
    try:
        assert source.id.startswith("src_") and source.uid == uid and source.type == "stripe"
        assert source.ingest_url.startswith(server.base + "/ingest/")
        assert svix.ingest.source.get(uid).id == source.id
        listed = svix.ingest.source.list(IngestSourceListOptions(limit=250)).data
        assert source.id in [s.id for s in listed]

        path = sink.new_path()
        endpoint = svix.ingest.endpoint.create(source.id, IngestEndpointIn(url=sink.base + path))
        assert endpoint.url == sink.base + path
        assert [e.id for e in svix.ingest.endpoint.list(source.id).data] == [endpoint.id]
        key = svix.ingest.endpoint.get_secret(source.id, endpoint.id).key

        body = stripe_event()
        header = stripe.WebhookSignature.generate_signature_header(body, secret)
        status, answer = send(source.ingest_url, body, {"Stripe-Signature": header, "Content-Type": "application/json"})
        assert 200 <= status < 300, answer
        [got] = sink.wait_for(path, timeout=FORWARD_TIMEOUT)
        assert standardwebhooks.Webhook(key).verify(got.body, got.headers) == json.loads(body)
    finally:
        svix.ingest.source.delete(source.id)


def test_svix_sdk_lists_and_reads_sources_of_hookd_only_types(server, new_source):
    # hookd's own types are shown to the SDK as generic-webhook, the real type
    # in the extension field hookdType.
    made = new_source("twilio", {"authToken": unique("twilio-auth-")})
    svix = Svix(TOKEN, SvixOptions(server_url=server.base))
    listed = svix.ingest.source.list(IngestSourceListOptions(limit=250)).data
    assert made.id in [s.id for s in listed]
    assert svix.ingest.source.get(made.id).id == made.id
    status, raw = api(server, "GET", f"/ingest/api/v1/source/{made.id}")
    assert status == 200
    assert (raw["type"], raw["hookdType"], raw["hookdConfig"]) == ("generic-webhook", "twilio", {})
