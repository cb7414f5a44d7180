#!/usr/bin/env python3
"""odin-ws benchmark scenarios: the seeds' experiments, raced against the peers and the ceiling.

Every run starts its own processes on loopback (a nats-server, the system under test, the load
client `loadclient`, the publisher `publisher`), stops them by PID, and appends one record to
docs/bench/results.json. `report.py` turns that file into docs/benchmarks.md and its plots.
Normally called through tools/bench/run.sh, which installs and builds what is needed.

  bench.py fanout|sustained|maxrate|capacity|slow|burst|all [--targets odin,blaster,node,nats-ws]
           [--quick] [--build build/release]

Targets: odin (the gateway, core NATS intake, default threads), odin-1t (the same with
WS_THREADS=1), blaster (a writev-only ceiling, tools/bench/
blaster.cpp), node (a Node.js `ws` + `nats` gateway, tools/bench/peers/node), nats-ws
(nats-server's own WebSocket listener, clients speak NATS over WebSocket).
"""
import argparse
import atexit
import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RESULTS = os.path.join(ROOT, "docs", "bench", "results.json")
PEERS = os.path.join(ROOT, "tools", "bench", "peers")
ALL_TARGETS = ["odin", "blaster", "node", "nats-ws", "odin-1t"]

_running = []  # every process this run started, stopped by PID at exit


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process with its output in a temp file; stop() signals only this PID."""

    def __init__(self, name, argv, env=None, cwd=None):
        self.name = name
        self.out = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.p = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT, env=full_env,
                                  cwd=cwd, start_new_session=True)
        self.pid = self.p.pid
        _running.append(self)

    def alive(self):
        return self.p.poll() is None

    def wait(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, grace=10):
        if self.alive():
            self.p.send_signal(sig)
            if self.wait(grace) is None:
                self.p.kill()
                self.p.wait()
        if self in _running:
            _running.remove(self)

    def output(self):
        with open(self.out.name, errors="replace") as f:
            return f.read()


def _stop_all():
    for p in list(_running):
        p.stop(grace=3)


atexit.register(_stop_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def wait_http(port, path="/health", timeout=20, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc and not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.output()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered {path} on port {port} within {timeout} s")


def wait_port(port, timeout=20, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc and not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.output()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} within {timeout} s")


class Bench:
    def __init__(self, build, threads):
        self.build = os.path.abspath(build)
        self.threads = threads

    def tool(self, name):
        return os.path.join(self.build, name)

    # ---- systems under test ----------------------------------------------------------------

    def start_nats(self):
        port = free_port()
        p = Proc("nats", ["nats-server", "-a", "127.0.0.1", "-p", str(port)])
        wait_port(port, proc=p)
        return p, port

    def start_target(self, target, nats_port, instances=1):
        """Starts `instances` of the target on one NATS; returns (procs, ws ports, protocol)."""
        procs, ports = [], []
        for i in range(instances):
            port = free_port()
            if target in ("odin", "odin-1t"):
                env = {"WS_ADDR": f"127.0.0.1:{port}", "NATS_URL": f"nats://127.0.0.1:{nats_port}",
                       "WS_BROKER": "nats", "WS_MAX_CONNECTIONS": "20000",
                       # Measure the fan-out, not the admission control: never refuse or pause.
                       "WS_CPU_REJECT_THRESHOLD": "100", "WS_CPU_PAUSE_THRESHOLD": "100",
                       "WS_MEMORY_REJECT_THRESHOLD": "100", "LOG_LEVEL": "warn",
                       "WS_INSTANCE_ID": f"bench-{i}"}
                if self.threads:
                    env["WS_THREADS"] = str(self.threads)
                if target == "odin-1t":  # one event loop: leaves the other core to the rest
                    env["WS_THREADS"] = "1"
                p = Proc(f"odin{i}", [self.tool("odin-ws")], env)
                wait_http(port, proc=p)
            elif target == "blaster":
                p = Proc("blaster", [self.tool("blaster"), "--port", str(port), "--nats",
                                     f"127.0.0.1:{nats_port}"])
                wait_port(port, proc=p)
            elif target == "node":
                p = Proc("node", [os.path.join(PEERS, "node", "start.sh")],
                         {"PORT": str(port), "HOST": "127.0.0.1",
                          "NATS_URL": f"nats://127.0.0.1:{nats_port}"})
                wait_http(port, proc=p, timeout=60)
            else:
                raise ValueError(target)
            time.sleep(0.3)  # let its NATS subscription settle
            procs.append(p)
            ports.append(port)
        return procs, ports, "odin"

    def start_nats_ws(self):
        nats_port, ws_port = free_port(), free_port()
        p = Proc("nats-ws", [os.path.join(PEERS, "nats-ws", "start.sh")],
                 {"NATS_PORT": str(nats_port), "WS_PORT": str(ws_port)})
        wait_port(nats_port, proc=p)
        wait_port(ws_port, proc=p)
        return p, nats_port, ws_port

    # ---- one measured run ------------------------------------------------------------------

    def run(self, target, connections, channels=1, per_conn=1, rate=10.0, seconds=10.0,
            size=500, slow_fraction=0.0, instances=1, ramp=0, burst=None, extra_wait=20,
            settle=1.0, client_processes=None):
        """One run: start NATS and the target, connect, publish `rate` msg/s for `seconds`,
        collect. Returns the load client's JSON plus the publisher's and the setup."""
        setup = dict(target=target, connections=connections, channels=channels, per_conn=per_conn,
                     rate=rate, seconds=seconds, size=size, slow_fraction=slow_fraction,
                     instances=instances, ramp=ramp, burst=burst)
        started = []
        try:
            if target == "nats-ws":
                srv, nats_port, ws_port = self.start_nats_ws()
                started.append(srv)
                server_procs, ports, protocol = [srv], [ws_port], "nats-ws"
            else:
                nats, nats_port = self.start_nats()
                started.append(nats)
                server_procs, ports, protocol = self.start_target(target, nats_port, instances)
                started += server_procs
            count = int(round(rate * seconds))
            if burst:
                count += int(round((burst["rate"] - rate) * burst["for"]))
            # Channels are taken round-robin, so each gets count / channels messages; a client
            # on per_conn of them expects per_conn times that.
            if count % channels:
                raise ValueError(f"{count} messages do not split evenly over {channels} channels")
            expect = count // channels * per_conn
            ready = tempfile.mktemp(prefix="bench-ready-")
            argv = [self.tool("loadclient"), "--ports", ",".join(map(str, ports)),
                    "--connections", str(connections), "--channels", str(channels),
                    "--per-conn", str(per_conn), "--expect", str(expect),
                    "--duration", str(seconds + extra_wait), "--ready-file", ready,
                    "--protocol", protocol, "--ramp", str(ramp),
                    "--server-pid", ",".join(str(p.pid) for p in server_procs)]
            if slow_fraction:
                argv += ["--slow-fraction", str(slow_fraction)]
            if client_processes:
                argv += ["--processes", str(client_processes)]
            client = Proc("loadclient", argv)
            started.append(client)
            deadline = time.time() + 120
            while not (os.path.exists(ready) and os.path.getsize(ready) > 0):
                if not client.alive():
                    raise RuntimeError(f"load client exited early:\n{client.output()[-3000:]}")
                if time.time() > deadline:
                    raise RuntimeError("clients did not all connect within 120 s")
                time.sleep(0.1)
            os.unlink(ready)
            time.sleep(settle)
            pub_argv = [self.tool("publisher"), "--nats", f"127.0.0.1:{nats_port}",
                        "--rate", str(rate), "--channels", str(channels), "--size", str(size),
                        "--count", str(count)]
            if burst:
                pub_argv += ["--burst-rate", str(burst["rate"]), "--burst-at", str(burst["at"]),
                             "--burst-for", str(burst["for"])]
            pub = Proc("publisher", pub_argv)
            started.append(pub)
            if pub.wait(seconds + 120) is None:
                raise RuntimeError("publisher did not finish")
            pub_out = pub.output().strip().splitlines()
            publisher = json.loads(pub_out[-1]) if pub_out and pub_out[-1].startswith("{") else {
                "error": pub.output()[-500:]}
            code = client.wait(seconds + extra_wait + 90)
            if code is None:
                client.stop(signal.SIGINT, grace=30)
            lines = [l for l in client.output().splitlines() if l.startswith("{")]
            if not lines:
                raise RuntimeError(f"load client printed no result:\n{client.output()[-3000:]}")
            result = json.loads(lines[-1])
            result.update(setup=setup, publisher=publisher, client_exit=code)
            if target in ("odin", "node"):  # their own counters, e.g. slow-consumer closes
                try:
                    stats = []
                    for port in ports:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as r:
                            stats.append(json.load(r))
                    result["server_stats"] = {
                        k: sum(s.get(k, 0) for s in stats)
                        for k in ("messagesIn", "messagesOut", "slowClientDisconnects")}
                except Exception as e:
                    result["server_stats"] = {"error": str(e)}
            return result
        finally:
            for p in reversed(started):
                p.stop()


# ---- results file ---------------------------------------------------------------------------

def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except Exception:
        pass
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])

    def version(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except Exception:
            return "not found"
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kb / 1048576, 1),
            "kernel": platform.release(), "os": platform.freedesktop_os_release().get("PRETTY_NAME", "?"),
            "nofile_hard": __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)[1],
            "nats_server": version(["nats-server", "--version"]), "node": version(["node", "--version"]),
            "compiler": version(["g++", "--version"])}


def save(scenario, runs, command, notes=None, targets=()):
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    data = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            data = json.load(f)
    data["machine"] = machine()
    # Runs of other targets from an earlier invocation stay (e.g. adding odin-1t later).
    old = data.get("scenarios", {}).get(scenario, {})
    kept = [r for r in old.get("runs", []) if r.get("setup", {}).get("target") not in targets]
    commands = [c for c in old.get("commands", [old.get("command")]) if c and kept]
    data.setdefault("scenarios", {})[scenario] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "command": command,
        "commands": commands + [command], "runs": kept + runs, "notes": notes or {}}
    with open(RESULTS, "w") as f:
        json.dump(data, f, indent=1)
    log(f"{scenario}: {len(runs)} runs saved to {os.path.relpath(RESULTS, ROOT)}")


def brief(r):
    lat, reach = r.get("latency_ms", {}), r.get("reach_all_ms", {})
    srv = r.get("server", {})
    return (f"{r['setup']['target']:8} n={r['setup']['connections']:>6} delivered {r.get('delivery_percent', 0):7.3f}% "
            f"gaps {r.get('gaps')} p50 {lat.get('p50', 0):7.1f} p99 {lat.get('p99', 0):7.1f} "
            f"reach-all p99 {reach.get('p99', 0):7.1f} ms  server cpu {srv.get('cpu_percent', 0):5.0f}% "
            f"rss {srv.get('rss_kb_peak', 0) / 1024:6.1f} MiB")


def attempt(b, label, **kw):
    """A run that failed to produce figures is recorded as such, not dropped."""
    try:
        r = b.run(**kw)
    except Exception as e:  # a peer that falls over is a result too
        r = {"setup": dict(kw), "error": str(e)[-1500:]}
        log(f"{label}: FAILED: {str(e)[:300]}")
        return r
    log(f"{label}: {brief(r)}")
    return r


# ---- scenarios ------------------------------------------------------------------------------

def fanout(b, targets, quick, repeat):
    """The seeds' experiment 2: N clients on one channel, 10 msg/s for 10 s."""
    sizes = [100, 1000, 10000] if quick else [100, 1000, 10000, 19000]
    runs = []
    for n in sizes:
        for rep in range(repeat):
            for t in targets:
                runs.append(attempt(b, f"fanout {t} {n} #{rep + 1}", target=t, connections=n,
                                    channels=1, per_conn=1, rate=10, seconds=10))
    return runs


