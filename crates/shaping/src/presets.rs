//! Connector presets: ready-made transformations for the destinations people
//! send webhooks to most (chat tools, automation catch hooks, CRMs, mailing
//! lists, spreadsheets), with what each needs: the shape of its URL, its
//! variables and its credentials. An endpoint using a preset runs its code as
//! its transformation (see [`crate::transform`]).

use std::collections::BTreeMap;

/// What a variable holds, checked when a preset is applied.
#[derive(Debug, Clone, Copy)]
pub enum VarKind {
    /// What the preset's code accepts: `what` says it to a person.
    Matches { what: &'static str, test: fn(&str) -> bool },
    /// A name: letters, digits, `_`, `-` and `.`.
    Name,
    /// Any text.
    Text,
    /// A JSON object of target field to source (`/pointer`, `$eventType`,
    /// `$msgId`, `$payload` or a fixed text).
    FieldMap,
    /// A JSON array of sources.
    ColumnList,
    /// One of the given words.
    OneOf(&'static [&'static str]),
}

#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    pub required: bool,
    pub kind: VarKind,
    pub help: &'static str,
}

/// How hookd authenticates to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// The URL carries the secret (chat webhooks, catch hooks).
    None,
    /// `{"token"}`: a bearer token.
    Bearer,
    /// `{"apiKey"}`: HTTP basic with any user name and the key as password.
    BasicApiKey,
    /// `{"apiToken"}`: sent in this request header.
    Header(&'static str),
    /// `{"clientId", "clientSecret", "refreshToken", "tokenUrl"?}`: OAuth2
    /// refresh-token grant against `token_url` (a 401 refreshes and retries).
    OauthRefresh { token_url: &'static str },
    /// Either a bearer `{"token"}` or the OAuth2 refresh-token grant.
    BearerOrOauth { token_url: &'static str },
}

/// What the endpoint's URL must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlShape {
    /// The path starts with one of these.
    PathPrefix(&'static [&'static str]),
    /// The path contains one of these.
    PathContains(&'static [&'static str]),
    /// The API's origin only (`https://host`): the preset adds the path.
    Origin,
}

#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// Its id in the API (`slack`, `google-sheets`…).
    pub name: &'static str,
    pub title: &'static str,
    /// Svix's `ConnectorKind` (`Custom` for the ones it does not name).
    pub kind: &'static str,
    pub description: &'static str,
    /// Markdown: where to get the URL and the credentials.
    pub instructions: &'static str,
    /// The transformation code.
    pub code: &'static str,
    pub url: UrlShape,
    /// The documented URL of the service, for the instructions and the form.
    pub example_url: &'static str,
    pub variables: &'static [Variable],
    pub credentials: Credentials,
}

fn api_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn api_version(s: &str) -> bool {
    let Some((major, minor)) = s.strip_prefix('v').and_then(|v| v.split_once('.')) else { return false };
    !major.is_empty()
        && major.chars().all(|c| c.is_ascii_digit())
        && minor.len() == 1
        && minor.chars().all(|c| c.is_ascii_digit())
}

fn slug(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn lowercase(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase())
}

fn alphanumeric(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric())
}

macro_rules! code {
    ($file:literal) => {
        concat!(include_str!("presets/prelude.js"), include_str!(concat!("presets/", $file)))
    };
}

const FIELDS_HELP: &str =
    "a JSON object of field name to source: a JSON Pointer into the payload (\"/customer/email\"), $eventType, $msgId, $payload, or a fixed text";

