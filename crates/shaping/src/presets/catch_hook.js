// A catch hook (Zapier, Make, n8n): the payload's fields flat, with the
// event type and message id beside them.
function handler(webhook) {
  var p = webhook.payload, out = { event_type: webhook.eventType, webhook_id: webhook.msgId };
  if (p !== null && typeof p === "object" && !Array.isArray(p)) {
    for (var k in p) out[k] = p[k];
  } else {
    out.data = p;
  }
  webhook.payload = out;
  return webhook;
}