SUSTAINED = dict(connections=12000, channels=100, per_conn=5)


def per_client_to_publish_rate(per_client):
    # Each client receives per_conn/channels of all messages.
    return per_client * SUSTAINED["channels"] / SUSTAINED["per_conn"]


def sustained(b, targets, quick, repeat, seconds=60):
    """The seeds' 12k configuration: 12,000 clients each on 5 of 100 channels, 25 and 100 msg/s
    per client for 60 s (--seconds)."""
    seconds = 20 if quick else seconds
    runs = []
    for per_client in (25, 100):
        for rep in range(repeat):
            for t in targets:
                runs.append(attempt(b, f"sustained {t} {per_client}/s #{rep + 1}", target=t,
                                    rate=per_client_to_publish_rate(per_client), seconds=seconds,
                                    **SUSTAINED))
    return runs


def maxrate(b, targets, quick, repeat):
    """The highest per-client rate the sustained configuration holds (100% delivered, p99 under
    1 s), for odin and for the ceiling: 20-s steps of 25 msg/s per client from 25, bounded."""
    runs = []
    for t in [x for x in ("odin", "odin-1t", "blaster") if x in targets]:
        held, rate = None, 25
        for _ in range(10):
            r = attempt(b, f"max-rate {t} {rate}/s per client", target=t,
                        rate=per_client_to_publish_rate(rate), seconds=20, **SUSTAINED)
            r["setup"]["search"] = True
            runs.append(r)
            ok = "error" not in r and r.get("delivery_percent", 0) >= 100 and r["latency_ms"]["p99"] < 1000
            if not ok:
                break
            held = rate
            rate += 25
        log(f"max-rate {t}: highest per-client rate held {held}/s")
    return runs


