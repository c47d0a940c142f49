// Discord webhook: content and one embed with the payload's fields.
function handler(webhook) {
  var embedFields = fields(webhook, 25).map(function (f) {
    var v = f[1] === "" ? "\u200b" : f[1];
    return { name: f[0].slice(0, 256), value: v.slice(0, 1024), inline: v.length <= 40 };
  });
  webhook.payload = {
    content: webhook.eventType.slice(0, 2000),
    embeds: [{ title: webhook.eventType.slice(0, 256), fields: embedFields, footer: { text: "Message " + webhook.msgId } }]
  };
  if (webhook.variables.username) webhook.payload.username = webhook.variables.username.slice(0, 80);
  return webhook;
}
