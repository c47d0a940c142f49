// Slack incoming webhook: a message with Block Kit blocks.
function handler(webhook) {
  var p = webhook.payload;
  var text = p && typeof p.text === "string" ? p.text : webhook.eventType;
  webhook.payload = {
    text: text.slice(0, 3000),
    blocks: [
      { type: "header", text: { type: "plain_text", text: webhook.eventType.slice(0, 150) } },
      { type: "section", text: { type: "mrkdwn", text: "```" + summary(webhook, 2990) + "```" } },
      { type: "context", elements: [{ type: "mrkdwn", text: "Message " + webhook.msgId }] }
    ]
  };
  return webhook;
}
