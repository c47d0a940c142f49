// Google Chat incoming webhook: a text message.
function handler(webhook) {
  webhook.payload = { text: "*" + webhook.eventType + "*\n```" + summary(webhook, 3800) + "```" };
  return webhook;
}
