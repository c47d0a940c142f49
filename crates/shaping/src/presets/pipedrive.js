// Pipedrive API: adds one item (a person, a deal…) per message.
function handler(webhook) {
  var object = required(webhook, "object");
  if (!/^[a-z]+$/.test(object)) throw new Error("object is an entity, such as persons, deals or organizations");
  webhook.url = origin(webhook.url) + "/api/v1/" + object;
  webhook.payload = mapped(webhook, "fields");
  return webhook;
}
