//! `hookd mcp`: hookd's MCP server on stdio, for assistants that start their
//! MCP servers as programs. One JSON-RPC message a line in, one answer a line
//! out; the tools act through a running hookd server's API with the token
//! given, so that token's scope and rights hold exactly as over HTTP. Logs go
//! to stderr: stdout carries the protocol only.

use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use hookd_api::mcp::{rpc, Answer, Backend, Scope, Server};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Args)]
pub struct McpOptions {
    /// The hookd server's base URL.
    #[arg(long, env = "HOOKD_URL", default_value = "http://127.0.0.1:8071")]
    pub server: String,
    /// An MCP token (`mcp_…`), or an API or application portal token.
    #[arg(long, env = "HOOKD_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Leave out (and refuse) the tools that send webhooks, whatever the token may do.
    #[arg(long)]
    pub read_only: bool,
}

/// Answers of the API are read up to this size.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// hookd's API over HTTP.
struct HttpBackend {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Backend for HttpBackend {
    async fn call(&self, method: Method, path_and_query: &str, body: Option<Value>) -> Answer {
        let mut request =
            self.client.request(method, format!("{}{path_and_query}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let unreachable = |e: reqwest::Error| Answer {
            status: 0,
            body: json!({"detail": format!("could not reach hookd at {}: {e}", self.base)}),
        };
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return unreachable(e),
        };
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if bytes.len() + chunk.len() <= MAX_ANSWER => bytes.extend_from_slice(&chunk),
                Ok(Some(_)) => return Answer { status: 0, body: json!({"detail": "hookd's answer was too large"}) },
                Ok(None) => break,
                Err(e) => return unreachable(e),
            }
        }
        Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }
}

pub async fn run(opts: McpOptions) -> anyhow::Result<()> {
    let client =
        reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).timeout(Duration::from_secs(60)).build()?;
    let api = HttpBackend { client, base: opts.server.trim_end_matches('/').to_string(), token: opts.token };
    let mut scope = Scope::discover(&api).await.map_err(|refusal| match refusal.status {
        0 => anyhow!("{}; is `hookd serve` running there? (--server)", refusal.detail()),
        401 => anyhow!("hookd refused the token (unknown, expired or revoked): {}", refusal.detail()),
        _ => anyhow!("hookd refused the token: {}", refusal.detail()),
    })?;
    scope.read_only |= opts.read_only;
    tracing::info!(app = ?scope.app_id, read_only = scope.read_only, "MCP server on stdio");
    serve(&Server::new(api, scope), BufReader::new(tokio::io::stdin()), tokio::io::stdout()).await
}

/// Answers each line of `input` on `output` until `input` ends.
async fn serve<B: Backend>(
    server: &Server<B>,
    mut input: impl AsyncBufRead + Unpin,
    mut output: impl tokio::io::AsyncWrite + Unpin,
) -> anyhow::Result<()> {
    let mut line = Vec::new();
    while let Some(fits) = read_line(&mut input, rpc::MAX_MESSAGE_BYTES, &mut line).await? {
        let reply = if !fits {
            let why = format!("a message is at most {} bytes", rpc::MAX_MESSAGE_BYTES);
            Some(rpc::error(Value::Null, rpc::INVALID_REQUEST, why))
        } else if line.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            rpc::handle_bytes(server, &line).await
        };
        if let Some(reply) = reply {
            let mut text = reply.to_string();
            text.push('\n');
            output.write_all(text.as_bytes()).await?;
            output.flush().await?;
        }
    }
    Ok(())
}

/// Reads one line (without its newline) into `line`, keeping at most `max`
/// bytes: `Some(true)` a line, `Some(false)` one longer than `max` (skipped
/// to its end), `None` at the end of input.
async fn read_line(
    input: &mut (impl AsyncBufRead + Unpin),
    max: usize,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let mut fits = true;
    let mut read_any = false;
    loop {
        let buf = input.fill_buf().await?;
        if buf.is_empty() {
            return Ok(read_any.then_some(fits));
        }
        read_any = true;
        let (part, used, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        if fits && line.len() + part.len() <= max {
            line.extend_from_slice(part);
        } else {
            fits = false;
            line.clear();
        }
        input.consume(used);
        if done {
            return Ok(Some(fits));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_read_within_their_bound() {
        let text = b"short\n0123456789abc\n\nlast";
        let mut input = BufReader::with_capacity(4, &text[..]);
        let mut line = Vec::new();
        let mut got = Vec::new();
        while let Some(fits) = read_line(&mut input, 10, &mut line).await.unwrap() {
            got.push((fits, String::from_utf8(line.clone()).unwrap()));
        }
        let want = [(true, "short"), (false, ""), (true, ""), (true, "last")];
        assert_eq!(got, want.map(|(f, s)| (f, s.to_string())));
    }
}
