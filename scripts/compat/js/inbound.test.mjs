// Compatibility tests: hookd's inbound sources (the Svix ingest API) receive
// requests signed by the providers' own JavaScript libraries, pinned in
// package.json: @octokit/webhooks-methods (GitHub) and stripe.
//
// One real `hookd serve` (ephemeral port, temporary data dir, $HOOKD_BIN as in
// svix_sdk.test.mjs) and a loopback sink. Each test makes its own source with one
// ingest endpoint to its own sink path, sends to the source's `ingestUrl` as the
// provider would, and checks what a user relies on: a genuine request is answered
// 2xx and forwarded once, signed with Standard Webhooks under the ingest
// endpoint's secret; a provider's retry is answered 2xx and not forwarded again;
// a forgery is refused with 401.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import http from "node:http";
import { after, before, test } from "node:test";

import { sign as githubSign } from "@octokit/webhooks-methods";
import { Webhook as StdWebhook } from "standardwebhooks";
import Stripe from "stripe";

import { Hookd } from "../../lib/hookd.mjs";

const TOKEN = "sk_sdk_compat_admin_token";
const FORWARD_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 60_000;

const unique = (prefix) => `${prefix}${randomUUID().replaceAll("-", "").slice(0, 12)}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// A client for its webhook helpers only: it never calls Stripe.
const stripe = new Stripe("sk_test_hookd_compat");

/** Polls `fn` until it returns something truthy; returns that. */
async function waitUntil(fn, what, timeoutMs = FORWARD_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last value: ${JSON.stringify(last)})`);
}

// ------------------------------------------------------------------------ sink

/** A real HTTP receiver on 127.0.0.1 that records every request and answers 200. */
class Sink {
  constructor() {
    this.requests = [];
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        this.requests.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        res.writeHead(200, { "content-type": "text/plain", "content-length": 2 });
        res.end("ok");
      });
    });
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.base = `http://127.0.0.1:${this.server.address().port}`;
  }

  received(p) {
    return this.requests.filter((r) => r.path === p);
  }

  /** Waits until `p` got at least `count` requests; returns them all. */
  waitFor(p, count = 1) {
    return waitUntil(() => this.received(p).length >= count && this.received(p), `${count} request(s) at ${p}`);
  }

  async close() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

// ---------------------------------------------------------------------- server

/** `hookd serve` on an ephemeral port with a fresh data dir, as svix_sdk.test.mjs starts it. */
const hookd = new Hookd({ token: TOKEN, name: "hookd-inbound-js", logEnv: "HOOKD_SDK_TEST_LOG" });
const sink = new Sink();

before(async () => {
  await sink.start();
  await hookd.start();
});

after(async () => {
  await hookd.stop();
  await sink.close();
});

/** A test that shows the tail of hookd's log when it fails. */
function inboundTest(name, fn) {
  test(name, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      process.stderr.write(`\n--- hookd log (tail), for the failed test "${name}" ---\n${hookd.logTail()}\n---\n`);
      throw e;
    }
  });
}

// --------------------------------------------------------------------- helpers

/** Sends a request as a provider would; returns its status and body text. */
async function send(url, body, headers = {}, method = "POST") {
  const resp = await fetch(url, { method, body, headers });
  return { status: resp.status, text: await resp.text() };
}

/** Calls hookd's management API as the admin; returns its status and parsed body. */
async function api(method, p, body) {
  const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
  const { status, text } = await send(hookd.base + p, body === undefined ? undefined : JSON.stringify(body), headers, method);
  return { status, body: text ? JSON.parse(text) : null };
}

/** A source with one ingest endpoint to a fresh sink path, deleted when the test ends. */
async function newSource(t, type, config) {
  const src = await api("POST", "/ingest/api/v1/source", { name: `${type} compat`, type, config });
  assert.equal(src.status, 201, JSON.stringify(src.body));
  t.after(() => api("DELETE", `/ingest/api/v1/source/${src.body.id}`));
  const sinkPath = `/inbound/${randomUUID()}`;
  const ep = await api("POST", `/ingest/api/v1/source/${src.body.id}/endpoint`, { url: sink.base + sinkPath });
  assert.equal(ep.status, 201, JSON.stringify(ep.body));
  const secret = await api("GET", `/ingest/api/v1/source/${src.body.id}/endpoint/${ep.body.id}/secret`);
  return { id: src.body.id, url: src.body.ingestUrl, endpointSecret: secret.body.key, path: sinkPath };
}

