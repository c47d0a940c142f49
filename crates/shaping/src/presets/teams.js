// Microsoft Teams (Workflows or incoming webhook): a message with an Adaptive Card.
function handler(webhook) {
  var facts = fields(webhook, 20).map(function (f) {
    return { title: f[0], value: f[1].slice(0, 1000) };
  });
  webhook.payload = {
    type: "message",
    attachments: [{
      contentType: "application/vnd.microsoft.card.adaptive",
      contentUrl: null,
      content: {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        type: "AdaptiveCard",
        version: "1.4",
        body: [
          { type: "TextBlock", text: webhook.eventType, weight: "Bolder", size: "Medium", wrap: true },
          { type: "FactSet", facts: facts },
          { type: "TextBlock", text: "Message " + webhook.msgId, isSubtle: true, size: "Small", wrap: true }
        ]
      }
    }]
  };
  return webhook;
}
