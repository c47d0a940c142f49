// Compatibility tests: the public svix JavaScript SDK (pinned svix@2.5.0) against
// the real hookd binary.
//
// Every test talks to a real `hookd serve` (started once for the file on an
// ephemeral port with a temporary data dir) through the unmodified SDK, and every
// webhook hookd sends lands on a real HTTP sink on 127.0.0.1, where it is verified
// with both `standardwebhooks` and the SDK's own `Webhook` class.
//
// Tests are independent: each makes its own application, event type names and
// sink paths (random suffixes), so any one of them can run alone
// (`node --test --test-name-pattern 'recover' svix_sdk.test.mjs`).
//
// The binary is $HOOKD_BIN (a relative path is taken from the repository root,
// as in the Python suite), else target/debug/hookd under the repository root.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import http from "node:http";
import { after, before, test } from "node:test";

import { Webhook as StdWebhook, WebhookVerificationError } from "standardwebhooks";
import {
  ApiException,
  BackgroundTaskStatus,
  BackgroundTaskType,
  MessageAttemptTriggerType,
  MessageStatus,
  Ordering,
  StatusCodeClass,
  Svix,
  Webhook as SvixWebhook,
} from "svix";

import { Hookd } from "../../lib/hookd.mjs";

const TOKEN = "sk_sdk_compat_admin_token";
// A Standard Webhooks secret (24 fixed bytes, so failures reproduce).
const SECRET = `whsec_${Buffer.from("hookd-sdk-compat-secret!").toString("base64")}`;
const OTHER_SECRET = `whsec_${Buffer.from("some-other-secret-123456").toString("base64")}`;
const DELIVERY_TIMEOUT_MS = 10_000;
const TEST_TIMEOUT_MS = 30_000;

const unique = (prefix) => `${prefix}${randomUUID().replaceAll("-", "").slice(0, 12)}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const ago = (ms) => new Date(Date.now() - ms);

/** Polls `fn` until it returns something truthy; returns that. */
async function waitUntil(fn, what, timeoutMs = DELIVERY_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last value: ${JSON.stringify(last)})`);
}

/** Awaits `promise`, which must fail with an ApiException of `status`; returns it. */
async function apiError(promise, status) {
  let error;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  assert.ok(error, `expected an ApiException ${status}, but the call succeeded`);
  assert.ok(error instanceof ApiException, `expected an ApiException ${status}, got ${error?.stack ?? error}`);
  assert.equal(error.code, status, `status, body: ${JSON.stringify(error.body)}`);
  return error;
}

// ------------------------------------------------------------------------ sink

/** A real HTTP receiver on 127.0.0.1 that records every request and answers
 *  200, or the status set for a path with `setStatus`. */