/** The source's received requests, newest first. */
async function requestLog(src) {
  const { status, body } = await api("GET", `/ingest/api/v1/source/${src.id}/request`);
  assert.equal(status, 200, JSON.stringify(body));
  return body.data;
}

/** The sink's copy of `body` carries a Standard Webhooks signature under the ingest endpoint's secret. */
function assertSignedByHookd(received, src, body) {
  assert.equal(received.body, body, "forwarded byte for byte");
  assert.deepEqual(new StdWebhook(src.endpointSecret).verify(received.body, received.headers), JSON.parse(body));
}

async function assertRefused(response, src) {
  assert.equal(response.status, 401, response.text);
  const [newest] = await requestLog(src);
  assert.equal(newest.status, "rejected");
  assert.equal(newest.msgId ?? null, null, "a refused request makes no message");
}

const ok = (response) => assert.ok(response.status >= 200 && response.status < 300, `${response.status} ${response.text}`);

// ------------------------------------------------------------------------ github

const pushEvent = (marker) => JSON.stringify({ ref: "refs/heads/main", after: marker, repository: { full_name: "acme/app" } });

async function sendGithub(src, body, signature, delivery) {
  return send(src.url, body, {
    "content-type": "application/json",
    "x-github-event": "push",
    "x-github-delivery": delivery,
    "x-hub-signature-256": signature,
  });
}

inboundTest("github: a delivery signed by @octokit/webhooks-methods is forwarded once, its redelivery is not", async (t) => {
  const secret = unique("octo-");
  const src = await newSource(t, "github", { secret });
  const body = pushEvent(unique("sha-"));
  const delivery = randomUUID();

  ok(await sendGithub(src, body, await githubSign(secret, body), delivery));
  const [got] = await sink.waitFor(src.path);
  assertSignedByHookd(got, src, body);

  // GitHub redelivers with the same X-GitHub-Delivery: acknowledged, stored as a duplicate of the same message.
  ok(await sendGithub(src, body, await githubSign(secret, body), delivery));
  const [duplicate, first] = await requestLog(src);
  assert.equal(duplicate.status, "duplicate");
  assert.equal(duplicate.eventId, delivery);
  assert.equal(duplicate.msgId, first.msgId);

  // A later delivery arrives; the redelivered one was never forwarded a second time.
  const later = pushEvent(unique("sha-"));
  ok(await sendGithub(src, later, await githubSign(secret, later), randomUUID()));
  await waitUntil(() => sink.received(src.path).some((r) => r.body === later), "the later delivery");
  assert.deepEqual(sink.received(src.path).map((r) => r.body), [body, later]);
});

inboundTest("github: a delivery with a bad signature is refused with 401", async (t) => {
  const src = await newSource(t, "github", { secret: unique("octo-") });
  const body = pushEvent(unique("sha-"));
  const forged = await githubSign("not-the-secret", body);
  await assertRefused(await sendGithub(src, body, forged, randomUUID()), src);
});

// ------------------------------------------------------------------------ stripe

const stripeEvent = () =>
  JSON.stringify({ id: unique("evt_"), object: "event", type: "invoice.paid", data: { object: { id: unique("in_") } } });

inboundTest("stripe: an event signed by stripe.webhooks.generateTestHeaderString is forwarded", async (t) => {
  const secret = unique("whsec_");
  const src = await newSource(t, "stripe", { secret });
  const payload = stripeEvent();
  const header = stripe.webhooks.generateTestHeaderString({ payload, secret });

  ok(await send(src.url, payload, { "content-type": "application/json", "stripe-signature": header }));
  const [got] = await sink.waitFor(src.path);
  assertSignedByHookd(got, src, payload);
  assert.equal((await requestLog(src))[0].eventId, JSON.parse(payload).id);
});

inboundTest("stripe: an event signed with the wrong secret is refused with 401", async (t) => {
  const src = await newSource(t, "stripe", { secret: unique("whsec_") });
  const payload = stripeEvent();
  const header = stripe.webhooks.generateTestHeaderString({ payload, secret: unique("whsec_") });
  await assertRefused(await send(src.url, payload, { "content-type": "application/json", "stripe-signature": header }), src);
});
