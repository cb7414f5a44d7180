"""The Prometheus operator kit (deploy/prometheus/): the rules and the example configuration pass
promtool's checks; the rules' unit tests pass, with a case where each alert fires and one where it
stays quiet; every series the rules read is one a live gateway exports; and a real Prometheus
(Debian's `prometheus`, on 127.0.0.1 with a temporary storage directory) scrapes a running
gateway every second, evaluates the rules without error, and its recording rules give the
values of the traffic the test sends."""
import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

from harness import Gateway, connect, free_port, recv_json, run_tests, stop_process

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KIT = os.path.join(ROOT, "deploy", "prometheus")
RULES = os.path.join(KIT, "odin-ws.rules.yml")
RULE_TESTS = os.path.join(KIT, "odin-ws.rules.test.yml")
CONFIG = os.path.join(KIT, "prometheus.yml")
OPERATIONS = os.path.join(ROOT, "docs", "operations.md")


def tool(name):
    """promtool and prometheus come with Debian's `prometheus` (scripts/install-deps.sh test)."""
    path = shutil.which(name) or f"/usr/bin/{name}"
    assert os.path.exists(path), f"{name} not found: apt-get install prometheus"
    return path


def run(*args, cwd=None):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(args)}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def load_rules():
    """The rules file as (kind, name, body) per rule, read without a YAML library (python3-yaml
    is not a test dependency): each rule starts at `- record:` or `- alert:`, and its body is
    everything up to the next rule."""
    text = open(RULES).read()
    starts = list(re.finditer(r"^\s*- (record|alert): (\S+)\s*$", text, re.M))
    rules = []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        rules.append((m.group(1), m.group(2), text[m.end():end]))
    return rules


def rule_expressions():
    """Every rule's expression text, comment lines dropped."""
    exprs = []
    for _, _, body in load_rules():
        m = re.search(r"^\s*expr: (>\n)?(.*?)(?=^\s*(for|labels|annotations):|\Z)", body, re.M | re.S)
        assert m, body
        exprs.append("\n".join(l for l in m.group(2).splitlines() if not l.strip().startswith("#")))
    return exprs


def test_promtool_check(binary):
    promtool = tool("promtool")
    out = run(promtool, "check", "rules", RULES)
    assert "SUCCESS" in out, out
    # The example configuration, with the rule file it loads.
    out = run(promtool, "check", "config", CONFIG)
    assert "SUCCESS" in out, out


def test_promtool_unit_tests(binary):
    out = run(tool("promtool"), "test", "rules", os.path.basename(RULE_TESTS), cwd=KIT)
    assert "SUCCESS" in out, out


def test_every_alert_tested_and_documented(binary):
    """Each alert has a severity, a summary, a description and a runbook entry in
    docs/operations.md, and the unit tests hold a case where it fires and one where it stays
    quiet."""
    alerts = [(name, body) for kind, name, body in load_rules() if kind == "alert"]
    assert len(alerts) >= 20, len(alerts)
    headings = {line[4:].strip() for line in open(OPERATIONS) if line.startswith("### ")}
    tests = open(RULE_TESTS).read()
    for name, body in alerts:
        assert re.search(r"^\s*severity: (critical|warning|info)$", body, re.M), name
        assert re.search(r"^\s*summary: ", body, re.M), name
        assert re.search(r"^\s*description: ", body, re.M), name
        runbook = re.search(r'^\s*runbook: "docs/operations\.md#(\S+)"$', body, re.M)
        assert runbook and runbook.group(1) == name.lower(), name
        assert name in headings, f"no '### {name}' in docs/operations.md"
        quiet = re.search(rf"alertname: {name}, exp_alerts: \[\]", tests)
        fires = re.search(rf"alertname: {name}\n\s*exp_alerts:\n\s*- exp_labels:", tests)
        assert quiet, f"{name}: no case where it stays quiet"
        assert fires, f"{name}: no case where it fires"


def exported(gw):
    """The gateway's /metrics: {metric family: type} and {(label, value)} seen on ws_ samples."""
    status, _, body = gw.http("GET", "/metrics")
    assert status == 200
    types, labels = {}, set()
    for line in body.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif line.startswith("ws_"):
            for label, value in re.findall(r'(\w+)="([^"]*)"', line):
                labels.add((label, value))
    return types, labels