class Sink {
  constructor() {
    this.requests = [];
    this.statuses = new Map();
    this.waiters = new Set();
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const status = this.statuses.get(req.url) ?? 200;
        this.requests.push({ method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks) });
        for (const wake of this.waiters) wake();
        const reply = status < 300 ? "ok" : "failing on purpose";
        res.writeHead(status, { "content-type": "text/plain", "content-length": Buffer.byteLength(reply) });
        res.end(reply);
      });
    });
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.base = `http://127.0.0.1:${this.server.address().port}`;
  }

  newPath() {
    return `/hook/${randomUUID().replaceAll("-", "")}`;
  }

  setStatus(p, status) {
    this.statuses.set(p, status);
  }

  received(p) {
    return this.requests.filter((r) => r.path === p);
  }

  /** Waits until `p` got at least `count` requests; returns them all. */
  waitFor(p, count = 1, timeoutMs = DELIVERY_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const got = this.received(p);
        if (got.length < count) return false;
        done();
        resolve(got);
        return true;
      };
      const timer = setTimeout(() => {
        done();
        const got = this.received(p);
        reject(new Error(`sink path ${p} got ${got.length} request(s), expected ${count}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  async close() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

// ---------------------------------------------------------------------- server

const hookd = new Hookd({ token: TOKEN, name: "hookd-sdk-js", logEnv: "HOOKD_SDK_TEST_LOG" });
const sink = new Sink();
/** @type {Svix} */
let svix;

before(async () => {
  await sink.start();
  await hookd.start();
  svix = new Svix(TOKEN, { serverUrl: hookd.base });
});

after(async () => {
  await hookd.stop();
  await sink.close();
});

/** A test that shows the tail of hookd's log when it fails. */
function sdkTest(name, fn) {
  test(name, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const exited = hookd.proc?.exitCode ?? hookd.proc?.signalCode;
      const state = exited == null ? "" : ` (hookd has exited: ${exited})`;
      process.stderr.write(`\n--- hookd log (tail), for the failed test "${name}"${state} ---\n${hookd.logTail()}\n---\n`);
      throw e;
    }
  });
}

// --------------------------------------------------------------------- helpers

/** A fresh application for one test, deleted when the test ends. */
async function newApp(t) {
  const app = await svix.application.create({ name: "sdk compat", uid: unique("app-") });
  t.after(async () => {
    try {
      await svix.application.delete(app.id);
    } catch {
      // Already deleted by the test.
    }
  });
  return app;
}

/** A fresh registered event type (org-wide, so its name is unique per test). */
async function newEventType() {
  const name = unique("sdk.test.");
  await svix.eventType.create({ name, description: "made by the SDK compat tests" });
  return name;
}

async function makeEndpoint(appId, fields = {}) {
  const p = sink.newPath();
  const ep = await svix.endpoint.create(appId, { url: sink.base + p, secret: SECRET, ...fields });
  return { ep, path: p };
}

/** Verifies a delivered request with both public verifiers; returns the parsed body. */
function verify(received, secret) {
  const body = received.body.toString("utf8");
  const parsed = new StdWebhook(secret).verify(body, received.headers);
  new SvixWebhook(secret).verify(body, received.headers);
  // Both header spellings are sent and agree.
  for (const name of ["id", "timestamp", "signature"]) {
    assert.equal(received.headers[`svix-${name}`], received.headers[`webhook-${name}`], `svix-${name}`);
  }
  return parsed;
}

function assertRejected(received, secret) {
  const body = received.body.toString("utf8");
  assert.throws(() => new StdWebhook(secret).verify(body, received.headers), WebhookVerificationError);
  assert.throws(() => new SvixWebhook(secret).verify(body, received.headers), WebhookVerificationError);
}

const ids = (list) => list.map((x) => x.id);
const sorted = (list) => [...list].sort();

// ----------------------------------------------------------------------- tests

sdkTest("health", async () => {
  assert.equal(await svix.health.get(), undefined);
});

sdkTest("application lifecycle", async () => {
  const uid = unique("app-");
  const created = await svix.application.create({ name: "first", uid, metadata: { team: "a" } });
  assert.match(created.id, /^app_/);
  assert.equal(created.uid, uid);
  assert.equal(created.name, "first");
  assert.deepEqual(created.metadata, { team: "a" });
  assert.ok(!Number.isNaN(created.createdAt.getTime()), "createdAt parses as a date");
  assert.ok(Math.abs(created.createdAt.getTime() - Date.now()) < 60_000, "createdAt is now");

  assert.equal((await svix.application.get(created.id)).id, created.id);
  assert.equal((await svix.application.get(uid)).id, created.id); // by uid

  // getOrCreate finds the existing one by uid, and creates a missing one.
  const same = await svix.application.getOrCreate({ name: "ignored", uid });
  assert.equal(same.id, created.id);
  assert.equal(same.name, "first");
  const otherUid = unique("app-");
  const other = await svix.application.getOrCreate({ name: "second", uid: otherUid });
  assert.notEqual(other.id, created.id);
  assert.equal(other.uid, otherUid);
  const third = await svix.application.create({ name: "third", uid: unique("app-") });
  const mine = [created.id, other.id, third.id];

  const page = await svix.application.list({ limit: 250 });
  for (const id of mine) assert.ok(ids(page.data).includes(id), `${id} listed`);
  assert.equal(typeof page.done, "boolean");

  // Paging with a small limit walks every app exactly once.
  const seen = [];
  let iterator = null;
  for (let pages = 0; ; pages++) {
    assert.ok(pages < 1000, "pagination ends");
    const p = await svix.application.list({ limit: 2, iterator });
    assert.ok(p.data.length <= 2);
    seen.push(...ids(p.data));
    if (p.done) break;
    assert.ok(p.iterator, "a page that is not done has an iterator");
    iterator = p.iterator;
  }
  assert.equal(new Set(seen).size, seen.length, "no app on two pages");
  for (const id of mine) assert.ok(seen.includes(id), `${id} seen while paging`);

  // Ordering: ascending is descending reversed.
  const asc = await svix.application.list({ order: Ordering.Ascending, limit: 250 });
  const desc = await svix.application.list({ order: Ordering.Descending, limit: 250 });
  assert.deepEqual(ids(asc.data), ids(desc.data).reverse());

  // The SDK's "update" is upsert (PUT): it updates an existing app ...
  const updated = await svix.application.upsert(created.id, { name: "renamed", uid, throttleRate: 50 });
  assert.equal(updated.id, created.id);
  assert.equal(updated.name, "renamed");
  assert.equal(updated.throttleRate, 50);
  assert.equal((await svix.application.get(created.id)).name, "renamed");
  // ... and creates a missing one under the given uid.
  const upsertedUid = unique("app-");
  const upserted = await svix.application.upsert(upsertedUid, { name: "via put", uid: upsertedUid });
  assert.equal(upserted.uid, upsertedUid);
  assert.equal((await svix.application.get(upsertedUid)).id, upserted.id);

  // Patch changes only what it names; null clears.
  const patched = await svix.application.patch(created.id, { metadata: { team: "b" } });
  assert.equal(patched.name, "renamed");
  assert.deepEqual(patched.metadata, { team: "b" });
  assert.equal(patched.throttleRate, 50);
  const cleared = await svix.application.patch(created.id, { throttleRate: null });
  assert.equal(cleared.throttleRate ?? null, null);
  assert.equal(cleared.name, "renamed");

  for (const id of [...mine, upserted.id]) assert.equal(await svix.application.delete(id), undefined);
  const e = await apiError(svix.application.get(created.id), 404);
  assert.equal(typeof e.body.code, "string");
  assert.ok(e.body.code.length > 0);
  assert.equal(typeof e.body.detail, "string");
  await apiError(svix.application.delete(created.id), 404);
});

sdkTest("unknown app is an ApiException 404", async () => {
  const e = await apiError(svix.application.get(unique("app_doesnotexist")), 404);
  assert.ok(e.body.code, "error body has a code");
});

sdkTest("event type lifecycle, 409 on a duplicate name", async () => {
  const name = unique("sdk.lifecycle.");
  const schemas = { 1: { type: "object", examples: [{ hello: "world" }] } };
  const created = await svix.eventType.create({
    name,
    description: "first",
    schemas,
    featureFlags: ["beta"],
    groupName: "sdk",
  });
  assert.equal(created.name, name);
  assert.equal(created.description, "first");
  assert.equal(created.deprecated, false);
  assert.deepEqual(created.schemas, schemas);
  assert.deepEqual(created.featureFlags, ["beta"]);
  assert.equal(created.groupName, "sdk");

  assert.equal((await svix.eventType.get(name)).description, "first");
  const listed = await svix.eventType.list({ limit: 250 });
  assert.ok(listed.data.some((et) => et.name === name), "listed");

  const e = await apiError(svix.eventType.create({ name, description: "again" }), 409);
  assert.ok(e.body.code);
  assert.equal((await svix.eventType.get(name)).description, "first", "the conflict changed nothing");

  const updated = await svix.eventType.upsert(name, { description: "second", deprecated: true });
  assert.equal(updated.description, "second");
  assert.equal(updated.deprecated, true);
  const patched = await svix.eventType.patch(name, { description: "third" });
  assert.equal(patched.description, "third");
  assert.equal(patched.deprecated, true);

  // Delete archives: gone from the default list, present with includeArchived.
  assert.equal(await svix.eventType.delete(name), undefined);
  const after = await svix.eventType.list({ limit: 250 });
  assert.ok(!after.data.some((et) => et.name === name), "archived type not listed by default");
  const archived = (await svix.eventType.list({ limit: 250, includeArchived: true })).data.filter(
    (et) => et.name === name
  );
  assert.equal(archived.length, 1);
  assert.equal(archived[0].archived, true);

  // Expunge removes it entirely.
  await svix.eventType.delete(name, { expunge: true });
  await apiError(svix.eventType.get(name), 404);
});

sdkTest("endpoint lifecycle: inline headers, secret, headers, update, patch, delete", async (t) => {
  const app = await newApp(t);
  const { ep, path: p } = await makeEndpoint(app.id, {
    uid: unique("ep-"),
    description: "primary",
    channels: ["orders"],
    metadata: { k: "v" },
    headers: { "X-Inline": "one", "X-Api-Key": "hidden" },
  });
  assert.match(ep.id, /^ep_/);
  assert.equal(ep.url, sink.base + p);
  assert.equal(ep.description, "primary");
  assert.deepEqual(ep.channels, ["orders"]);
  assert.deepEqual(ep.metadata, { k: "v" });

  assert.equal((await svix.endpoint.get(app.id, ep.id)).url, ep.url);
  assert.equal((await svix.endpoint.get(app.id, ep.uid)).id, ep.id); // by uid
  assert.deepEqual(ids((await svix.endpoint.list(app.id)).data), [ep.id]);

  assert.equal((await svix.endpoint.getSecret(app.id, ep.id)).key, SECRET);

  // Inline headers: plain ones are shown, sensitive ones only by name.
  const headers = await svix.endpoint.getHeaders(app.id, ep.id);
  assert.equal(headers.headers["X-Inline"], "one");
  assert.ok(headers.sensitive.includes("X-Api-Key"), `sensitive: ${JSON.stringify(headers.sensitive)}`);
  assert.ok(!("X-Api-Key" in headers.headers), "a sensitive header's value is not shown");

  assert.equal(await svix.endpoint.setHeaders(app.id, ep.id, { headers: { "X-A": "1", "X-B": "2" } }), undefined);
  assert.deepEqual((await svix.endpoint.getHeaders(app.id, ep.id)).headers, { "X-A": "1", "X-B": "2" });
  await svix.endpoint.patchHeaders(app.id, ep.id, { headers: { "X-C": "3" }, deleteHeaders: ["X-A"] });
  assert.deepEqual((await svix.endpoint.getHeaders(app.id, ep.id)).headers, { "X-B": "2", "X-C": "3" });

  // The SDK's "update" is upsert (PUT).
  const newUrl = sink.base + sink.newPath();
  const updated = await svix.endpoint.upsert(app.id, ep.id, { url: newUrl, description: "updated", uid: ep.uid });
  assert.equal(updated.id, ep.id);
  assert.equal(updated.url, newUrl);
  assert.equal(updated.description, "updated");
  const patched = await svix.endpoint.patch(app.id, ep.id, { disabled: true, description: "patched" });
  assert.equal(patched.disabled, true);
  assert.equal(patched.description, "patched");
  assert.equal(patched.url, newUrl);
  // Neither touches the secret.
  assert.equal((await svix.endpoint.getSecret(app.id, ep.id)).key, SECRET);

  // In SDK 2.5.0 rotateSecret resolves to nothing; the new key is read back.
  assert.equal(await svix.endpoint.rotateSecret(app.id, ep.id), undefined);
  const rotated = (await svix.endpoint.getSecret(app.id, ep.id)).key;
  assert.match(rotated, /^whsec_/);
  assert.notEqual(rotated, SECRET);
  const chosen = `whsec_${Buffer.from("a-chosen-secret-of-24-by").toString("base64")}`;
  await svix.endpoint.rotateSecret(app.id, ep.id, { key: chosen });
  assert.equal((await svix.endpoint.getSecret(app.id, ep.id)).key, chosen);

  const stats = await svix.endpoint.getStats(app.id, ep.id);
  assert.deepEqual(
    [stats.success, stats.pending, stats.sending, stats.fail, stats.canceled],
    [0, 0, 0, 0, 0]
  );

  assert.equal(await svix.endpoint.delete(app.id, ep.id), undefined);
  await apiError(svix.endpoint.get(app.id, ep.id), 404);
  assert.deepEqual((await svix.endpoint.list(app.id)).data, []);
});

sdkTest("a bad endpoint URL is an ApiException 422 with HTTPValidationError detail", async (t) => {
  const app = await newApp(t);
  const e = await apiError(svix.endpoint.create(app.id, { url: "not a url" }), 422);
  assert.ok(Array.isArray(e.body.detail) && e.body.detail.length > 0, `detail: ${JSON.stringify(e.body)}`);
  assert.ok(
    e.body.detail.some((item) => Array.isArray(item.loc) && item.loc.map(String).includes("url")),
    `a detail item points at url: ${JSON.stringify(e.body.detail)}`
  );
  assert.ok(e.body.detail.every((item) => typeof item.msg === "string" && typeof item.type === "string"));
  assert.deepEqual((await svix.endpoint.list(app.id)).data, [], "nothing was created");
});

sdkTest("a message is delivered signed, and can be read back and listed", async (t) => {
  const app = await newApp(t);
  const eventType = await newEventType();
  const { path: p } = await makeEndpoint(app.id, { channels: ["orders"], headers: { "X-Tenant": "t1" } });
  const payload = { order: 42, text: "héllo ✓", nested: { ok: true } };
  const eventId = unique("evt-");
  const msg = await svix.message.create(app.id, { eventType, payload, eventId, channels: ["orders"], tags: ["t1"] });
  assert.match(msg.id, /^msg_/);
  assert.equal(msg.eventId, eventId);
  assert.equal(msg.eventType, eventType);
  assert.deepEqual(msg.channels, ["orders"]);
  assert.deepEqual(msg.payload, {}, "SDK 2.5.0 sends with_content=false on create");
  assert.ok(Math.abs(msg.timestamp.getTime() - Date.now()) < 60_000, "timestamp is now");

  const [got] = await sink.waitFor(p);
  assert.equal(got.method, "POST");
  assert.deepEqual(verify(got, SECRET), payload);
  assert.equal(got.headers["webhook-id"], msg.id);
  assert.equal(got.headers["x-tenant"], "t1");
  assert.match(got.headers["content-type"], /^application\/json/);
  assertRejected(got, OTHER_SECRET);
  // A tampered body does not verify either.
  assertRejected({ ...got, body: Buffer.from(got.body.toString().replace("42", "43")) }, SECRET);

  // withContent gives the payload back.
  const full = await svix.message.create(
    app.id,
    { eventType, payload: { n: 2 }, channels: ["orders"] },
    { withContent: true }
  );
  assert.deepEqual(full.payload, { n: 2 });
  await sink.waitFor(p, 2);

  assert.deepEqual((await svix.message.get(app.id, msg.id)).payload, {});
  assert.deepEqual((await svix.message.get(app.id, msg.id, { withContent: true })).payload, payload);
  assert.equal((await svix.message.get(app.id, eventId)).id, msg.id, "get by eventId");

  const otherType = unique("sdk.other.");
  const other = await svix.message.create(app.id, { eventType: otherType, payload: { other: true } });

  // Newest first.
  assert.deepEqual(ids((await svix.message.list(app.id)).data), [other.id, full.id, msg.id]);
  const filtered = await svix.message.list(app.id, { eventTypes: [eventType], withContent: true });
  assert.deepEqual(sorted(ids(filtered.data)), sorted([msg.id, full.id]));
  assert.deepEqual(filtered.data.find((m) => m.id === msg.id).payload, payload);
  // The JS SDK joins list parameters with commas: both types must match.
  const twoTypes = await svix.message.list(app.id, { eventTypes: [eventType, otherType] });
  assert.equal(twoTypes.data.length, 3);
  assert.deepEqual(sorted(ids((await svix.message.list(app.id, { channel: "orders" })).data)), sorted([msg.id, full.id]));
  assert.deepEqual(ids((await svix.message.list(app.id, { tag: "t1" })).data), [msg.id]);

  // Dates go out as toISOString() (UTC, milliseconds, "Z").
  const later = new Date(Date.now() + 60_000);
  assert.equal((await svix.message.list(app.id, { after: ago(60_000), before: later })).data.length, 3);
  assert.deepEqual((await svix.message.list(app.id, { after: later })).data, []);
  assert.deepEqual((await svix.message.list(app.id, { before: ago(60_000) })).data, []);

  // Paging forwards with limit 1, then back with prevIterator.
  const p1 = await svix.message.list(app.id, { limit: 1 });
  assert.deepEqual(ids(p1.data), [other.id]);
  assert.equal(p1.done, false);
  const p2 = await svix.message.list(app.id, { limit: 1, iterator: p1.iterator });
  assert.deepEqual(ids(p2.data), [full.id]);
  const p3 = await svix.message.list(app.id, { limit: 1, iterator: p2.iterator });
  assert.deepEqual(ids(p3.data), [msg.id]);
  const back = await svix.message.list(app.id, { limit: 1, iterator: p2.prevIterator });
  assert.deepEqual(ids(back.data), [other.id]);

  assert.equal(await svix.message.expungeContent(app.id, msg.id), undefined);
  const expunged = await svix.message.get(app.id, msg.id, { withContent: true });
  assert.equal(expunged.id, msg.id);
  assert.deepEqual(expunged.payload, {});
});

sdkTest("a message may create its application inline", async () => {
  const uid = unique("inline-");
  const msg = await svix.message.create(uid, {
    eventType: "sdk.inline",
    payload: {},
    application: { name: "inline", uid },
  });
  try {
    const app = await svix.application.get(uid);
    assert.equal(app.uid, uid);
    assert.equal(app.name, "inline");
    assert.equal((await svix.message.get(uid, msg.id)).id, msg.id);
  } finally {
    await svix.application.delete(uid);
  }
});

sdkTest("attempts: list by endpoint and message, attempted messages and destinations, get, status filters, resend", async (t) => {
  const app = await newApp(t);
  const eventType = await newEventType();
  const { ep, path: p } = await makeEndpoint(app.id);
  const msg = await svix.message.create(app.id, { eventType, payload: { attempt: 1 }, channels: ["c1"], tags: ["t1"] });
  const [first] = await sink.waitFor(p);
  verify(first, SECRET);

  const [attempt] = await waitUntil(async () => {
    const data = (await svix.messageAttempt.listByEndpoint(app.id, ep.id)).data;
    return data.length > 0 && data.every((a) => a.status === MessageStatus.Success) ? data : null;
  }, "a recorded successful attempt");
  assert.match(attempt.id, /^atmpt_/);
  assert.equal(attempt.msgId, msg.id);
  assert.equal(attempt.endpointId, ep.id);
  assert.equal(attempt.url, ep.url);
  assert.equal(attempt.responseStatusCode, 200);
  assert.equal(attempt.statusText, "success");
  assert.equal(attempt.triggerType, MessageAttemptTriggerType.Scheduled);
  assert.ok(Math.abs(attempt.timestamp.getTime() - Date.now()) < 60_000);

  assert.deepEqual(ids((await svix.messageAttempt.listByMsg(app.id, msg.id)).data), [attempt.id]);
  assert.deepEqual(ids((await svix.messageAttempt.listByMsg(app.id, msg.id, { endpointId: ep.id })).data), [attempt.id]);

  // Status filters: the delivered attempt is a success, not a failure.
  const S = MessageStatus;
  assert.deepEqual((await svix.messageAttempt.listByEndpoint(app.id, ep.id, { status: S.Fail })).data, []);
  assert.deepEqual(ids((await svix.messageAttempt.listByEndpoint(app.id, ep.id, { status: S.Success })).data), [attempt.id]);
  assert.deepEqual((await svix.messageAttempt.listByMsg(app.id, msg.id, { status: S.Fail })).data, []);
  assert.deepEqual(ids((await svix.messageAttempt.listByMsg(app.id, msg.id, { status: S.Success })).data), [attempt.id]);
  assert.deepEqual((await svix.messageAttempt.listAttemptedMessages(app.id, ep.id, { status: S.Fail })).data, []);
  assert.deepEqual(ids((await svix.messageAttempt.listAttemptedMessages(app.id, ep.id, { status: S.Success })).data), [msg.id]);

  // Other filters exclude what does not match and keep what does.
  const byEp = (o) => svix.messageAttempt.listByEndpoint(app.id, ep.id, o).then((r) => ids(r.data));
  assert.deepEqual(await byEp({ statusCodeClass: StatusCodeClass.Code5xx }), []);
  assert.deepEqual(await byEp({ statusCodeClass: StatusCodeClass.Code2xx }), [attempt.id]);
  assert.deepEqual(await byEp({ eventTypes: ["sdk.no.such.type"] }), []);
  assert.deepEqual(await byEp({ eventTypes: [eventType] }), [attempt.id]);
  assert.deepEqual(await byEp({ channel: "no-such-channel" }), []);
  assert.deepEqual(await byEp({ channel: "c1" }), [attempt.id]);
  assert.deepEqual(await byEp({ tag: "no-such-tag" }), []);
  assert.deepEqual(await byEp({ tag: "t1" }), [attempt.id]);
  assert.deepEqual(await byEp({ after: ago(60_000), before: new Date(Date.now() + 60_000) }), [attempt.id]);
  assert.deepEqual(await byEp({ after: new Date(Date.now() + 60_000) }), []);
  const withMsg = await svix.messageAttempt.listByEndpoint(app.id, ep.id, { withMsg: true });
  assert.equal(withMsg.data[0].msg?.id, msg.id);
  assert.equal(withMsg.data[0].msg?.eventType, eventType);

  const got = await svix.messageAttempt.get(app.id, msg.id, attempt.id);
  assert.equal(got.id, attempt.id);
  assert.equal(got.responseStatusCode, 200);
  assert.equal(got.response, "ok");

  const dests = await svix.messageAttempt.listAttemptedDestinations(app.id, msg.id);
  assert.deepEqual(ids(dests.data), [ep.id]);
  assert.equal(dests.data[0].status, MessageStatus.Success);
  assert.equal(dests.data[0].url, ep.url);

  const msgs = await svix.messageAttempt.listAttemptedMessages(app.id, ep.id);
  assert.deepEqual(ids(msgs.data), [msg.id]);
  assert.equal(msgs.data[0].status, MessageStatus.Success);
  assert.equal(msgs.data[0].eventType, eventType);

  // Resend: a second request with the same webhook id, recorded as a manual attempt.
  assert.deepEqual(await svix.messageAttempt.resend(app.id, msg.id, ep.id), {});
  const [, second] = await sink.waitFor(p, 2);
  assert.deepEqual(verify(second, SECRET), { attempt: 1 });
  assert.equal(second.headers["webhook-id"], msg.id);
  const attempts = await waitUntil(async () => {
    const data = (await svix.messageAttempt.listByMsg(app.id, msg.id)).data;
    return data.length === 2 && data.every((a) => a.status === MessageStatus.Success) ? data : null;
  }, "the resend's attempt");
  assert.deepEqual(
    attempts.map((a) => a.triggerType).sort(),
    [MessageAttemptTriggerType.Scheduled, MessageAttemptTriggerType.Manual]
  );

  const stats = await svix.endpoint.getStats(app.id, ep.id);
  assert.ok(stats.success >= 1, `stats: ${JSON.stringify(stats)}`);
  assert.equal(stats.fail, 0);
  assert.equal(stats.canceled, 0);
});

sdkTest("a duplicate eventId is an ApiException 409", async (t) => {
  const app = await newApp(t);
  const eventType = await newEventType();
  const eventId = unique("evt-");
  const first = await svix.message.create(app.id, { eventType, payload: { n: 1 }, eventId });
  const e = await apiError(svix.message.create(app.id, { eventType, payload: { n: 2 }, eventId }), 409);
  assert.ok(e.body.code);
  assert.deepEqual(ids((await svix.message.list(app.id)).data), [first.id]);
});

sdkTest("an idempotency key returns the same message", async (t) => {
  const app = await newApp(t);
  const eventType = await newEventType();
  const idempotencyKey = unique("idem-");
  const a = await svix.message.create(app.id, { eventType, payload: { n: 1 } }, { idempotencyKey });
  const b = await svix.message.create(app.id, { eventType, payload: { n: 1 } }, { idempotencyKey });
  assert.equal(b.id, a.id);
  assert.equal((await svix.message.list(app.id)).data.length, 1);
  // Without a key of its own, the SDK sends a fresh one per call: two messages.
  const c = await svix.message.create(app.id, { eventType, payload: { n: 1 } });
  assert.notEqual(c.id, a.id);
  assert.equal((await svix.message.list(app.id)).data.length, 2);
  // The same key with a different body is refused, and creates nothing.
  await apiError(svix.message.create(app.id, { eventType, payload: { n: 2 } }, { idempotencyKey }), 422);
  assert.equal((await svix.message.list(app.id)).data.length, 2);
});

sdkTest("channels and event types decide the fan-out", async (t) => {
  const app = await newApp(t);
  const eventType = await newEventType();
  const a = await makeEndpoint(app.id, { channels: ["a"] });
  const b = await makeEndpoint(app.id, { channels: ["b"] });
  const typed = await makeEndpoint(app.id, { eventTypes: [eventType] });
  const otherTyped = await makeEndpoint(app.id, { eventTypes: [unique("sdk.unrelated.")] });
  const all = await makeEndpoint(app.id);
  const msg = await svix.message.create(app.id, { eventType, payload: { x: 1 }, channels: ["a"] });
  for (const target of [a, typed, all]) {
    const [got] = await sink.waitFor(target.path);
    assert.deepEqual(verify(got, SECRET), { x: 1 });
    assert.equal(got.headers["webhook-id"], msg.id);
  }
  const dests = await svix.messageAttempt.listAttemptedDestinations(app.id, msg.id);
  assert.deepEqual(sorted(ids(dests.data)), sorted([a.ep.id, typed.ep.id, all.ep.id]));
  assert.deepEqual(sink.received(b.path), []);
  assert.deepEqual(sink.received(otherTyped.path), []);
});

sdkTest("rotating a secret: the new one signs, the old one too during the grace period", async (t) => {
  const app = await newApp(t);
  const eventType = await newEventType();
  const { ep, path: p } = await makeEndpoint(app.id);
  await svix.endpoint.rotateSecret(app.id, ep.id, {});
  const rotated = (await svix.endpoint.getSecret(app.id, ep.id)).key;
  assert.notEqual(rotated, SECRET);

  await svix.message.create(app.id, { eventType, payload: { after: "rotation" } });
  const [got] = await sink.waitFor(p);
  assert.deepEqual(verify(got, rotated), { after: "rotation" });
  assert.equal(got.headers["webhook-signature"].split(" ").length, 2);
  verify(got, SECRET);

  // A chosen key with no grace period, on an endpoint that had one secret: only it signs.
  const other = await makeEndpoint(app.id);
  const chosen = `whsec_${Buffer.from("a-chosen-secret-of-24-by").toString("base64")}`;
  await svix.endpoint.rotateSecret(app.id, other.ep.id, { key: chosen, gracePeriodSeconds: 0 });
  assert.equal((await svix.endpoint.getSecret(app.id, other.ep.id)).key, chosen);
  await svix.message.create(app.id, { eventType, payload: { after: "second" } });
  const [got2] = await sink.waitFor(other.path);
  assert.deepEqual(verify(got2, chosen), { after: "second" });
  assert.equal(got2.headers["webhook-signature"].split(" ").length, 1);
  assertRejected(got2, SECRET);
});

sdkTest("sendExample sends the event type's example", async (t) => {
  const app = await newApp(t);
  const name = unique("sdk.example.");
  const examples = [{ example: true, id: 7 }, { example: true, id: 8 }];
  await svix.eventType.create({ name, description: "has examples", schemas: { 1: { type: "object", examples } } });
  const { ep, path: p } = await makeEndpoint(app.id);

  const out = await svix.endpoint.sendExample(app.id, ep.id, { eventType: name });
  assert.match(out.id, /^msg_/);
  assert.equal(out.eventType, name);
  const [got] = await sink.waitFor(p);
  assert.deepEqual(verify(got, SECRET), examples[0]);
  assert.equal(got.headers["webhook-id"], out.id);

  const second = await svix.endpoint.sendExample(app.id, ep.id, { eventType: name, exampleIndex: 1 });
  assert.notEqual(second.id, out.id);
  const [, got2] = await sink.waitFor(p, 2);
  assert.deepEqual(verify(got2, SECRET), examples[1]);
});

sdkTest("app portal access: a token for one application only", async (t) => {
  const app = await newApp(t);
  const out = await svix.authentication.appPortalAccess(app.id, {});
  assert.equal(typeof out.token, "string");
  assert.ok(out.token.length > 0);
  assert.ok(URL.canParse(out.url), `url: ${out.url}`);

  // The portal token works through the SDK for its own application ...
  const portal = new Svix(out.token, { serverUrl: hookd.base });
  assert.equal((await portal.application.get(app.id)).id, app.id);
  const ep = await portal.endpoint.create(app.id, { url: sink.base + sink.newPath() });
  assert.deepEqual(ids((await portal.endpoint.list(app.id)).data), [ep.id]);
  // ... and sees no other application.
  const other = await svix.application.create({ name: "other", uid: unique("app-") });
  try {
    await apiError(portal.application.get(other.id), 404);
    await apiError(portal.endpoint.list(other.id), 404);
  } finally {
    await svix.application.delete(other.id);
  }
});

sdkTest("a bad token is an ApiException 401", async () => {
  const bad = new Svix("sk_not_a_real_token", { serverUrl: hookd.base });
  await apiError(bad.application.list(), 401);
  await apiError(bad.application.create({ name: "nope" }), 401);
});

/** Asserts that `p` got only its first `count` requests: sends a marker message
 *  and waits for it, so anything sent before it has had its chance to arrive
 *  (hookd dispatches an endpoint's deliveries as soon as they are committed). */
async function assertNothingMoreThan(appId, eventType, p, count) {
  const marker = await svix.message.create(appId, { eventType, payload: { marker: true } });
  await sink.waitFor(p, count + 1);
  await sleep(100); // room for a straggler sent alongside the marker
  assert.deepEqual(
    sink.received(p).slice(count).map((r) => r.headers["webhook-id"]),
    [marker.id],
    "only the marker arrived after the first requests"
  );
}

/** Waits for a background task to finish, if this server serves them; returns it or null. */
async function finishedTask(taskId) {
  try {
    return await waitUntil(async () => {
      const task = await svix.backgroundTask.get(taskId);
      assert.notEqual(task.status, BackgroundTaskStatus.Failed, `task failed: ${JSON.stringify(task)}`);
      return task.status === BackgroundTaskStatus.Finished ? task : null;
    }, `background task ${taskId} to finish`);
  } catch (e) {
    // A server without /background-task answers 404; that check is skipped there.
    if (e instanceof ApiException && e.code === 404) return null;
    throw e;
  }
}

sdkTest("recover resends failed deliveries once the endpoint works again", async (t) => {
  const app = await newApp(t);
  const eventType = await newEventType();
  const { ep, path: p } = await makeEndpoint(app.id);
  sink.setStatus(p, 500);
  const since = ago(60_000);
  const msg = await svix.message.create(app.id, { eventType, payload: { recover: "me" } });
  // --retry-schedule 200ms,200ms: three attempts, then the delivery fails.
  const failing = await sink.waitFor(p, 3);
  for (const r of failing) verify(r, SECRET);

  await waitUntil(async () => {
    const data = (await svix.messageAttempt.listAttemptedMessages(app.id, ep.id)).data;
    return data.length === 1 && data[0].status === MessageStatus.Fail;
  }, "the delivery to be marked failed");
  const attempts = (await svix.messageAttempt.listByEndpoint(app.id, ep.id)).data;
  assert.equal(attempts.length, 3);
  assert.ok(attempts.every((a) => a.responseStatusCode === 500 && a.status === MessageStatus.Fail));
  assert.equal(attempts[0].response, "failing on purpose");
  assert.equal((await svix.messageAttempt.listByEndpoint(app.id, ep.id, { status: MessageStatus.Fail })).data.length, 3);
  assert.deepEqual((await svix.messageAttempt.listByEndpoint(app.id, ep.id, { status: MessageStatus.Success })).data, []);
  assert.equal(
    (await svix.messageAttempt.listByEndpoint(app.id, ep.id, { statusCodeClass: StatusCodeClass.Code5xx })).data.length,
    3
  );
  const failedStats = await svix.endpoint.getStats(app.id, ep.id);
  assert.equal(failedStats.fail, 1);
  assert.equal(failedStats.success, 0);
  assert.equal(sink.received(p).length, 3, "no attempt after the schedule is exhausted");

  sink.setStatus(p, 200);
  const task = await svix.endpoint.recover(app.id, ep.id, { since });
  assert.ok(task.id, "the task has an id");
  assert.equal(task.task, BackgroundTaskType.EndpointRecover);
  // Whether the work is done before the answer is the server's choice.
  assert.ok(
    [BackgroundTaskStatus.Running, BackgroundTaskStatus.Finished].includes(task.status),
    `status: ${task.status}`
  );

  const received = await sink.waitFor(p, 4);
  assert.deepEqual(verify(received[3], SECRET), { recover: "me" });
  assert.equal(received[3].headers["webhook-id"], msg.id);
  await waitUntil(async () => {
    const data = (await svix.messageAttempt.listAttemptedMessages(app.id, ep.id)).data;
    return data.length === 1 && data[0].status === MessageStatus.Success;
  }, "the recovered delivery to succeed");
  const finished = await finishedTask(task.id);
  if (finished) {
    assert.equal(finished.task, BackgroundTaskType.EndpointRecover);
    assert.ok(finished.data?.messagesSent >= 1, `task data: ${JSON.stringify(finished.data)}`);
  }

  // Recovering again sends nothing: nothing is failed any more.
  await svix.endpoint.recover(app.id, ep.id, { since });
  await assertNothingMoreThan(app.id, eventType, p, 4);
});

sdkTest("replayMissing sends what an endpoint never got, once", async (t) => {
  const app = await newApp(t);
  const eventType = await newEventType();
  const since = ago(60_000);
  // Sent while the application has no endpoint: nothing is delivered.
  const msg = await svix.message.create(app.id, { eventType, payload: { missed: true } });
  const { ep, path: p } = await makeEndpoint(app.id);
  assert.deepEqual((await svix.messageAttempt.listAttemptedMessages(app.id, ep.id)).data, []);

  const task = await svix.endpoint.replayMissing(app.id, ep.id, { since });
  assert.ok(task.id, "the task has an id");
  assert.equal(task.task, BackgroundTaskType.EndpointReplay);
  const [got] = await sink.waitFor(p);
  assert.deepEqual(verify(got, SECRET), { missed: true });
  assert.equal(got.headers["webhook-id"], msg.id);
  const finished = await finishedTask(task.id);
  if (finished) assert.ok(finished.data?.messagesSent >= 1, `task data: ${JSON.stringify(finished.data)}`);

  // Replaying again sends nothing new: the message is no longer missing.
  await svix.endpoint.replayMissing(app.id, ep.id, { since });
  await assertNothingMoreThan(app.id, eventType, p, 1);
});
