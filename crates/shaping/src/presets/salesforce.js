// Salesforce REST API: creates one sObject record per message.
function handler(webhook) {
  var sobject = required(webhook, "sobject");
  if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(sobject)) throw new Error("sobject is an object's API name, such as Lead");
  var version = webhook.variables.apiVersion || "v60.0";
  if (!/^v\d+\.\d$/.test(version)) throw new Error("apiVersion looks like v60.0");
  webhook.url = origin(webhook.url) + "/services/data/" + version + "/sobjects/" + sobject + "/";
  webhook.payload = mapped(webhook, "fields");
  return webhook;
}
