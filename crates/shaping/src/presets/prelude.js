// Helpers shared by hookd's connector presets.

// The value at a JSON Pointer (RFC 6901) in `doc`; undefined when absent.
function pick(doc, pointer) {
  if (pointer === "") return doc;
  var parts = pointer.slice(1).split("/");
  var v = doc;
  for (var i = 0; i < parts.length; i++) {
    if (v === null || typeof v !== "object") return undefined;
    v = v[parts[i].replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  return v;
}

// A mapped value: "$eventType", "$msgId", "$payload" (the payload as JSON
// text), a JSON Pointer into the payload, or else the text itself.
function value(webhook, source) {
  if (source === "$eventType") return webhook.eventType;
  if (source === "$msgId") return webhook.msgId;
  if (source === "$payload") return JSON.stringify(webhook.payload);
  if (typeof source === "string" && source.charAt(0) === "/") return pick(webhook.payload, source);
  return source;
}

// The variable `name`, a JSON object of target field to source, mapped.
function mapped(webhook, name) {
  var spec = JSON.parse(webhook.variables[name] || "{}");
  var out = {};
  for (var key in spec) {
    var v = value(webhook, spec[key]);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

function required(webhook, name) {
  var v = webhook.variables[name];
  if (!v) throw new Error("the connector needs the variable " + name);
  return v;
}

function origin(url) {
  return url.replace(/\/+$/, "");
}

// The payload as indented JSON, cut to `max` characters.
function summary(webhook, max) {
  var text = JSON.stringify(webhook.payload, null, 2);
  return text.length > max ? text.slice(0, max - 1) + "\u2026" : text;
}

// The payload's top-level fields as [name, text] pairs (at most `max`).
function fields(webhook, max) {
  var p = webhook.payload, out = [];
  if (p === null || typeof p !== "object" || Array.isArray(p)) return out;
  for (var k in p) {
    if (out.length >= max) break;
    out.push([k, typeof p[k] === "string" ? p[k] : JSON.stringify(p[k])]);
  }
  return out;
}

