// The web console (docs/console.md) in a real browser: headless Chromium driven by
// Playwright (pinned playwright-core, the system's /usr/bin/chromium), against the
// real hookd binary.
//
// One `hookd serve` (ephemeral port, temporary data dir, $HOOKD_BIN as in
// scripts/compat/js/svix_sdk.test.mjs) and a loopback sink that records what hookd
// delivers and can be told to fail. Everything in the browser is done as a user
// does it: by clicking links and buttons and typing into fields, found by their
// visible labels and names. The API is used only to set up what the console
// cannot do (event types, a second organisation) and to send a message.
//
// The tests are one story, run in order (node:test runs a file's tests one after
// another): sign in, make the "Billing" application, add an endpoint, use the
// endpoint page, resend a failed message, ... sign out. A later test uses what an
// earlier one made, and says so when it is missing.
//
// HOOKD_SCREENSHOTS=1 also writes full-page screenshots of the main pages to
// docs/console/*.png (otherwise nothing is written to the tree).
//
// Without /usr/bin/chromium the tests are skipped, or fail when CI=true.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { Hookd } from "../lib/hookd.mjs";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CHROMIUM = "/usr/bin/chromium";
const TOKEN = "sk_browser_test_admin_token";
const EVENT_TYPE = "invoice.paid";
const SCREENSHOTS = process.env.HOOKD_SCREENSHOTS === "1";
const SCREENSHOT_DIR = path.join(REPO_ROOT, "docs/console");
const DELIVERY_TIMEOUT_MS = 10_000;
const TEST_TIMEOUT_MS = 60_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `fn` until it returns something truthy; returns that. */
async function waitUntil(fn, what, timeoutMs = DELIVERY_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

// ------------------------------------------------------------------------ sink

/** A real HTTP receiver on 127.0.0.1 that records every request and answers 200,
 *  or 500 for the next N requests after `failNext(N)`. */
class Sink {
  constructor() {
    this.requests = [];
    this.failures = 0;
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        this.requests.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        const failing = this.failures > 0;
        if (failing) this.failures -= 1;
        const reply = failing ? "failing on purpose" : "ok";
        const headers = { "content-type": "text/plain", "content-length": Buffer.byteLength(reply) };
        res.writeHead(failing ? 500 : 200, headers);
        res.end(reply);
      });
    });
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.base = `http://127.0.0.1:${this.server.address().port}`;
  }

  failNext(count) {
    this.failures = count;
  }

  /** Waits until the sink has received `count` requests in all; returns them. */
  waitFor(count) {
    return waitUntil(() => this.requests.length >= count && this.requests, `${count} request(s) at the sink`);
  }

  async close() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** Whether a delivered request carries a Standard Webhooks signature made with `secret`. */
