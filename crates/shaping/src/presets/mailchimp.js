// Mailchimp Marketing API: adds or updates an audience member (keyed by the
// MD5 of the lowercase email address).
function handler(webhook) {
  var list = required(webhook, "listId");
  if (!/^[A-Za-z0-9]+$/.test(list)) throw new Error("listId is an audience id, such as a1b2c3d4e5");
  var at = webhook.variables.emailField || "/email";
  var email = value(webhook, at);
  if (typeof email !== "string" || email.indexOf("@") < 1) throw new Error("the payload has no email address at " + at);
  webhook.method = "PUT";
  webhook.url = origin(webhook.url) + "/3.0/lists/" + list + "/members/" + hookd.md5(email.toLowerCase());
  webhook.payload = {
    email_address: email,
    status_if_new: webhook.variables.status || "subscribed",
    merge_fields: mapped(webhook, "mergeFields")
  };
  return webhook;
}