def capacity(b, targets, quick, repeat):
    """19,000 subscribed connections on one process (RSS each, connections per second), then
    1 msg/s per client for 105 s so every replay ring (100) is full at the end; then 100,000
    connections across several instances on one NATS, every client receiving its channels."""
    runs = []
    n = 10000 if quick else 19000
    for t in [x for x in targets if x != "blaster"]:
        for rep in range(repeat if t == "odin" else 1):
            # 1 msg/s per client: 20 msg/s over 100 channels, each client on 5 of them.
            # Peers keep no replay ring: their memory is flat after the first seconds.
            r = attempt(b, f"capacity {t} {n} #{rep + 1}", target=t, connections=n, channels=100,
                        per_conn=5, rate=20, seconds=20 if quick or t != "odin" else 105)
            runs.append(r)
    if "odin" in targets and not quick:
        instances, total = 6, 100000
        r = attempt(b, f"capacity odin {total} on {instances} instances", target="odin",
                    connections=total, channels=100, per_conn=5, rate=20, seconds=30,
                    instances=instances, extra_wait=40, settle=3)
        runs.append(r)
    return runs


def slow(b, targets, quick, repeat):
    """1% of clients stop reading: the others' delivery and p99 must not move, memory stays
    bounded, the slow ones are closed with 4008. Compared with the same run without slow ones.
    2,000 clients on one channel, 100 msg/s of 2,000 bytes for 30 s: 6 MB for each slow client,
    past what the kernel's socket buffers and the gateway's per-client queue can hold."""
    runs = []
    seconds = 15 if quick else 30
    for t in [x for x in targets if x != "blaster"]:
        for rep in range(repeat):
            for frac in (0.0, 0.01):
                runs.append(attempt(b, f"slow {t} {frac:.0%} #{rep + 1}", target=t,
                                    connections=2000, channels=1, per_conn=1, rate=100,
                                    seconds=seconds, size=2000, slow_fraction=frac))
    return runs