def test_rules_read_only_exported_series(binary):
    """Every ws_ series named in a rule is on a live gateway's /metrics (a histogram's _bucket
    included), and every label value a rule selects (reason, result) is one the gateway
    writes."""
    with Gateway(binary) as gw:
        types, labels = exported(gw)
    exprs = rule_expressions()
    recorded = {name for kind, name, _ in load_rules() if kind == "record"}
    names = set()
    for expr in exprs:
        for m in re.finditer(r"(?<![\w:])(ws_\w+)", expr):
            names.add(m.group(1))
        for m in re.finditer(r"[\w:]+:[\w:]+", expr):
            if not m.group(0).startswith(("instance:", "job:")):
                continue
            assert m.group(0) in recorded, f"{m.group(0)} is not recorded by any rule"
    assert len(names) >= 30, sorted(names)
    for name in sorted(names):
        base = re.sub(r"_bucket$", "", name)
        assert name in types or (base != name and types.get(base) == "histogram"), \
            f"{name} is not on /metrics"
    for expr in exprs:
        for label, op, value in re.findall(r'(reason|result)(=~|!=|=)"([^"]*)"', expr):
            for v in value.split("|"):
                assert (label, v) in labels, f'{label}="{v}" is not on /metrics'


class Prometheus:
    """Debian's prometheus on a free loopback port with a temporary storage directory, scraping
    the given targets every second and evaluating the kit's rules every second. Stopped by PID."""

    def __init__(self, targets):
        self.dir = tempfile.mkdtemp(prefix="odin-prom-")
        self.port = free_port()
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                    f"rule_files:\n  - {RULES}\n"
                    "scrape_configs:\n  - job_name: odin-ws\n    static_configs:\n"
                    f"      - targets: {json.dumps(targets)}\n")
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            [tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            assert self.proc.poll() is None, "prometheus exited:\n" + self.output()
            time.sleep(0.1)
        raise AssertionError("prometheus not ready:\n" + self.output())

    def output(self):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr):
        """{frozenset(labels): value} of an instant query."""
        data = self.api("query", query=expr)
        return {frozenset(s["metric"].items()): float(s["value"][1]) for s in data["result"]}

    def value(self, expr):
        """The single sample of an instant query, or None."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return next(iter(result.values()), None)

    def wait_for(self, expr, predicate, timeout=10):
        deadline = time.time() + timeout
        value = None
        while time.time() < deadline:
            value = self.value(expr)
            if value is not None and predicate(value):
                return value
            time.sleep(0.2)
        raise AssertionError(f"{expr}: {value} after {timeout} s")

    def stop(self):
        stop_process(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            print("prometheus log (last 40 lines):\n" + "\n".join(self.output().splitlines()[-40:]))
        self.stop()


async def test_real_prometheus_scrapes_and_records(binary):
    clients, messages, capacity = 5, 20, 6
    with Gateway(binary, WS_MAX_CONNECTIONS=capacity) as gw, \
            Prometheus([f"127.0.0.1:{gw.port}"]) as prom:
        target = f'{{job="odin-ws",instance="127.0.0.1:{gw.port}"}}'
        # Five scrapes before any traffic: every counter starts from 0 in Prometheus, and the
        # rates below extrapolate over at least 4 s of samples (see below).
        prom.wait_for(f"up{target}", lambda v: v == 1)
        prom.wait_for(f"count_over_time(ws_messages_out_total{target}[1m])", lambda v: v >= 5)
        assert prom.value(f"max_over_time(ws_messages_out_total{target}[1m])") == 0

        # K compressed clients on one channel; N compressible messages through POST /publish.
        sockets = []
        for _ in range(clients):
            ws, _ = await connect(gw, "?channels=PROMKIT")
            await recv_json(ws)  # subscribed
            sockets.append(ws)
        note = "the same words again and again " * 12
        gw.publish([{"channel": "PROMKIT", "type": "price:update",
                     "data": {"price": 50000 + i, "note": note}} for i in range(messages)])
        for ws in sockets:
            got = [await recv_json(ws) for _ in range(messages)]
            assert [m["data"]["price"] for m in got] == [50000 + i for i in range(messages)]

        # The raw counters as Prometheus scraped them: exactly the traffic sent.
        delivered = messages * clients
        prom.wait_for(f"ws_messages_out_total{target}", lambda v: v == delivered)
        assert prom.value(f"ws_messages_in_total{target}") == messages
        assert prom.value(f"ws_connections_current{target}") == clients

        # Recording rules, once evaluated after that scrape. The series began at 0 less than a
        # minute ago, so rate()[1m] * 60 is the increase (Prometheus does not extrapolate before
        # a counter's 0) stretched by the extrapolation to the window's end, at most about one
        # scrape interval over the 4 s or more of samples: between the count and 30% more.
        per_minute = prom.wait_for(f"instance:ws_deliveries:rate1m{target} * 60",
                                   lambda v: v >= delivered - 1e-6)
        assert per_minute <= delivered * 1.3, per_minute
        per_minute = prom.wait_for(f"instance:ws_messages_in:rate1m{target} * 60",
                                   lambda v: v >= messages - 1e-6)
        assert per_minute <= messages * 1.3, per_minute
        # Deliveries per message in: the number of recipients (both counters scraped together).
        fanout = prom.wait_for(f"instance:ws_fanout:ratio_rate1m{target}", lambda v: v > clients - 0.5)
        assert abs(fanout - clients) < 1e-9, fanout
        # Bytes out count every byte written to a socket, HTTP answers included (Prometheus'
        # own scrapes): at least the compressed messages to each client since the first scrape,
        # at most what was written since start, stretched by the extrapolation at both ends.
        compressed_out = prom.value(f"ws_compression_output_bytes_total{target}")
        bytes_total = prom.value(f"ws_bytes_out_total{target}")
        bytes_rate = prom.wait_for(f"instance:ws_bytes_out:rate1m{target} * 60",
                                   lambda v: v >= compressed_out * clients)
        assert bytes_rate <= bytes_total * 1.6, (bytes_rate, bytes_total)
        assert prom.value("job:ws_deliveries:rate1m") > 0
        assert prom.value('job:ws_connections_current:sum{job="odin-ws"}') == clients
        assert abs(prom.value(f"instance:ws_connections:utilisation{target}") - clients / capacity) < 1e-9

        # Compression: each message compressed once; the ratio is the counters' ratio.
        compressed_in = prom.value(f"ws_compression_input_bytes_total{target}")
        compressed_out = prom.value(f"ws_compression_output_bytes_total{target}")
        assert compressed_in > 0 and compressed_out > 0
        ratio = prom.wait_for(f"instance:ws_compression:ratio_rate5m{target}", lambda v: v > 1)
        assert abs(ratio - compressed_in / compressed_out) < 1e-6 * ratio, (ratio, compressed_in, compressed_out)
        assert ratio > 3, ratio  # 12 repetitions of one sentence

        # The fan-out latency histogram gives a median and a p99 below the alert's 500 ms.
        p99 = prom.wait_for(f"instance:ws_fanout_latency_seconds:p99_rate5m{target}", lambda v: v > 0)
        assert p99 < 0.5, p99
        memory = prom.value(f"instance:ws_memory:utilisation{target}")
        assert 0 < memory < 0.8, memory

        # 5 of 6 connections: over 80% of WS_MAX_CONNECTIONS, OdinWsConnectionsNearCapacity is
        # pending (it fires after 5 minutes); nothing fires. (Others may be pending on a busy
        # machine: OdinWsCpuHigh.)
        deadline = time.time() + 5
        while True:
            alerts = prom.api("alerts")["alerts"]
            states = {(a["labels"]["alertname"], a["state"]) for a in alerts}
            if ("OdinWsConnectionsNearCapacity", "pending") in states or time.time() > deadline:
                break
            await asyncio.sleep(0.2)
        assert ("OdinWsConnectionsNearCapacity", "pending") in states, states
        assert not [a for a in alerts if a["state"] == "firing"], alerts

        print(f"  deliveries {delivered}, rate1m*60 {per_minute:.1f} (in), bytes {bytes_total:.0f} "
              f"(rate1m*60 {bytes_rate:.0f}), compression {ratio:.2f}, fan-out p99 {p99 * 1e3:.2f} ms",
              flush=True)
        # Every rule was evaluated without an error against the real series.
        groups = prom.api("rules")["groups"]
        assert {g["name"] for g in groups} == {"odin-ws.recording", "odin-ws.alerts"}
        evaluated = [r for g in groups for r in g["rules"]]
        assert len(evaluated) == len(load_rules())
        for rule in evaluated:
            assert rule["health"] == "ok" and not rule.get("lastError"), rule
        for ws in sockets:
            await ws.close()


if __name__ == "__main__":
    run_tests([test_promtool_check, test_promtool_unit_tests, test_every_alert_tested_and_documented,
               test_rules_read_only_exported_series, test_real_prometheus_scrapes_and_records])