pub static PRESETS: &[Preset] = &[
    Preset {
        name: "slack",
        title: "Slack",
        kind: "Slack",
        description: "Posts each message to a Slack channel through an incoming webhook, as Block Kit blocks.",
        instructions: "In Slack, create an app with **Incoming Webhooks** on, add a webhook to a channel and use its URL (`https://hooks.slack.com/services/T…/B…/…`) as the endpoint URL.",
        code: code!("slack.js"),
        url: UrlShape::PathPrefix(&["/services/"]),
        example_url: "https://hooks.slack.com/services/T000/B000/XXXX",
        variables: &[],
        credentials: Credentials::None,
    },
    Preset {
        name: "teams",
        title: "Microsoft Teams",
        kind: "Teams",
        description: "Posts each message to a Teams channel as an Adaptive Card (Workflows webhook or incoming webhook).",
        instructions: "In Teams, add the **Post to a channel when a webhook request is received** workflow (or an incoming webhook) to the channel and use its URL as the endpoint URL.",
        code: code!("teams.js"),
        url: UrlShape::PathContains(&["/workflows/", "/webhookb2/", "/powerautomate/"]),
        example_url: "https://prod-00.westeurope.logic.azure.com:443/workflows/…/triggers/manual/paths/invoke?…",
        variables: &[],
        credentials: Credentials::None,
    },
    Preset {
        name: "discord",
        title: "Discord",
        kind: "Discord",
        description: "Posts each message to a Discord channel as an embed with the payload's fields.",
        instructions: "In Discord, open the channel's **Integrations → Webhooks**, create a webhook and use its URL (`https://discord.com/api/webhooks/{id}/{token}`) as the endpoint URL.",
        code: code!("discord.js"),
        url: UrlShape::PathPrefix(&["/api/webhooks/"]),
        example_url: "https://discord.com/api/webhooks/123/abc",
        variables: &[Variable {
            name: "username",
            required: false,
            kind: VarKind::Text,
            help: "the name the messages are posted under",
        }],
        credentials: Credentials::None,
    },
    Preset {
        name: "google-chat",
        title: "Google Chat",
        kind: "Custom",
        description: "Posts each message to a Google Chat space as a text message.",
        instructions: "In Google Chat, open the space's **Apps & integrations → Webhooks**, add one and use its URL (`https://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…`) as the endpoint URL.",
        code: code!("google_chat.js"),
        url: UrlShape::PathPrefix(&["/v1/spaces/"]),
        example_url: "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=…&token=…",
        variables: &[],
        credentials: Credentials::None,
    },
    Preset {
        name: "zapier",
        title: "Zapier",
        kind: "Zapier",
        description: "Sends each message to a Zapier catch hook, its payload's fields flat beside event_type and webhook_id.",
        instructions: "In Zapier, start a Zap with **Webhooks by Zapier → Catch Hook** and use its URL (`https://hooks.zapier.com/hooks/catch/…/…/`) as the endpoint URL.",
        code: code!("catch_hook.js"),
        url: UrlShape::PathPrefix(&["/hooks/catch/"]),
        example_url: "https://hooks.zapier.com/hooks/catch/123/abc/",
        variables: &[],
        credentials: Credentials::None,
    },
    Preset {
        name: "make",
        title: "Make",
        kind: "Custom",
        description: "Sends each message to a Make custom webhook, its payload's fields flat beside event_type and webhook_id.",
        instructions: "In Make, add a **Webhooks → Custom webhook** trigger and use its address (`https://hook.eu1.make.com/…`) as the endpoint URL.",
        code: code!("catch_hook.js"),
        url: UrlShape::PathPrefix(&["/"]),
        example_url: "https://hook.eu1.make.com/abcdef",
        variables: &[],
        credentials: Credentials::None,
    },
    Preset {
        name: "n8n",
        title: "n8n",
        kind: "Custom",
        description: "Sends each message to an n8n Webhook node, its payload's fields flat beside event_type and webhook_id.",
        instructions: "In n8n, add a **Webhook** node (POST) and use its production URL (`https://…/webhook/…`) as the endpoint URL.",
        code: code!("catch_hook.js"),
        url: UrlShape::PathContains(&["/webhook/", "/webhook-test/"]),
        example_url: "https://n8n.example.com/webhook/orders",
        variables: &[],
        credentials: Credentials::None,
    },
    Preset {
        name: "salesforce",
        title: "Salesforce",
        kind: "Salesforce",
        description: "Creates a Salesforce record (a Lead, a Case…) per message through the REST API, with OAuth2.",
        instructions: "Create a **Connected App** with OAuth (scopes `api` and `refresh_token`), authorise it once to get a refresh token, and use your instance URL (`https://yourdomain.my.salesforce.com`) as the endpoint URL.",
        code: code!("salesforce.js"),
        url: UrlShape::Origin,
        example_url: "https://yourdomain.my.salesforce.com",
        variables: &[
            Variable {
                name: "sobject",
                required: true,
                kind: VarKind::Matches { what: "an API name (a letter, then letters, digits and _)", test: api_name },
                help: "the object's API name, such as Lead",
            },
            Variable { name: "fields", required: true, kind: VarKind::FieldMap, help: FIELDS_HELP },
            Variable {
                name: "apiVersion",
                required: false,
                kind: VarKind::Matches { what: "a version such as v60.0", test: api_version },
                help: "the REST API version, v60.0 by default",
            },
        ],
        credentials: Credentials::OauthRefresh { token_url: "https://login.salesforce.com/services/oauth2/token" },
    },
    Preset {
        name: "hubspot",
        title: "HubSpot",
        kind: "Hubspot",
        description: "Creates a HubSpot CRM object (a contact, a company, a deal…) per message.",
        instructions: "Create a **private app** with the CRM scopes you need and use its access token, or an OAuth app's refresh token. The endpoint URL is `https://api.hubapi.com`.",
        code: code!("hubspot.js"),
        url: UrlShape::Origin,
        example_url: "https://api.hubapi.com",
        variables: &[
            Variable {
                name: "objectType",
                required: true,
                kind: VarKind::Matches { what: "letters, digits, _ and -", test: slug },
                help: "contacts, companies, deals, tickets or a custom object's type",
            },
            Variable { name: "properties", required: true, kind: VarKind::FieldMap, help: FIELDS_HELP },
        ],
        credentials: Credentials::BearerOrOauth { token_url: "https://api.hubapi.com/oauth/v1/token" },
    },
    Preset {
        name: "pipedrive",
        title: "Pipedrive",
        kind: "Custom",
        description: "Adds a Pipedrive item (a person, a deal, an organization…) per message.",
        instructions: "Copy your **personal API token** (Settings → Personal preferences → API). The endpoint URL is your company domain, `https://yourcompany.pipedrive.com`.",
        code: code!("pipedrive.js"),
        url: UrlShape::Origin,
        example_url: "https://yourcompany.pipedrive.com",
        variables: &[
            Variable {
                name: "object",
                required: true,
                kind: VarKind::Matches { what: "lowercase letters", test: lowercase },
                help: "persons, deals, organizations, leads, activities…",
            },
            Variable { name: "fields", required: true, kind: VarKind::FieldMap, help: FIELDS_HELP },
        ],
        credentials: Credentials::Header("x-api-token"),
    },
    Preset {
        name: "mailchimp",
        title: "Mailchimp",
        kind: "Custom",
        description: "Adds or updates a Mailchimp audience member per message (keyed by email address).",
        instructions: "Create an **API key** (Account → Extras → API keys); its suffix is your data centre (`…-us21`). The endpoint URL is `https://us21.api.mailchimp.com` with your data centre.",
        code: code!("mailchimp.js"),
        url: UrlShape::Origin,
        example_url: "https://us21.api.mailchimp.com",
        variables: &[
            Variable {
                name: "listId",
                required: true,
                kind: VarKind::Matches { what: "letters and digits", test: alphanumeric },
                help: "the audience id",
            },
            Variable { name: "emailField", required: false, kind: VarKind::Text, help: "where the email address is: a JSON Pointer, /email by default" },
            Variable { name: "mergeFields", required: false, kind: VarKind::FieldMap, help: FIELDS_HELP },
            Variable {
                name: "status",
                required: false,
                kind: VarKind::OneOf(&["subscribed", "pending", "unsubscribed", "transactional"]),
                help: "a new member's status, subscribed by default",
            },
        ],
        credentials: Credentials::BasicApiKey,
    },
    Preset {
        name: "google-sheets",
        title: "Google Sheets",
        kind: "Custom",
        description: "Appends a row to a Google Sheets spreadsheet per message.",
        instructions: "Create an OAuth client (Google Cloud console) with the `https://www.googleapis.com/auth/spreadsheets` scope, authorise it once for a refresh token, and share the spreadsheet with that account. The endpoint URL is `https://sheets.googleapis.com`.",
        code: code!("google_sheets.js"),
        url: UrlShape::Origin,
        example_url: "https://sheets.googleapis.com",
        variables: &[
            Variable { name: "spreadsheetId", required: true, kind: VarKind::Name, help: "the id in the spreadsheet's URL" },
            Variable { name: "range", required: false, kind: VarKind::Text, help: "where rows are appended, Sheet1!A1 by default" },
            Variable { name: "columns", required: false, kind: VarKind::ColumnList, help: "a JSON array of sources, one per column; [\"$msgId\", \"$eventType\", \"$payload\"] by default" },
        ],
        credentials: Credentials::OauthRefresh { token_url: "https://oauth2.googleapis.com/token" },
    },
];

