// HubSpot CRM objects API: creates one object (a contact, a deal…) per message.
function handler(webhook) {
  var type = required(webhook, "objectType");
  if (!/^[A-Za-z0-9_\-]+$/.test(type)) throw new Error("objectType is an object type, such as contacts");
  var props = mapped(webhook, "properties"), out = {};
  for (var k in props) {
    var v = props[k];
    out[k] = v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
  }
  webhook.url = origin(webhook.url) + "/crm/v3/objects/" + type;
  webhook.payload = { properties: out };
  return webhook;
}
