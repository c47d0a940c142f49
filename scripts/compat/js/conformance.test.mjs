// The shared Standard Webhooks vectors (conformance/vectors.json) through the npm
// `standardwebhooks` library, pinned in package.json; no hookd binary is needed.
//
// Every `v1` vector runs with Date.now frozen at the vector's `now` (the library
// reads the clock only through Date.now) and must give its expected verdict, or the
// one its `deviations` record for this runner: a known library difference is
// asserted, not skipped, so a library that changes its mind shows up here. The
// library has no `v1a` (Ed25519); those vectors are listed as skipped, and run in
// scripts/compat/test_conformance.py and hookd's own conformance test.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Webhook } from "standardwebhooks";

const DOCUMENT = JSON.parse(readFileSync(new URL("../../../conformance/vectors.json", import.meta.url), "utf8"));
// This runner's name in a vector's `deviations`.
const RUNNER = "standardwebhooks-js";

// The raw body a receiver has: the exact bytes, as a Buffer.
const bodyOf = (vector) =>
  vector.bodyBase64 === undefined ? Buffer.from(vector.body, "utf8") : Buffer.from(vector.bodyBase64, "base64");

function libraryVerdict(vector) {
  const headers = {
    "webhook-id": vector.id,
    "webhook-timestamp": vector.timestamp,
    "webhook-signature": vector.signature,
  };
  try {
    new Webhook(vector.secret).verify(bodyOf(vector), headers, { jsonParse: false });
    return "valid";
  } catch {
    // WebhookVerificationError, or an error the constructor throws on a bad secret:
    // either way the request is refused.
    return "invalid";
  }
}

test("the frozen clock is the one the library reads", (t) => {
  // Signed in 2001: it verifies only if the library's clock says 2001 too.
  t.mock.method(Date, "now", () => 1_000_000_000_000);
  const webhook = new Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  const signature = webhook.sign("msg_1", new Date(1_000_000_000_000), "{}");
  const headers = { "webhook-id": "msg_1", "webhook-timestamp": "1000000000", "webhook-signature": signature };
  assert.deepEqual(webhook.verify("{}", headers), {});
});

for (const vector of DOCUMENT.vectors) {
  if (vector.version !== "v1") {
    test(vector.name, { skip: "the JavaScript standardwebhooks library has no v1a (Ed25519) verification" });
    continue;
  }
  test(vector.name, (t) => {
    t.mock.method(Date, "now", () => vector.now * 1000);
    const deviation = vector.deviations?.[RUNNER];
    const expected = deviation?.verdict ?? vector.expected;
    const verdict = libraryVerdict(vector);
    const why = deviation ? `recorded deviation: ${deviation.reason}` : vector.reason;
    assert.equal(verdict, expected, `${vector.name}: ${RUNNER} says ${verdict}; ${why}`);
  });
}