function signedWith(request, secret) {
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const { "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sigs = "" } = request.headers;
  const expected = createHmac("sha256", key).update(`${id}.${ts}.${request.body}`).digest("base64");
  return sigs.split(" ").includes(`v1,${expected}`);
}

// ---------------------------------------------------------------------- server

/** A call to hookd's API; returns the JSON answer, which must be a success. */
async function api(method, urlPath, body, token = TOKEN) {
  const resp = await fetch(hookd.base + urlPath, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  assert.ok(resp.ok, `${method} ${urlPath}: ${resp.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// --------------------------------------------------------------------- browser

const chromiumMissing = !existsSync(CHROMIUM);
const skip = chromiumMissing && process.env.CI !== "true"
  ? `${CHROMIUM} is missing: install it (apt-get install chromium) to run the browser tests`
  : false;

const hookd = new Hookd({ token: TOKEN, name: "hookd-browser", logEnv: "HOOKD_BROWSER_TEST_LOG" });
const sink = new Sink();
let browser;
/** The signed-in administrator's browser (its cookie jar). */
let admin;

/** What earlier tests made, for later ones. */
const made = {};

function needs(name, by) {
  assert.ok(made[name], `this test needs ${name}, made by the test "${by}", which did not get that far`);
  return made[name];
}

async function newContext() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(10_000);
  return context;
}

before(async () => {
  if (skip) return;
  if (chromiumMissing) throw new Error(`${CHROMIUM} is missing; CI must install it (apt-get install chromium)`);
  await sink.start();
  await hookd.start();
  await api("POST", "/api/v1/event-type", { name: EVENT_TYPE, description: "An invoice was paid" });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"], headless: true });
  admin = await newContext();
});

after(async () => {
  await browser?.close();
  await hookd.stop();
  if (sink.base) await sink.close();
});

/** A test that shows the tail of hookd's log (and the page it was on) when it fails. */
function consoleTest(name, fn) {
  test(name, { skip, timeout: TEST_TIMEOUT_MS }, async () => {
    const page = await admin.newPage();
    try {
      await fn(page);
    } catch (e) {
      const exited = hookd.proc?.exitCode ?? hookd.proc?.signalCode;
      const state = exited == null ? "" : ` (hookd has exited: ${exited})`;
      process.stderr.write(
        `\n--- for the failed test "${name}": the page was ${page.url()}; hookd log (tail)${state} ---\n` +
          `${hookd.logTail()}\n---\n`
      );
      throw e;
    } finally {
      await page.close();
    }
  });
}

/** A full-page screenshot to docs/console/{name}.png, with HOOKD_SCREENSHOTS=1 only. */
async function screenshot(page, name) {
  if (!SCREENSHOTS) return;
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

/** Clicks a form's submit button; returns hookd's answer to the form (before any
 *  redirect). The console must accept a form posted from its own page. */
async function submit(page, button) {
  const answer = page.waitForResponse((r) => r.request().method() === "POST" && r.request().isNavigationRequest());
  await button.click();
  const resp = await answer;
  if (resp.status() === 403) {
    const { url, origin } = { url: resp.request().url(), origin: await resp.request().headerValue("origin") };
    assert.fail(`the console refused its own form (${url}, sent with Origin: ${origin}): ${await resp.text()}`);
  }
  return resp;
}

/** Reloads `page` until `locator` is visible, for at most DELIVERY_TIMEOUT_MS. */
async function reloadUntilVisible(page, locator, what) {
  await waitUntil(async () => {
    if (await locator.first().isVisible()) return true;
    await sleep(200);
    await page.reload();
    return false;
  }, what);
}

const heading = (page, name) => page.getByRole("heading", { level: 1, name, exact: true });
const mainNav = (page) => page.getByRole("navigation", { name: "Main" });
/** The value shown in a row of the endpoint's settings table. */
const setting = (page, name) =>
  page.getByRole("row").filter({ has: page.getByRole("rowheader", { name, exact: true }) }).getByRole("cell");
const pathOf = (page) => new URL(page.url()).pathname;

// ----------------------------------------------------------------------- tests

consoleTest("signing in: a wrong token is refused, the admin token opens Applications", async (page) => {
  await page.goto(`${hookd.base}/console`);
  assert.equal(pathOf(page), "/console/login", "signed out, the console leads to the sign-in page");
  await heading(page, "Sign in to hookd").waitFor();
  await screenshot(page, "signin");

  await page.getByLabel("API token").fill("sk_not_a_real_token");
  assert.equal((await submit(page, page.getByRole("button", { name: "Sign in" }))).status(), 401);
  await page.getByRole("alert").filter({ hasText: "That token is not valid (or has expired)." }).waitFor();
  assert.equal(pathOf(page), "/console/login");
  assert.equal((await admin.cookies()).length, 0, "no session for a wrong token");

  await page.getByLabel("API token").fill(TOKEN);
  await submit(page, page.getByRole("button", { name: "Sign in" }));
  await heading(page, "Applications").waitFor();
  assert.equal(pathOf(page), "/console/apps");
  await page.getByText("No applications yet.").waitFor();
  made.signedIn = true;
});

consoleTest("creating an application through the form, and opening it", async (page) => {
  needs("signedIn", "signing in: a wrong token is refused, the admin token opens Applications");
  await page.goto(`${hookd.base}/console/apps`);
  await page.getByLabel("Name", { exact: true }).fill("Billing");
  await submit(page, page.getByRole("button", { name: "Create application" }));
  // Creating it opens it.
  await heading(page, "Billing").waitFor();
  assert.match(pathOf(page), /^\/console\/apps\/app_[A-Za-z0-9]+$/);
  made.appUrl = page.url();

  // It is listed under Applications, and its name opens it.
  await mainNav(page).getByRole("link", { name: "Applications" }).click();
  await heading(page, "Applications").waitFor();
  const billing = page.getByRole("link", { name: "Billing", exact: true });
  assert.equal(await billing.count(), 1, "Billing is listed once");
  await screenshot(page, "applications");
  await billing.click();
  await heading(page, "Billing").waitFor();
  assert.equal(page.url(), made.appUrl);
  await page.getByText("No endpoints yet.").waitFor();
});

consoleTest("adding an endpoint for invoice.paid", async (page) => {
  await page.goto(needs("appUrl", "creating an application through the form, and opening it"));
  const url = `${sink.base}/billing`;
  await page.getByLabel("URL", { exact: true }).fill(url);
  await page.getByLabel("Description").fill("Billing's receiver");
  await page.getByRole("checkbox", { name: EVENT_TYPE }).check();
  await submit(page, page.getByRole("button", { name: "Add endpoint" }));

  // Adding it opens its page: its URL, only invoice.paid, enabled, the secret hidden.
  await heading(page, url).waitFor();
  assert.match(pathOf(page), /\/endpoints\/ep_[A-Za-z0-9]+$/);
  made.endpointUrl = page.url();
  made.sinkUrl = url;
  assert.equal(await setting(page, "Event types").innerText(), EVENT_TYPE);
  assert.equal(await setting(page, "State").innerText(), "enabled");
  assert.equal(await setting(page, "Description").innerText(), "Billing's receiver");
  assert.equal(await setting(page, "Signing secret").innerText(), "Reveal");
  assert.ok(!(await page.content()).includes("whsec_"), "the secret is not on the page until revealed");

  // The application lists it.
  await page.getByRole("link", { name: "Application", exact: true }).click();
  await heading(page, "Billing").waitFor();
  const row = page.getByRole("row").filter({ has: page.getByRole("link", { name: url }) });
  assert.equal(await row.count(), 1);
  assert.match(await row.innerText(), new RegExp(`${EVENT_TYPE.replace(".", "\\.")}\\s+enabled`));
  await screenshot(page, "application");
});

consoleTest("the endpoint page: reveal and rotate the secret, send a test event", async (page) => {
  await page.goto(needs("endpointUrl", "adding an endpoint for invoice.paid"));
  const secret = setting(page, "Signing secret");

  await page.getByRole("link", { name: "Reveal" }).click();
  const first = await secret.innerText();
  assert.match(first, /^whsec_[A-Za-z0-9+/=]{20,}$/);

  await submit(page, page.getByRole("button", { name: "Rotate secret" }));
  await page.getByRole("status").filter({ hasText: "The secret was rotated" }).waitFor();
  assert.equal(await secret.innerText(), "Reveal", "hidden again after rotating");
  await page.getByRole("link", { name: "Reveal" }).click();
  const rotated = await secret.innerText();
  assert.match(rotated, /^whsec_/);
  assert.notEqual(rotated, first, "rotating gives a new secret");

  const seen = sink.requests.length;
  const form = page.locator("form").filter({ has: page.getByRole("heading", { name: "Send a test event" }) });
  await form.getByLabel("Event type").selectOption(EVENT_TYPE);
  await submit(page, form.getByRole("button", { name: "Send example" }));
  // The message's page follows the attempt: it reloads itself (no script)
  // until the attempt is in.
  await heading(page, EVENT_TYPE).waitFor();
  await page.getByRole("status").filter({ hasText: "The attempt is in" }).waitFor({ timeout: DELIVERY_TIMEOUT_MS });
  assert.equal(await page.locator("meta[http-equiv=refresh]").count(), 0, "no more reloads once it is in");
  await page.goto(made.endpointUrl);

  // The sink got it, signed with the new secret.
  const delivered = (await sink.waitFor(seen + 1))[seen];
  assert.equal(delivered.path, "/billing");
  assert.ok(signedWith(delivered, rotated), "signed with the revealed, rotated secret");
  const msgId = delivered.headers["webhook-id"];

  // Its attempt shows under Recent attempts: that message, succeeded, 200.
  const attempt = page.getByRole("row").filter({ has: page.getByRole("link", { name: msgId }) });
  await reloadUntilVisible(page, attempt.filter({ hasText: "succeeded" }), "the test event's attempt to succeed");
  assert.match(await attempt.innerText(), /succeeded\s+200$/);
  await screenshot(page, "endpoint");
});

consoleTest("resending a failed message from its page", async (page) => {
  const appUrl = needs("appUrl", "creating an application through the form, and opening it");
  const sinkUrl = needs("sinkUrl", "adding an endpoint for invoice.paid");
  const appId = appUrl.split("/").pop();

  // Three failures exhaust the schedule (--retry-schedule 200ms,200ms).
  const seen = sink.requests.length;
  sink.failNext(3);
  const msg = await api("POST", `/api/v1/app/${appId}/msg`, {
    eventType: EVENT_TYPE,
    payload: { invoice: "in_1001", amountDue: 4200, currency: "eur" },
  });
  await sink.waitFor(seen + 3);

  // The message is found from its application's Messages.
  await page.goto(appUrl);
  await page.getByRole("link", { name: "Messages" }).click();
  await heading(page, "Messages").waitFor();
  await page.getByRole("link", { name: msg.id }).click();
  await heading(page, EVENT_TYPE).waitFor();
  assert.match(await page.locator("pre").first().innerText(), /"invoice": "in_1001"/, "the payload is shown");

  const destination = page.getByRole("row").filter({ has: page.getByRole("link", { name: sinkUrl }) });
  await reloadUntilVisible(page, destination.filter({ hasText: "failed" }), "the delivery to be marked failed");
  const attempts = page.getByRole("table", { name: "Attempts" }).getByRole("row").filter({ has: page.getByRole("link", { name: /^atmpt_/ }) });
  assert.equal(await attempts.count(), 3, "three attempts");
  for (const a of await attempts.all()) {
    assert.match(await a.innerText(), /\bfailed\s+500\b/);
  }

  await submit(page, destination.getByRole("button", { name: "Resend" }));
  await page.getByRole("status").filter({ hasText: "Sent again" }).waitFor();
  const resent = (await sink.waitFor(seen + 4))[seen + 3];
  assert.equal(resent.headers["webhook-id"], msg.id, "the same message, sent again");
  await reloadUntilVisible(page, attempts.filter({ hasText: "succeeded" }), "the resent attempt to succeed");
  await reloadUntilVisible(page, destination.filter({ hasText: "succeeded" }), "the delivery to be marked succeeded");
  assert.equal(await attempts.count(), 4);
  await screenshot(page, "message");

  // A failed attempt's page: the request as sent, the receiver's answer.
  await attempts.filter({ hasText: "failed" }).first().getByRole("link").click();
  await page.getByRole("heading", { level: 1, name: /^Attempt atmpt_/ }).waitFor();
  const sent = page.getByRole("table", { name: "Request headers" });
  assert.equal(await sent.getByRole("row").filter({ hasText: "webhook-id" }).getByRole("cell").nth(1).innerText(), msg.id);
  await page.getByText("failing on purpose").waitFor();
  assert.equal(await page.getByRole("table", { name: "Response headers" }).getByRole("row").filter({ hasText: "content-type" }).count(), 1);
  await screenshot(page, "attempt");
});

consoleTest("an event type gets a schema and is archived and restored", async (page) => {
  needs("signedIn", "signing in: a wrong token is refused, the admin token opens Applications");
  await page.goto(`${hookd.base}/console/event-types`);
  await page.getByRole("link", { name: EVENT_TYPE }).click();
  await heading(page, EVENT_TYPE).waitFor();
  const schema = { type: "object", required: ["invoice"], properties: { invoice: { type: "string" }, amountDue: { type: "integer" } } };
  await page.getByLabel("JSON Schema").fill(JSON.stringify(schema));
  await page.getByLabel("Description").fill("An invoice was paid in full");
  await submit(page, page.getByRole("button", { name: "Save" }));
  await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
  const et = await api("GET", `/api/v1/event-type/${EVENT_TYPE}`);
  assert.deepEqual(et.schemas["1"], schema, "its first schema, version 1");
  assert.equal(et.description, "An invoice was paid in full");
  await screenshot(page, "event-type");

  await submit(page, page.getByRole("button", { name: "Archive" }));
  await page.getByRole("status").filter({ hasText: "Archived" }).waitFor();
  await page.getByRole("link", { name: EVENT_TYPE }).click();
  await submit(page, page.getByRole("button", { name: "Restore" }));
  assert.equal((await api("GET", `/api/v1/event-type/${EVENT_TYPE}`)).archived, false);
});

consoleTest("the testing console: a payload checked against the schema, sent, and followed live", async (page) => {
  const endpointUrl = needs("endpointUrl", "adding an endpoint for invoice.paid");
  await page.goto(endpointUrl);
  await page.getByRole("link", { name: "Testing console" }).click();
  await heading(page, "Send a test event").waitFor();
  const payload = page.getByLabel(/^Payload of/);

  // The inspector names where the payload breaks the event type's schema.
  await payload.fill(JSON.stringify({ invoice: 42 }));
  assert.equal((await submit(page, page.getByRole("button", { name: "Check" }))).status(), 422);
  const verdict = page.locator("#inspector");
  await verdict.getByText("Does not match the event type's schema").waitFor();
  assert.match(await verdict.getByRole("row").filter({ hasText: "/invoice" }).innerText(), /\/invoice\s+42 is not of type "string"/);
  await screenshot(page, "testing");

  const seen = sink.requests.length;
  await payload.fill(JSON.stringify({ invoice: "in_2002", amountDue: 100 }));
  await submit(page, page.getByRole("button", { name: "Check" }));
  await verdict.getByText("Matches the event type's schema.").waitFor();
  await submit(page, page.getByRole("button", { name: "Send", exact: true }));
  await page.getByRole("status").filter({ hasText: "The attempt is in" }).waitFor({ timeout: DELIVERY_TIMEOUT_MS });
  const delivered = (await sink.waitFor(seen + 1))[seen];
  assert.deepEqual(JSON.parse(delivered.body), { invoice: "in_2002", amountDue: 100 });
});

consoleTest("shaping an endpoint: a filter and a connector preset set in the endpoint's form", async (page) => {
  const appUrl = needs("appUrl", "creating an application through the form, and opening it");
  const appId = new URL(appUrl).pathname.split("/").pop();
  const ep = await api("POST", `/api/v1/app/${appId}/endpoint`, { url: `${sink.base}/shaped`, filterTypes: [EVENT_TYPE] });
  await page.goto(`${appUrl}/endpoints/${ep.id}`);
  await page.getByText("Shape what it receives").click();

  await page.getByLabel(/^Filter/).fill("/amount gt 100");
  await submit(page, page.getByRole("button", { name: "Save filter" }));
  await page.getByText("Shape what it receives").click();
  assert.equal(await setting(page, "Filter").innerText(), "/amount gt 100");

  await page.getByLabel("Connector", { exact: true }).selectOption({ label: "Make (preset)" });
  await submit(page, page.getByRole("button", { name: "Use connector" }));
  await page.getByText("Shape what it receives").click();
  assert.equal(await setting(page, "Connector").innerText(), "preset:make");

  // Only the big invoice passes the filter; it arrives flat, as a Make webhook takes it.
  const shaped = () => sink.requests.filter((r) => r.path === "/shaped");
  await api("POST", `/api/v1/app/${appId}/msg`, { eventType: EVENT_TYPE, payload: { amount: 5 } });
  await api("POST", `/api/v1/app/${appId}/msg`, { eventType: EVENT_TYPE, payload: { amount: 500 } });
  const got = await waitUntil(() => shaped().length >= 1 && shaped(), "the shaped delivery");
  await sleep(300);
  assert.equal(shaped().length, 1, "the small invoice was filtered out");
  const body = JSON.parse(got[0].body);
  assert.equal(body.event_type, EVENT_TYPE);
  assert.equal(body.amount, 500);
  await api("DELETE", `/api/v1/app/${appId}/endpoint/${ep.id}`);
});

consoleTest("keyboard: the first Tab on a page focuses the visible Skip to content link", async (page) => {
  const signedOut = await browser.newPage();
  try {
    const pages = [
      [signedOut, () => `${hookd.base}/console/login`],
      [page, () => `${hookd.base}/console/apps`],
      [page, () => needs("appUrl", "creating an application through the form, and opening it")],
      [page, () => needs("endpointUrl", "adding an endpoint for invoice.paid")],
    ];
    for (const [p, where] of pages) {
      const url = where();
      await p.goto(url);
      await p.keyboard.press("Tab");
      const skip = p.getByRole("link", { name: "Skip to content" });
      assert.ok(await skip.evaluate((el) => el === document.activeElement), `the first Tab on ${url} focuses it`);
      const box = await skip.boundingBox();
      assert.ok(box && box.x >= 0 && box.y >= 0, `focused, it is on screen (${JSON.stringify(box)}) on ${url}`);
      await p.keyboard.press("Enter");
      // Enter follows it to the content (a same-page navigation, so waited for).
      await p.waitForURL((u) => u.hash === "#main");
    }
  } finally {
    await signedOut.close();
  }
});

consoleTest("another organisation sees none of Billing", async () => {
  const appUrl = needs("appUrl", "creating an application through the form, and opening it");
  const endpointUrl = needs("endpointUrl", "adding an endpoint for invoice.paid");
  const env = await api("POST", "/api/v1/management/environment", { name: "B", type: "production" });
  const { token } = await api("POST", `/api/v1/management/authentication/${env.id}/api-token`, { name: "b" });
  assert.ok(token, "B's token");

  const context = await newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${hookd.base}/console`);
    await page.getByLabel("API token").fill(token);
    await submit(page, page.getByRole("button", { name: "Sign in" }));
    await heading(page, "Applications").waitFor();
    assert.equal(await page.getByRole("link", { name: "Billing" }).count(), 0, "Billing is not in B's list");
    await page.getByText("No applications yet.").waitFor();

    for (const url of [appUrl, endpointUrl, `${appUrl}/msgs`]) {
      const resp = await page.goto(url);
      assert.equal(resp.status(), 404, `B opening ${url}`);
      await page.getByRole("alert").waitFor();
      assert.ok(!(await page.content()).includes("Billing"), `nothing of Billing on ${url}`);
    }
  } finally {
    await context.close();
  }
});

