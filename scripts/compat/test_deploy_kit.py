"""The deployment kit in deploy/, checked with the tools it is written for:

- a real Prometheus (Debian's `prometheus`) scrapes a running hookd with
  deploy/prometheus/alerts.yml loaded; every PromQL query of the Grafana
  dashboard and of the alert rules runs against it through `promtool query
  instant`, and the key figures match the traffic sent;
- `promtool check rules` and `promtool test rules` (the alert rules' unit tests);
- /metrics keeps stable names and bounded labels (no ids in label values);
- `systemd-analyze verify` on the systemd unit;
- `kubernetes-validate --strict` on the Kubernetes manifests.

The server and sink fixtures are test_svix_sdk.py's. Without prometheus,
promtool or systemd-analyze the tests are skipped locally and fail in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from svix.api import ApplicationIn, EndpointIn, MessageIn

from test_svix_sdk import REPO_ROOT, app, server, sink, svix, unique  # noqa: F401 (fixtures)

DEPLOY = REPO_ROOT / "deploy"
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is missing; CI must install it (apt-get install prometheus systemd)")
        pytest.skip(f"{name} is not installed")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dashboard_queries() -> list[str]:
    dash = json.loads((DEPLOY / "grafana" / "hookd.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    # Grafana's interval variable, as Grafana would fill it for a short range.
    return [e.replace("$__rate_interval", "1m") for e in exprs]


def rule_queries() -> list[str]:
    text = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    # The rules file is YAML; its `expr:` values are one line or a `|` block.
    exprs, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        if m:
            indent, rest = len(m.group(1)), m.group(2)
            if rest.strip() == "|":
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i].strip())
                    i += 1
                exprs.append(" ".join(b for b in block if b))
                continue
            exprs.append(rest.strip())
        i += 1
    return exprs


class Prometheus:
    def __init__(self, target: str, tmp: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        rules = tmp / "alerts.yml"
        shutil.copy(DEPLOY / "prometheus" / "alerts.yml", rules)
        config = tmp / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {rules}\n"
            "scrape_configs:\n  - job_name: hookd\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log = open(tmp / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=self.log,
        )

    def get(self, path: str, **params) -> dict:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())

    def instant(self, expr: str) -> list:
        return self.get("/api/v1/query", query=expr)["data"]["result"]

    def wait_for(self, expr: str, check, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.instant(expr)
                if last and check(last):
                    return last
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{expr}: {last}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.log.close()


@pytest.fixture(scope="module")
def traffic(svix, sink):
    """Messages delivered to one endpoint and failing on another."""
    application = svix.application.create(ApplicationIn(name=unique("deploy-kit")))
    ok_path, bad_path = sink.new_path(), sink.new_path()
    sink.set_status(bad_path, 500)
    svix.endpoint.create(application.id, EndpointIn(url=sink.base + ok_path, uid=unique("ok-").replace(".", "-")))
    svix.endpoint.create(application.id, EndpointIn(url=sink.base + bad_path, uid=unique("bad-").replace(".", "-")))
    for n in range(5):
        svix.message.create(application.id, MessageIn(event_type="kit.event", payload={"n": n}))
    sink.wait_for(ok_path, 5)
    sink.wait_for(bad_path, 5)
    return application


def test_every_dashboard_and_alert_query_runs_against_a_real_prometheus(server, svix, traffic, tmp_path):
    promtool = tool("promtool")
    target = urllib.parse.urlparse(server.base).netloc
    prom = Prometheus(target, tmp_path)
    try:
        prom.wait_for('up{job="hookd"}', lambda r: r[0]["value"][1] == "1")
        # Traffic while it scrapes, for the rates.
        for n in range(10):
            svix.message.create(traffic.id, MessageIn(event_type="kit.event", payload={"n": n}))
            time.sleep(0.2)
        # The alert rules loaded and evaluate without error.
        deadline = time.monotonic() + 20
        while True:
            rules = [r for g in prom.get("/api/v1/rules")["data"]["groups"] for r in g["rules"]]
            if rules and all(r.get("health") == "ok" for r in rules):
                break
            assert time.monotonic() < deadline, rules
            time.sleep(0.5)
        assert {r["name"] for r in rules} >= {"HookdDown", "HookdFailureSpike", "HookdIngestSpike"}

        # Each query parses and runs, as promtool sends it.
        queries = dashboard_queries() + rule_queries()
        assert len(queries) >= 25, queries
        for expr in queries:
            done = subprocess.run([promtool, "query", "instant", prom.base, expr], capture_output=True, text=True)
            assert done.returncode == 0, f"{expr}\n{done.stderr}"

        # The figures match the traffic (at least: other tests of the session
        # share the server): failures classed, the store read.
        accepted = prom.wait_for("sum(hookd_messages_accepted_total)", lambda r: float(r[0]["value"][1]) >= 5)
        assert float(accepted[0]["value"][1]) >= 5
        prom.wait_for(
            'sum(hookd_attempt_failures_total{class="http5xx"})', lambda r: float(r[0]["value"][1]) >= 5
        )
        prom.wait_for('sum(hookd_attempts_total{outcome="success"})', lambda r: float(r[0]["value"][1]) >= 5)
        prom.wait_for("min(hookd_database_up)", lambda r: r[0]["value"][1] == "1")
        prom.wait_for("max(hookd_queue_lag_seconds)", lambda r: float(r[0]["value"][1]) >= 0)
        prom.wait_for('hookd_build_info', lambda r: r[0]["metric"]["version"] != "")
        prom.wait_for(
            "histogram_quantile(0.5, sum by (le) (rate(hookd_attempt_duration_seconds_bucket[1m])))",
            lambda r: float(r[0]["value"][1]) > 0,
        )
    finally:
        prom.stop()


def test_metrics_have_stable_names_and_bounded_labels(server, traffic):
    with urllib.request.urlopen(f"{server.base}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    names = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    for wanted in [
        "hookd_messages_accepted",
        "hookd_attempts",
        "hookd_attempt_failures",
        "hookd_delivery_latency_seconds",
        "hookd_attempt_duration_seconds",
        "hookd_queue_depth",
        "hookd_queue_lag_seconds",
        "hookd_database_up",
        "hookd_endpoint_breakers_open",
    ]:
        assert wanted in names, f"{wanted} missing from {sorted(names)}"
    allowed = {"outcome", "class", "to", "reason", "signal", "le", "version", "state"}
    for labels in re.findall(r"^hookd_\w+\{([^}]*)\}", text, re.M):
        for name, value in re.findall(r'(\w+)="([^"]*)"', labels):
            assert name in allowed, f"unexpected label {name}"
            assert not re.match(r"^(msg|app|ep|atmpt|org)_", value), f"an id in a label: {labels}"


def test_alert_rules_pass_promtool():
    promtool = tool("promtool")
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run([promtool, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_systemd_unit_verifies(tmp_path):
    analyze = tool("systemd-analyze")
    # verify checks that ExecStart's binary exists: point it at the one built.
    binary = os.environ.get("HOOKD_BIN", "target/debug/hookd")
    binary = str(binary if os.path.isabs(binary) else REPO_ROOT / binary)
    unit = (DEPLOY / "systemd" / "hookd.service").read_text()
    assert "ExecStart=/usr/local/bin/hookd serve" in unit
    (tmp_path / "hookd.service").write_text(unit.replace("/usr/local/bin/hookd", binary))
    done = subprocess.run([analyze, "verify", str(tmp_path / "hookd.service")], capture_output=True, text=True)
    # A bad directive is only a warning to verify: any output fails the test.
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stdout + done.stderr


def test_the_kubernetes_manifests_validate():
    validate = VENV_BIN / "kubernetes-validate"
    assert validate.exists(), "kubernetes-validate comes with scripts/compat/requirements.txt"
    manifests = sorted(str(p) for p in (DEPLOY / "kubernetes").glob("*.yaml"))
    assert len(manifests) >= 4
    done = subprocess.run([str(validate), "--strict", *manifests], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (DEPLOY / "kubernetes" / "deployment.yaml").read_text()
    # Readiness follows the database; liveness does not.
    assert re.search(r"readinessProbe:\s*\n\s*httpGet: \{path: /api/v1/health", text)
    assert re.search(r"livenessProbe:\s*\n\s*httpGet: \{path: /livez", text)