/// The preset called `name`.
pub fn get(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

impl Preset {
    /// Whether `url` has the shape this destination's URLs have.
    pub fn check_url(&self, url: &url::Url) -> Result<(), String> {
        let path = url.path();
        let ok = match self.url {
            UrlShape::PathPrefix(prefixes) => prefixes.iter().any(|p| path.starts_with(p) && path.len() > p.len()),
            UrlShape::PathContains(parts) => parts.iter().any(|p| path.contains(p)),
            UrlShape::Origin => (path.is_empty() || path == "/") && url.query().is_none(),
        };
        if ok {
            return Ok(());
        }
        Err(match self.url {
            UrlShape::Origin => format!("{} takes the API's address alone, such as {}", self.title, self.example_url),
            _ => format!("this is not a {} webhook URL; they look like {}", self.title, self.example_url),
        })
    }

    /// Checks the variables: the required ones given, each one known and of
    /// its kind. The error names the variable.
    pub fn check_variables(&self, vars: &BTreeMap<String, String>) -> Result<(), (String, String)> {
        for v in self.variables {
            if v.required && vars.get(v.name).is_none_or(|x| x.is_empty()) {
                return Err((v.name.into(), format!("{} needs {}: {}", self.title, v.name, v.help)));
            }
        }
        for (name, value) in vars {
            let Some(v) = self.variables.iter().find(|v| v.name == name) else {
                let known: Vec<&str> = self.variables.iter().map(|v| v.name).collect();
                return Err((
                    name.clone(),
                    match known.is_empty() {
                        true => format!("{} takes no variables", self.title),
                        false => format!("{} takes {}", self.title, known.join(", ")),
                    },
                ));
            };
            check_kind(v, value).map_err(|e| (name.clone(), e))?;
        }
        Ok(())
    }
}

fn check_kind(v: &Variable, value: &str) -> Result<(), String> {
    let bad = |what: &str| Err(format!("{} is {what}", v.name));
    match v.kind {
        VarKind::Text => Ok(()),
        VarKind::Matches { what, test } => match value.len() <= 256 && test(value) {
            true => Ok(()),
            false => bad(what),
        },
        VarKind::Name => {
            let ok = !value.is_empty()
                && value.len() <= 256
                && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if ok {
                Ok(())
            } else {
                bad("a name of letters, digits, '_', '-' and '.'")
            }
        }
        VarKind::FieldMap => match serde_json::from_str::<BTreeMap<String, serde_json::Value>>(value) {
            Ok(m) if m.values().all(|s| s.is_string()) => Ok(()),
            _ => bad(FIELDS_HELP),
        },
        VarKind::ColumnList => match serde_json::from_str::<Vec<serde_json::Value>>(value) {
            Ok(l) if !l.is_empty() && l.iter().all(|s| s.is_string()) => Ok(()),
            _ => bad("a JSON array of sources, such as [\"$msgId\", \"/email\"]"),
        },
        VarKind::OneOf(words) => match words.contains(&value) {
            true => Ok(()),
            false => bad(&format!("one of {}", words.join(", "))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::{check, run, Limits, WebhookIn};
    use serde_json::{json, Value};

    fn send(preset: &str, url: &str, vars: &[(&str, &str)], payload: Value) -> (String, String, Value) {
        let p = get(preset).unwrap();
        let variables: BTreeMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        p.check_variables(&variables).unwrap();
        p.check_url(&url::Url::parse(url).unwrap()).unwrap();
        let input = WebhookIn {
            method: "POST".into(),
            url: url.into(),
            event_type: "order.paid".into(),
            msg_id: "msg_1".into(),
            channels: None,
            payload,
            headers: BTreeMap::new(),
            variables,
        };
        let out = run(p.code, &input, &Limits::default()).unwrap();
        (out.method, out.url, serde_json::from_slice(&out.body).unwrap())
    }

    #[test]
    fn every_preset_compiles() {
        for p in PRESETS {
            check(p.code).unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
    }

    #[test]
    fn chat_presets_write_each_tools_message_shape() {
        let order = json!({"id": "o_1", "total": 12.5, "customer": {"email": "ada@example.com"}});
        let (_, _, slack) = send("slack", "https://hooks.slack.com/services/T/B/x", &[], order.clone());
        assert_eq!(slack["text"], "order.paid");
        assert_eq!(slack["blocks"][0]["text"]["text"], "order.paid");
        assert!(slack["blocks"][1]["text"]["text"].as_str().unwrap().contains("\"o_1\""));
        let (_, _, teams) =
            send("teams", "https://x.logic.azure.com/workflows/1/triggers/manual/paths/invoke", &[], order.clone());
        let card = &teams["attachments"][0];
        assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
        // Fields in the payload's key order (customer, id, total).
        assert_eq!(card["content"]["body"][1]["facts"][2], json!({"title": "total", "value": "12.5"}));
        let (_, _, discord) =
            send("discord", "https://discord.com/api/webhooks/1/abc", &[("username", "Shop")], order.clone());
        assert_eq!(discord["embeds"][0]["fields"][1], json!({"name": "id", "value": "o_1", "inline": true}));
        assert_eq!(discord["username"], "Shop");
        let (_, _, chat) =
            send("google-chat", "https://chat.googleapis.com/v1/spaces/A/messages?key=k", &[], order.clone());
        assert!(chat["text"].as_str().unwrap().starts_with("*order.paid*"));
        let (_, _, zap) = send("zapier", "https://hooks.zapier.com/hooks/catch/1/a/", &[], order);
        assert_eq!(zap["event_type"], "order.paid");
        assert_eq!(zap["customer"]["email"], "ada@example.com");
    }

    #[test]
    fn api_presets_build_the_request_each_api_documents() {
        let lead = json!({"last": "Lovelace", "company": "Engines", "email": "Ada@Example.com", "n": 3});
        let fields = r#"{"LastName": "/last", "Company": "/company", "LeadSource": "hookd"}"#;
        let (method, url, body) = send(
            "salesforce",
            "https://acme.my.salesforce.com",
            &[("sobject", "Lead"), ("fields", fields)],
            lead.clone(),
        );
        assert_eq!(
            (method.as_str(), url.as_str()),
            ("POST", "https://acme.my.salesforce.com/services/data/v60.0/sobjects/Lead/")
        );
        assert_eq!(body, json!({"LastName": "Lovelace", "Company": "Engines", "LeadSource": "hookd"}));
        let props = r#"{"email": "/email", "n": "/n"}"#;
        let (_, url, body) = send(
            "hubspot",
            "https://api.hubapi.com/",
            &[("objectType", "contacts"), ("properties", props)],
            lead.clone(),
        );
        assert_eq!(url, "https://api.hubapi.com/crm/v3/objects/contacts");
        assert_eq!(body, json!({"properties": {"email": "Ada@Example.com", "n": "3"}}));
        let (_, url, _) = send(
            "pipedrive",
            "https://acme.pipedrive.com",
            &[("object", "persons"), ("fields", r#"{"name": "/last"}"#)],
            lead.clone(),
        );
        assert_eq!(url, "https://acme.pipedrive.com/api/v1/persons");
        let (method, url, body) = send(
            "mailchimp",
            "https://us21.api.mailchimp.com",
            &[("listId", "a1b2"), ("mergeFields", r#"{"LNAME": "/last"}"#)],
            lead.clone(),
        );
        assert_eq!(method, "PUT");
        // md5("ada@example.com")
        assert_eq!(url, "https://us21.api.mailchimp.com/3.0/lists/a1b2/members/3e3417d7ef77d5932a6734b916515ed5");
        assert_eq!(body["status_if_new"], "subscribed");
        assert_eq!(body["merge_fields"], json!({"LNAME": "Lovelace"}));
        let (_, url, body) = send(
            "google-sheets",
            "https://sheets.googleapis.com",
            &[("spreadsheetId", "s1"), ("columns", r#"["$msgId", "/last", "/missing", "/n"]"#)],
            lead,
        );
        assert_eq!(
            url,
            "https://sheets.googleapis.com/v4/spreadsheets/s1/values/Sheet1!A1:append?valueInputOption=RAW&insertDataOption=INSERT_ROWS"
        );
        assert_eq!(body, json!({"values": [["msg_1", "Lovelace", "", 3]]}));
    }

    #[test]
    fn urls_and_variables_are_checked_with_a_reason() {
        let slack = get("slack").unwrap();
        let err = slack.check_url(&url::Url::parse("https://example.com/hook").unwrap()).unwrap_err();
        assert!(err.contains("hooks.slack.com/services"), "{err}");
        let sf = get("salesforce").unwrap();
        assert!(sf.check_url(&url::Url::parse("https://acme.my.salesforce.com/services").unwrap()).is_err());
        let vars = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(sf.check_variables(&vars(&[("fields", "{}")])).unwrap_err().0, "sobject");
        assert_eq!(sf.check_variables(&vars(&[("sobject", "Lead"), ("fields", "[1]")])).unwrap_err().0, "fields");
        assert_eq!(sf.check_variables(&vars(&[("sobject", "Lead"), ("fields", "{}"), ("x", "1")])).unwrap_err().0, "x");
        // What the code would refuse at every send is refused now.
        for (preset, name, value) in [
            ("salesforce", "apiVersion", "60.0"),
            ("salesforce", "sobject", "1Lead"),
            ("pipedrive", "object", "Persons"),
            ("hubspot", "objectType", "a.b"),
            ("mailchimp", "listId", "a-1"),
        ] {
            let p = get(preset).unwrap();
            let mut given: BTreeMap<String, String> =
                p.variables.iter().filter(|v| v.required).map(|v| (v.name.to_string(), "{}".to_string())).collect();
            for v in p.variables.iter().filter(|v| v.required && !matches!(v.kind, VarKind::FieldMap)) {
                given.insert(v.name.to_string(), "ok".to_string());
            }
            given.insert(name.to_string(), value.to_string());
            assert_eq!(p.check_variables(&given).unwrap_err().0, name, "{preset} {name}={value}");
        }
        let mc = get("mailchimp").unwrap();
        let err = mc.check_variables(&vars(&[("listId", "a1"), ("status", "maybe")])).unwrap_err();
        assert!(err.1.contains("subscribed, pending"), "{err:?}");
        assert!(slack.check_variables(&vars(&[("a", "b")])).unwrap_err().1.contains("no variables"));
    }

    #[test]
    fn a_payload_without_what_the_destination_needs_fails_the_send() {
        let mc = get("mailchimp").unwrap();
        let input = WebhookIn {
            method: "POST".into(),
            url: "https://us21.api.mailchimp.com".into(),
            event_type: "signup".into(),
            msg_id: "msg_1".into(),
            channels: None,
            payload: json!({"name": "no email"}),
            headers: BTreeMap::new(),
            variables: BTreeMap::from([("listId".to_string(), "a1".to_string())]),
        };
        let err = run(mc.code, &input, &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("no email address at /email"), "{err}");
    }
}