consoleTest("a portal link opens one application; an endpoint is added there; another application stays out of reach", async () => {
  const appUrl = needs("appUrl", "creating an application through the form, and opening it");
  const billing = appUrl.split("/").pop();
  const customer = await api("POST", "/api/v1/app", { name: "Portal customer" });
  const capabilities = ["ViewBase", "ManageEndpoint", "ViewEndpointSecret", "CreateAttempts"];
  // The organisation's theme: the portal wears it, the console does not.
  const theme = { customColor: "#0a7f5a", displayName: "Acme webhooks", customThemeOverride: { borderRadius: { button: "full" } } };
  await api("PUT", "/api/v1/management/environment-settings", theme);
  const access = await api("POST", `/api/v1/auth/app-portal-access/${customer.id}`, { capabilities });
  assert.ok(access.url, "a portal link");

  const context = await newContext();
  try {
    const page = await context.newPage();
    await page.goto(access.url);
    await heading(page, "Portal customer").waitFor();
    assert.equal(pathOf(page), `/portal/apps/${customer.id}`);
    assert.equal(await mainNav(page).getByRole("link", { name: "Applications" }).count(), 0, "one application only");

    await page.getByText("Acme webhooks").first().waitFor();
    const add = page.getByRole("button", { name: "Add endpoint" });
    const look = await add.evaluate((el) => [getComputedStyle(el).backgroundColor, getComputedStyle(el).borderRadius]);
    assert.deepEqual(look, ["rgb(10, 127, 90)", "999px"], "the theme's colour and button radius");

    await page.getByLabel("URL", { exact: true }).fill(`${sink.base}/portal`);
    await submit(page, add);
    await page.getByRole("heading", { level: 1, name: `${sink.base}/portal` }).waitFor();
    await page.goto(`${hookd.base}/portal/apps/${customer.id}`);
    await screenshot(page, "portal");
    const endpoints = await api("GET", `/api/v1/app/${customer.id}/endpoint`);
    assert.deepEqual(endpoints.data.map((e) => e.url), [`${sink.base}/portal`]);

    for (const url of [`${hookd.base}/portal/apps/${billing}`, `${hookd.base}/portal/apps/${billing}/msgs`]) {
      const resp = await page.goto(url);
      assert.equal(resp.status(), 404, `the portal opening ${url}`);
      assert.ok(!(await page.content()).includes("Billing"), `nothing of Billing on ${url}`);
    }
    // The portal session opens no console page either.
    await page.goto(`${hookd.base}/console/apps`);
    assert.equal(pathOf(page), "/console/login");
  } finally {
    await context.close();
  }

  // The link opened once.
  const later = await newContext();
  try {
    const resp = await (await later.newPage()).goto(access.url);
    assert.equal(resp.status(), 401, "a used portal link");
  } finally {
    await later.close();
  }
});

consoleTest("signing out returns to the sign-in page, and the console then asks to sign in", async (page) => {
  needs("signedIn", "signing in: a wrong token is refused, the admin token opens Applications");
  await page.goto(`${hookd.base}/console/apps`);
  await submit(page, mainNav(page).getByRole("button", { name: "Sign out" }));
  await heading(page, "Sign in to hookd").waitFor();
  assert.equal(pathOf(page), "/console/login");
  assert.deepEqual(await admin.cookies(), [], "the session cookie is gone");

  await page.goto(`${hookd.base}/console/apps`);
  assert.equal(pathOf(page), "/console/login");
  await heading(page, "Sign in to hookd").waitFor();
});
