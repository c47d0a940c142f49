// Google Sheets API: appends one row per message.
function handler(webhook) {
  var id = required(webhook, "spreadsheetId");
  var range = webhook.variables.range || "Sheet1!A1";
  var columns = JSON.parse(webhook.variables.columns || '["$msgId", "$eventType", "$payload"]');
  var row = columns.map(function (c) {
    var v = value(webhook, c);
    if (v === undefined || v === null) return "";
    return typeof v === "object" ? JSON.stringify(v) : v;
  });
  webhook.url = origin(webhook.url) + "/v4/spreadsheets/" + encodeURIComponent(id) + "/values/" +
    encodeURIComponent(range) + ":append?valueInputOption=RAW&insertDataOption=INSERT_ROWS";
  webhook.payload = { values: [row] };
  return webhook;
}