def burst(b, targets, quick, repeat):
    """Ten times the sustained rate (25 msg/s per client) for 5 s: nothing lost, latency
    recovers."""
    runs = []
    base = per_client_to_publish_rate(25)
    for t in targets:
        for rep in range(repeat):
            runs.append(attempt(b, f"burst {t} #{rep + 1}", target=t, rate=base, seconds=30,
                                burst={"rate": base * 10, "at": 10, "for": 5}, extra_wait=40,
                                **SUSTAINED))
    return runs


SCENARIOS = {"fanout": fanout, "sustained": sustained, "maxrate": maxrate,
             "capacity": capacity, "slow": slow, "burst": burst}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=list(SCENARIOS) + ["all"])
    ap.add_argument("--targets", default=",".join(ALL_TARGETS))
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--threads", type=int, default=0, help="odin's WS_THREADS (0 = its default)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs of each configuration, medians quoted (default: 3 for fanout, 1 for the longer scenarios)")
    ap.add_argument("--quick", action="store_true", help="smaller and shorter: a smoke run")
    ap.add_argument("--seconds", type=int, default=60, help="length of the sustained runs")
    a = ap.parse_args()
    targets = [t for t in a.targets.split(",") if t]
    for t in targets:
        if t not in ALL_TARGETS:
            ap.error(f"unknown target {t}")
    b = Bench(a.build, a.threads)
    names = list(SCENARIOS) if a.scenario == "all" else [a.scenario]
    command = "tools/bench/run.sh " + " ".join(sys.argv[1:])
    for name in names:
        log(f"== {name}")
        if name == "sustained":
            runs = sustained(b, targets, a.quick, a.repeat or 1, a.seconds)
        else:
            runs = SCENARIOS[name](b, targets, a.quick, a.repeat or (3 if name == "fanout" else 1))
        save(name, runs, command, {"quick": a.quick, "threads": a.threads}, targets)


if __name__ == "__main__":
    main()
