// The real `hookd serve` for the JavaScript tests (scripts/compat/js, scripts/browser):
// started on an ephemeral port with a temporary data dir, configured by its flags
// alone, stopped gracefully. The binary is $HOOKD_BIN (a relative path is taken
// from the repository root), by default target/debug/hookd.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const STARTUP_TIMEOUT_MS = 20_000;

export function hookdBinary() {
  const raw = process.env.HOOKD_BIN || "target/debug/hookd";
  const bin = path.resolve(REPO_ROOT, raw);
  if (!existsSync(bin)) {
    throw new Error(`hookd binary not found at ${bin}: build it with \`cargo build -p hookd\` or set HOOKD_BIN`);
  }
  return bin;
}

export class Hookd {
  /** `token`: the admin token it accepts; `name`: its temporary data dir's
   *  prefix; `logEnv`: the variable that sets its log filter (default warn). */
  constructor({ token, name, logEnv }) {
    Object.assign(this, { token, name, logEnv });
    this.stderr = "";
  }

  logTail() {
    return this.stderr.slice(-4000);
  }

  async start() {
    const bin = hookdBinary();
    this.dataDir = mkdtempSync(path.join(tmpdir(), `${this.name}-`));
    // The server is configured by its flags alone: no HOOKD_* from the caller's environment.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("HOOKD_")));
    const args = [
      "serve",
      "--listen", "127.0.0.1:0",
      "--data-dir", path.join(this.dataDir, "data"),
      "--admin-token", this.token,
      // Three attempts 200 ms apart, so a failing delivery is exhausted quickly.
      "--retry-schedule", "200ms,200ms",
      "--poll-interval", "100ms",
      "--allow-private-networks",
      "--log", process.env[this.logEnv] || "warn",
    ];
    this.proc = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stderr.setEncoding("utf8");
    this.proc.stderr.on("data", (d) => {
      this.stderr += d;
      if (this.stderr.length > 64_000) this.stderr = this.stderr.slice(-16_000);
    });
    this.exited = new Promise((resolve) => this.proc.on("exit", (code, signal) => resolve({ code, signal })));
    // If this process dies abruptly, do not leave the server behind.
    this.killOnExit = () => this.proc.kill("SIGKILL");
    process.on("exit", this.killOnExit);

    // Keeps reading stdout to the end, so the server never blocks on a full pipe.
    const lines = createInterface({ input: this.proc.stdout });
    this.base = await new Promise((resolve, reject) => {
      let listening = false;
      const fail = (why) => {
        if (listening) return;
        this.proc.kill("SIGKILL");
        reject(new Error(`hookd ${why} before printing its listening line; stderr:\n${this.logTail()}`));
      };
      const timer = setTimeout(() => fail(`took over ${STARTUP_TIMEOUT_MS} ms`), STARTUP_TIMEOUT_MS);
      lines.on("line", (line) => {
        if (!listening && line.startsWith("listening on ")) {
          listening = true;
          clearTimeout(timer);
          resolve(line.slice("listening on ".length).trim());
        }
      });
      this.proc.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        fail(`exited (code ${code}, signal ${signal})`);
      });
    });
  }

  async stop() {
    if (!this.proc) return;
    this.proc.kill("SIGTERM");
    // Graceful shutdown first; a server that hangs is killed.
    const killer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(killer);
    process.off("exit", this.killOnExit);
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
