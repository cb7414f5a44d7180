#!/usr/bin/env python3
"""odin-ws benchmark scenarios: the seeds' experiments, raced against the peers and the ceiling.

Every run starts its own processes on loopback (a nats-server, the system under test, the load
client `loadclient`, the publisher `publisher`), stops them by PID, and appends one record to
docs/bench/results.json. `report.py` turns that file into docs/benchmarks.md and its plots.
Normally called through tools/bench/run.sh, which installs and builds what is needed.

  bench.py fanout|sustained|maxrate|capacity|slow|burst|tls|scale|conflate|compression|all
           [--targets odin,blaster,node,nats-ws] [--quick] [--build build/release]

`conflate` (not in `all`): 12,000 clients x 5 of 100 channels at twice the deliverable rate,
`latest` subscriptions against `all` (--rate R: the deliverable per-client rate, else searched).

`compression` (not in `all`): permessage-deflate on against off, alternating: 12,000 clients x 5
of 100 channels at 25 msg/s per client with ~500-byte market objects (publisher --payload market),
the same with ~180-byte ticks, and the idle RSS per connection of 10,000 clients.

`tls` measures odin-ws with and without TLS (WS_TLS_CERT/KEY, certificates made by the `openssl`
command), always against the odin target; `all` does not include it.

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
import re
import shutil
import signal
import socket
import ssl
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

    def wait(self, timeout, poll=()):
        """Exit status, or None after `timeout` s; calls each of `poll` every 0.5 s meanwhile."""
        deadline = time.time() + timeout
        while True:
            for f in poll:
                f()
            try:
                return self.p.wait(timeout=min(0.5, max(0.0, deadline - time.time())) if poll
                                   else timeout)
            except subprocess.TimeoutExpired:
                if time.time() >= deadline:
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


def url(port, path, tls=None):
    """(address, urlopen keyword arguments) of a path on a local server; over TLS the certificate
    is verified against itself (it is its own CA), which also checks it names 127.0.0.1."""
    if not tls:
        return f"http://127.0.0.1:{port}{path}", {}
    return f"https://127.0.0.1:{port}{path}", {"context": ssl.create_default_context(cafile=tls["cert"])}


def wait_http(port, path="/health", timeout=20, proc=None, tls=None):
    deadline = time.time() + timeout
    address, kw = url(port, path, tls)
    while time.time() < deadline:
        if proc and not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.output()[-2000:]}")
        try:
            with urllib.request.urlopen(address, timeout=1, **kw) as r:
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

# ---- host CPU, profiles, heap ----------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def host_busy_jiffies():
    """CPU time the whole machine spent busy (all cores), and the wall clock."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0), time.time()


def proc_jiffies(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return None


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


class HostCpu:
    """What the machine's CPUs did over a window (100 = one core): all of it, ours (NATS, the
    system under test, the load client and its workers) and the rest (other work on the machine,
    and the publisher and perf, which are small). The bench shares its two cores with whatever
    else runs; this says how much did."""

    def __init__(self, others, servers, client):
        self.pids = [p.pid for p in others + servers + [client]] + children(client.pid)
        self.busy0, self.t0 = host_busy_jiffies()
        self.ours0 = {pid: proc_jiffies(pid) for pid in self.pids}

    def stop(self):
        busy, t = host_busy_jiffies()
        ours = 0
        for pid, j0 in self.ours0.items():
            j = proc_jiffies(pid)
            if j is not None and j0 is not None:
                ours += j - j0
        secs = max(t - self.t0, 1e-3)
        pct = lambda j: round(100.0 * j / TICK / secs, 1)
        return {"seconds": round(secs, 2), "busy_percent": pct(busy - self.busy0),
                "ours_percent": pct(ours), "other_percent": pct(max(0, busy - self.busy0 - ours))}


def wait_quiet(max_wait, threshold=25.0, sample=2.0):
    """Waits (up to max_wait s) for the machine's other work to use under `threshold` % of one
    core over `sample` s. Returns how long it waited and the last busy figure."""
    start = time.time()
    while True:
        b0, t0 = host_busy_jiffies()
        time.sleep(sample)
        b1, t1 = host_busy_jiffies()
        busy = 100.0 * (b1 - b0) / TICK / (t1 - t0)
        if busy < threshold or time.time() - start >= max_wait:
            return {"waited_seconds": round(time.time() - start, 1), "busy_percent": round(busy, 1)}


def perf_usable():
    if not shutil.which("perf"):
        return False
    try:
        return subprocess.run(["perf", "record", "-q", "-o", "/dev/null", "--", "true"],
                              capture_output=True, timeout=30).returncode == 0
    except Exception:
        return False


class Perf:
    """`perf record` of one process with DWARF call chains (Debian's libcrypto has no frame
    pointers), 499 Hz; stop() summarizes it: top symbols by self time and by inclusive time."""

    def __init__(self, pid, seconds=None):
        self.data = tempfile.mktemp(prefix="bench-perf-", suffix=".data")
        argv = ["perf", "record", "-q", "-F", "499", "--call-graph", "dwarf,16384", "-p", str(pid),
                "-o", self.data]
        if seconds:
            argv += ["--", "sleep", str(seconds)]
        self.started = time.time()
        self.proc = Proc("perf", argv)

    def stop(self, wait=False):
        if wait:
            self.proc.wait(60)
        self.proc.stop(signal.SIGINT, grace=60)
        seconds = round(time.time() - self.started, 1)
        try:
            return {"seconds": seconds, "dso": self.report(False, 12, "dso"),
                    "self": self.report(False, 30), "children": self.report(True, 150)}
        except Exception as e:
            return {"error": str(e)[-500:]}
        finally:
            if os.path.exists(self.data):
                os.unlink(self.data)

    def report(self, inclusive, top, sort="dso,sym"):
        """Rows of `perf report`: percent of the samples (inclusive of callees, or self), the
        library and the symbol (a hex address where the library is stripped)."""
        argv = ["perf", "report", "-i", self.data, "--stdio", "-g", "none", "--sort", sort,
                "--percent-limit", "0.3", "--children" if inclusive else "--no-children"]
        text = subprocess.run(argv, capture_output=True, text=True, timeout=600).stdout
        rows = []
        for line in text.splitlines():
            if sort == "dso":
                m = re.match(r"^\s*([\d.]+)%\s+(\S.*\S)\s*$", line)
                if m:
                    rows.append({"percent": float(m.group(1)), "dso": m.group(2)})
                continue
            m = re.match(r"^\s*([\d.]+)%\s+(?:([\d.]+)%\s+)?(\S+)\s+\[(.)\]\s+(.*\S)\s*$", line)
            if not m:
                continue
            row = {"percent": float(m.group(1)), "dso": m.group(3), "sym": m.group(5)[:160]}
            if inclusive:
                row["self"] = float(m.group(2) or 0)
            rows.append(row)
        return rows[:top]


def malloc_stats(proc):
    """glibc's malloc_stats() of a running process (through gdb; it pauses for a moment): heap
    bytes held from the system and in use, to tell live memory from allocator slack in RSS."""
    if not shutil.which("gdb"):
        return None
    before = len(proc.output())
    try:
        subprocess.run(["gdb", "-p", str(proc.pid), "-batch", "-nx", "-ex", "call (void)malloc_stats()"],
                       capture_output=True, timeout=60)
    except Exception as e:
        return {"error": str(e)}
    time.sleep(0.2)
    text = proc.output()[before:]
    m = re.search(r"Total \(incl\. mmap\):\s*system bytes\s*=\s*(\d+)\s*in use bytes\s*=\s*(\d+)", text)
    if not m:
        return {"error": "no malloc_stats output"}
    return {"system_kb": int(m.group(1)) // 1024, "in_use_kb": int(m.group(2)) // 1024}


def make_cert(directory, kind):
    """A self-signed certificate for localhost and 127.0.0.1 (P-256 ECDSA or RSA-2048)."""
    key, cert = os.path.join(directory, f"{kind}.key"), os.path.join(directory, f"{kind}.pem")
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ecdsa" else [
        "-newkey", "rsa:2048"]
    subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return {"name": kind, "cert": cert, "key": key}


class Bench:
    def __init__(self, build, threads):
        self.build = os.path.abspath(build)
        self.threads = threads

    def tool(self, name):
        return os.path.join(self.build, name)

    # ---- systems under test ----------------------------------------------------------------

    def start_nats(self, jetstream=False):
        port = free_port()
        argv = ["nats-server", "-a", "127.0.0.1", "-p", str(port)]
        if jetstream:  # its file store in a directory of this run's own
            argv += ["-js", "-sd", tempfile.mkdtemp(prefix="bench-js-")]
        p = Proc("nats", argv)
        wait_port(port, proc=p)
        return p, port

    def start_target(self, target, nats_port, instances=1, tls=None, broker="nats", env_extra=None):
        """Starts `instances` of the target on one NATS; returns (procs, ws ports, protocol).
        With `tls` ({"cert", "key"} PEM paths) odin's listener speaks only TLS. broker: odin's
        WS_BROKER, `nats` (core) or `jetstream`."""
        if tls and target not in ("odin", "odin-1t"):
            raise ValueError(f"{target} has no TLS listener here")
        procs, ports = [], []
        for i in range(instances):
            port = free_port()
            if target in ("odin", "odin-1t"):
                env = {"WS_ADDR": f"127.0.0.1:{port}", "NATS_URL": f"nats://127.0.0.1:{nats_port}",
                       "WS_BROKER": broker, "WS_MAX_CONNECTIONS": "20000",
                       # Measure the fan-out, not the admission control: never refuse or pause.
                       "WS_CPU_REJECT_THRESHOLD": "100", "WS_CPU_PAUSE_THRESHOLD": "100",
                       "WS_MEMORY_REJECT_THRESHOLD": "100", "LOG_LEVEL": "warn",
                       "WS_INSTANCE_ID": f"bench-{i}"}
                if self.threads:
                    env["WS_THREADS"] = str(self.threads)
                if target == "odin-1t":  # one event loop: leaves the other core to the rest
                    env["WS_THREADS"] = "1"
                if tls:
                    env.update(WS_TLS_CERT=tls["cert"], WS_TLS_KEY=tls["key"])
                env.update(env_extra or {})
                p = Proc(f"odin{i}", [self.tool("odin-ws")], env)
                wait_http(port, proc=p, tls=tls)
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
            settle=1.0, client_processes=None, tls=None, tls_resume=False, part=None,
            profile=None, heap=False, broker="nats", detail=False, during=None, delivery=None,
            max_hz=None, observe=False, payload=None, deflate=False, server_env=None,
            metrics=False):
        """One run: start NATS and the target, connect, publish `rate` msg/s for `seconds`,
        collect. Returns the load client's JSON plus the publisher's and the setup.

        tls: {"name", "cert", "key"}: the target speaks TLS and the clients too (full handshakes,
        or resumed ones with tls_resume). part: the tls scenario's label for the run. profile:
        "connect" or "publish": `perf record` the gateway during that phase (a profile run, its
        figures are perturbed by perf). heap: glibc's malloc_stats of the gateway once all are
        connected (through gdb; the gateway pauses for a moment). broker: odin's WS_BROKER
        (`jetstream` also starts nats-server with -js). detail: also record each server
        instance's RSS, open files and CPU (`instances`) and the machine's load (`host_cpu`).
        during: called with (ports, server procs) once the clients are connected, just before
        publishing starts; what it returns is called with no argument once the publisher is done,
        and its result is kept as `during` (tools/bench/hostile.py: an attack meanwhile).
        delivery ("all" or "latest") and max_hz: how the clients subscribe (loadclient
        --delivery, --max-hz). observe: the load client also reads what is published from NATS
        and samples every client's staleness (loadclient --observe-nats). payload: publisher
        --payload (market, tick); deflate: loadclient --deflate (offers permessage-deflate);
        server_env: more environment for odin (e.g. WS_COMPRESSION=false); metrics: keep odin's
        /metrics counters at the end as `server_metrics`."""
        setup = dict(target=target, connections=connections, channels=channels, per_conn=per_conn,
                     rate=rate, seconds=seconds, size=size, slow_fraction=slow_fraction,
                     instances=instances, ramp=ramp, burst=burst)
        if broker != "nats":
            setup["broker"] = broker
        if delivery:  # only the conflate scenario's runs carry these
            setup.update(delivery=delivery, max_hz=max_hz)
        if payload or deflate or server_env:  # only the compression scenario's runs carry these
            setup.update(payload=payload, deflate=deflate, server_env=server_env)
        if detail and self.threads:  # scale runs: WS_THREADS is part of the shape
            setup["threads"] = self.threads
        if part:  # only the tls scenario's runs carry these; the others keep their shape
            setup.update(part=part, tls=tls["name"] if tls else None, tls_resume=tls_resume,
                         profile=profile)
        started = []
        perf = None
        try:
            if target == "nats-ws":
                srv, nats_port, ws_port = self.start_nats_ws()
                started.append(srv)
                server_procs, ports, protocol = [srv], [ws_port], "nats-ws"
            else:
                nats, nats_port = self.start_nats(jetstream=broker == "jetstream")
                started.append(nats)
                server_procs, ports, protocol = self.start_target(target, nats_port, instances,
                                                                  tls, broker, server_env)
                started += server_procs
            per_instance = [InstanceSampler(p.pid) for p in server_procs] if detail else []
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
            if tls:
                argv += ["--tls"] + (["--tls-resume"] if tls_resume else [])
            if delivery:
                argv += ["--delivery", delivery]
            if max_hz:
                argv += ["--max-hz", str(max_hz)]
            if observe:
                argv += ["--observe-nats", f"127.0.0.1:{nats_port}"]
            if deflate:
                argv += ["--deflate"]
            if profile == "connect":
                perf = Perf(server_procs[0].pid)
            client = Proc("loadclient", argv)
            started.append(client)
            # TLS handshakes are CPU work for both sides on the same two cores: more time to connect.
            limit = 120 + (connections / 100 if tls else 0)
            deadline = time.time() + limit
            while not (os.path.exists(ready) and os.path.getsize(ready) > 0):
                if not client.alive():
                    raise RuntimeError(f"load client exited early:\n{client.output()[-3000:]}")
                if time.time() > deadline:
                    raise RuntimeError(f"clients did not all connect within {limit:.0f} s")
                time.sleep(0.1)
            os.unlink(ready)
            for s in per_instance:
                s.connected()
            profiles = {}
            if perf:
                profiles["connect"] = perf.stop()
                perf = None
            heap_stats = malloc_stats(server_procs[0]) if heap else None
            time.sleep(settle)
            for s in per_instance:
                s.window_start()
            host = HostCpu([nats] if target != "nats-ws" else [], server_procs, client)
            pub_argv = [self.tool("publisher"), "--nats", f"127.0.0.1:{nats_port}",
                        "--rate", str(rate), "--channels", str(channels), "--size", str(size),
                        "--count", str(count)]
            if burst:
                pub_argv += ["--burst-rate", str(burst["rate"]), "--burst-at", str(burst["at"]),
                             "--burst-for", str(burst["for"])]
            if payload:
                pub_argv += ["--payload", payload]
            finish_during = during(ports, server_procs) if during else None
            pub = Proc("publisher", pub_argv)
            started.append(pub)
            if profile == "publish":
                perf = Perf(server_procs[0].pid, seconds=min(10, seconds))
                profiles["publish"] = perf.stop(wait=True)
                perf = None
            if pub.wait(seconds + 120) is None:
                raise RuntimeError("publisher did not finish")
            host_cpu = host.stop()  # while every process of ours is still there to be read
            during_result = finish_during() if finish_during else None
            pub_out = pub.output().strip().splitlines()
            publisher = json.loads(pub_out[-1]) if pub_out and pub_out[-1].startswith("{") else {
                "error": pub.output()[-500:]}
            code = client.wait(seconds + extra_wait + 90, poll=[i.poll for i in per_instance])
            if code is None:
                client.stop(signal.SIGINT, grace=30)
            for s in per_instance:
                s.window_end()
            lines = [l for l in client.output().splitlines() if l.startswith("{")]
            if not lines:
                raise RuntimeError(f"load client printed no result:\n{client.output()[-3000:]}")
            result = json.loads(lines[-1])
            result.update(setup=setup, publisher=publisher, client_exit=code)
            if during_result is not None:
                result["during"] = during_result
            if per_instance:
                result["instances"] = [s.figures() for s in per_instance]
            if part or detail or delivery:
                result["host_cpu"] = host_cpu
                if profiles:
                    result["profile"] = profiles
                if heap_stats:
                    result["server_heap"] = heap_stats
            if metrics and target in ("odin", "odin-1t"):
                result["server_metrics"] = read_metrics(ports, tls)
            if target in ("odin", "node"):  # their own counters, e.g. slow-consumer closes
                try:
                    stats = []
                    for port in ports:
                        address, kw = url(port, "/stats", tls)
                        with urllib.request.urlopen(address, timeout=5, **kw) as r:
                            stats.append(json.load(r))
                    result["server_stats"] = {
                        k: sum(s.get(k, 0) for s in stats)
                        for k in ("messagesIn", "messagesOut", "slowClientDisconnects")}
                    if all("conflatedMessages" in s for s in stats):  # latest-value subscriptions
                        result["server_stats"]["conflatedMessages"] = sum(
                            s["conflatedMessages"] for s in stats)
                except Exception as e:
                    result["server_stats"] = {"error": str(e)}
            return result
        finally:
            if perf:
                perf.stop()
            for p in reversed(started):
                p.stop()


def read_metrics(ports, tls=None):
    """odin's /metrics: every unlabelled sample, summed over the instances."""
    out = {}
    try:
        for port in ports:
            address, kw = url(port, "/metrics", tls)
            with urllib.request.urlopen(address, timeout=5, **kw) as r:
                for line in r.read().decode().splitlines():
                    parts = line.split()
                    if len(parts) == 2 and not line.startswith("#") and "{" not in parts[0]:
                        try:
                            out[parts[0]] = out.get(parts[0], 0) + float(parts[1])
                        except ValueError:
                            pass
    except Exception as e:
        out["error"] = str(e)
    return out


class InstanceSampler:
    """One server process's own figures: RSS and open files when started (empty), once all
    clients are connected and at the end; CPU from the start to all-connected (connecting) and
    over the measured window (all-connected + settle to the load client's exit)."""

    def __init__(self, pid):
        self.pid = pid
        self.empty = self.sample()
        self.j0 = proc_jiffies(pid)

    def sample(self):
        rss = None
        try:
            with open(f"/proc/{self.pid}/status") as f:
                rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        except (OSError, StopIteration):
            fds = None
        return {"rss_kb": rss, "fds": fds}

    def connected(self):
        self.at_connected = self.sample()
        self.j_connected = proc_jiffies(self.pid)

    def window_start(self):
        self.jw0, self.tw0 = proc_jiffies(self.pid), time.time()

    def poll(self):
        """The highest RSS while the clients are connected (until the load client exits)."""
        rss = self.sample()["rss_kb"]
        if rss is not None:
            self.peak_rss_kb = max(getattr(self, "peak_rss_kb", 0), rss)

    def window_end(self):
        self.jw1, self.tw1 = proc_jiffies(self.pid), time.time()
        self.end = self.sample()

    def figures(self):
        out = {"pid": self.pid, "empty": self.empty, "connected": getattr(self, "at_connected", None),
               "peak_rss_kb_connected": getattr(self, "peak_rss_kb", None),
               "after_clients_left": getattr(self, "end", None)}
        if None not in (self.j0, getattr(self, "j_connected", None)):
            out["cpu_seconds_connecting"] = round((self.j_connected - self.j0) / TICK, 2)
        if None not in (getattr(self, "jw0", None), getattr(self, "jw1", None)):
            secs = max(self.tw1 - self.tw0, 1e-3)
            out["window_seconds"] = round(secs, 2)
            out["cpu_seconds"] = round((self.jw1 - self.jw0) / TICK, 2)
            out["cpu_percent"] = round(100.0 * (self.jw1 - self.jw0) / TICK / secs, 1)
        return out


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


def save(scenario, runs, command, notes=None, targets=(), replaces=None):
    """Adds `runs` to the scenario's record, replacing earlier runs of the same targets (and,
    with `replaces`, only those for which replaces(setup) is true)."""
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    data = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            data = json.load(f)
    data["machine"] = machine()
    # Runs of other targets from an earlier invocation stay (e.g. adding odin-1t later).
    old = data.get("scenarios", {}).get(scenario, {})
    kept = [r for r in old.get("runs", []) if r.get("setup", {}).get("target") not in targets
            or (replaces and not replaces(r.get("setup", {})))]
    commands = [c for c in old.get("commands", [old.get("command")]) if c and kept and c != command]
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
        if isinstance(kw.get("tls"), dict):  # the certificate's kind, not its temporary paths
            r["setup"]["tls"] = kw["tls"]["name"]
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


def highest_rate(b, t, runs, seconds=20, step=25, steps=10):
    """The highest per-client rate the sustained configuration holds on target t (100%
    delivered, p99 under 1 s): `seconds`-long steps of `step` msg/s per client from `step`, at
    most `steps` of them, stopping at the first that fails. Each run is appended to `runs`
    (setup.search = True). None when even the first step fails."""
    held, rate = None, step
    for _ in range(steps):
        r = attempt(b, f"max-rate {t} {rate}/s per client", target=t,
                    rate=per_client_to_publish_rate(rate), seconds=seconds, **SUSTAINED)
        r["setup"]["search"] = True
        runs.append(r)
        ok = "error" not in r and r.get("delivery_percent", 0) >= 100 and r["latency_ms"]["p99"] < 1000
        if not ok:
            break
        held = rate
        rate += step
    log(f"max-rate {t}: highest per-client rate held {held}/s")
    return held


def maxrate(b, targets, quick, repeat):
    """The highest per-client rate the sustained configuration holds (100% delivered, p99 under
    1 s), for odin and for the ceiling: 20-s steps of 25 msg/s per client from 25, bounded."""
    runs = []
    for t in [x for x in ("odin", "odin-1t", "blaster") if x in targets]:
        highest_rate(b, t, runs)
    return runs


def conflate(b, targets, quick, repeat, rate=None, seconds=30, max_hz=None, quiet_wait=60):
    """Latest-value subscriptions under overload (docs/protocol.md): the sustained configuration
    (12,000 clients x 5 of 100 channels, 500-byte payloads) published at twice the per-client rate
    this machine can deliver, once with every client subscribed `latest` (no rate cap unless
    max_hz) and once with `all` (v1), `seconds` each. The deliverable rate is `rate` (per client,
    msg/s) when given, else found first as the maxrate scenario does (20-s steps of 25 msg/s per
    client; the highest with 100% delivered and p99 under 1 s). The load client reads what is
    published from NATS and samples every client's staleness every 100 ms; the gateway's RSS is
    sampled every 250 ms. Before each of the two runs it waits (up to quiet_wait s) for the
    machine's other work to settle, and each run records how busy the machine was (host_cpu).
    When the search holds no rate (not even its first step), nothing more is measured. --quick: 2,000 clients, 10 s, no search (25/s per client unless --rate)."""
    if "odin" not in targets:
        log("conflate: measures the odin target only; add it to --targets")
        return []
    shape = dict(SUSTAINED, connections=2000) if quick else dict(SUSTAINED)
    seconds = 10 if quick else seconds
    runs = []
    found = None
    if rate is None and not quick:
        found = highest_rate(b, "odin", runs)
        if found is None:  # not even the first step: no rate to double; say so, measure nothing
            log("conflate: the search held no rate (not even 25/s per client with p99 under 1 s); "
                "give the deliverable rate with --rate")
            return runs
    deliverable = rate or found or 25
    per_client = 2 * deliverable
    for delivery in ("latest", "all"):
        quiet = wait_quiet(quiet_wait) if quiet_wait else None
        r = attempt(b, f"conflate {delivery} {per_client}/s per client", target="odin",
                    rate=per_client * shape["channels"] / shape["per_conn"], seconds=seconds,
                    delivery=delivery, max_hz=max_hz if delivery == "latest" else None,
                    observe=True, extra_wait=20, **shape)
        r["deliverable_per_client"] = deliverable
        r["deliverable_from"] = "given" if rate else ("search" if found else "default")
        if quiet:
            r["host_before"] = quiet
        if "error" not in r:
            st, cc = r.get("staleness_ms", {}), r.get("channel_check", {})
            srv = r.get("server", {})
            log(f"conflate {delivery}: staleness p50 {st.get('p50')} p99 {st.get('p99')} max "
                f"{st.get('max')} ms; closed {r.get('closed')} {r.get('close_codes')}; RSS publish "
                f"start {srv.get('rss_kb_publish_start')} peak {srv.get('rss_kb_peak')} end "
                f"{srv.get('rss_kb_end')} KiB; conflated {cc.get('conflated')}, final on newest "
                f"{cc.get('final_newest')}/{cc.get('final_slots')}; host other "
                f"{r.get('host_cpu', {}).get('other_percent')}%")
        runs.append(r)
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


def tls(b, targets, quick, repeat, quiet_wait=60, profile=True):
    """The cost of TLS: odin-ws plain against odin-ws with WS_TLS_CERT/KEY, back to back in one
    run. Certificates: self-signed P-256 ECDSA (every TLS run) and RSA-2048 (the connect-rate
    run only: RSA signing is the classic handshake cost), made here with `openssl`. Clients make
    full handshakes (TLS 1.3, X25519), no certificate verification; one connect-rate run resumes
    sessions instead (a reconnecting browser).
      fanout:    10,000 clients on 1 channel, 10 msg/s for 10 s, plain and TLS alternating,
                 `repeat` pairs (default 3; medians quoted)
      connect:   10,000 clients opened as fast as possible: connections/s and the server's RSS
                 per connection, plain, ECDSA, RSA, ECDSA resumed
      sustained: 12,000 clients x 5 of 100 channels at 25 msg/s per client for 20 s
      profile:   perf of the gateway during a TLS and a plain fan-out, and during 3,000 ECDSA
                 and RSA handshakes (separate runs: perf perturbs what it watches)
    Before each run it waits (up to --quiet-wait s) for the machine's other work to settle, and
    every run records how busy the machine was (host_cpu)."""
    if "odin" not in targets:
        log("tls: measures the odin target only; add it to --targets")
        return []
    if not shutil.which("openssl"):
        raise RuntimeError("tls needs the openssl command (apt-get install openssl)")
    directory = tempfile.mkdtemp(prefix="bench-tls-")
    certs = {kind: make_cert(directory, kind) for kind in ("ecdsa", "rsa")}
    n_fan, n_conn, n_prof = (1000, 2000, 1000) if quick else (10000, 10000, 3000)
    seconds = 10 if quick else 20
    gdb = shutil.which("gdb") is not None
    runs = []

    def one(label, part, cert=None, **kw):
        quiet = wait_quiet(quiet_wait) if quiet_wait else None
        r = attempt(b, label, target="odin", part=part, tls=certs.get(cert), **kw)
        if quiet:
            r["host_before"] = quiet
        if "error" not in r:
            info = r.get("tls_info") or {}
            log(f"{label}: {r.get('connections_per_second', 0):,.0f} connections/s, server RSS "
                f"{r['server'].get('rss_kb_connected', 0) / 1024:.1f} MiB connected, "
                f"host other {r.get('host_cpu', {}).get('other_percent')}% "
                f"{info.get('version', '')} {info.get('cipher', '')} {info.get('signature', '')}")
        runs.append(r)

    for rep in range(repeat):
        for cert in (None, "ecdsa"):
            one(f"tls fanout {cert or 'plain'} #{rep + 1}", "fanout", cert, connections=n_fan,
                channels=1, per_conn=1, rate=10, seconds=10)
    for cert, resume in ((None, False), ("ecdsa", False), ("rsa", False), ("ecdsa", True)):
        one(f"tls connect {cert or 'plain'}{' resumed' if resume else ''}", "connect", cert,
            tls_resume=resume, connections=n_conn, channels=1, per_conn=1, rate=10, seconds=1,
            heap=gdb and not resume)
    shape = dict(SUSTAINED, connections=2000) if quick else SUSTAINED
    for cert in (None, "ecdsa"):
        one(f"tls sustained {cert or 'plain'}", "sustained", cert, seconds=seconds,
            rate=per_client_to_publish_rate(25), **shape)
    if profile and perf_usable():
        for cert in ("ecdsa", None):
            one(f"tls profile fanout {cert or 'plain'}", "profile-fanout", cert, profile="publish",
                connections=n_fan, channels=1, per_conn=1, rate=10, seconds=10)
        for cert in ("ecdsa", "rsa"):
            one(f"tls profile connect {cert}", "profile-connect", cert, profile="connect",
                connections=n_prof, channels=1, per_conn=1, rate=10, seconds=1)
    elif profile:
        log("tls: perf is missing or not permitted here: no profiles")
    shutil.rmtree(directory, ignore_errors=True)
    return runs


def scale(b, targets, quick, repeat, instances=6, quiet_wait=60, seconds=30, connections=None,
          broker="jetstream"):
    """100,000 WebSocket clients on `instances` gateways sharing one JetStream-enabled
    nats-server (WS_BROKER=jetstream), every client receiving everything it subscribed to:
    100 channels ch0..ch99, client i on channel i % 100 (1,000 clients per channel, spread over
    all instances), each channel published at 1 msg/s (100 msg/s in total, 500-byte payloads)
    for `seconds`: 1 msg/s per client, 100,000 deliveries/s. Connections are opened as fast as
    the load client can (6 worker processes of 16,667, source addresses 127.0.0.2-254, instance
    ports round-robin). Before each run it waits (up to quiet_wait s) for the machine's other
    work to settle; each run records the other work, and each instance's RSS, open files and
    CPU. --quick: 10,000 clients for 10 s. --broker nats: the same over core NATS, for
    comparison."""
    if "odin" not in targets:
        log("scale: measures the odin target only; add it to --targets")
        return []
    n, seconds = (10000, 10) if quick else (connections or 100000, seconds)
    runs = []
    for rep in range(repeat):
        quiet = wait_quiet(quiet_wait) if quiet_wait else None
        r = attempt(b, f"scale odin {n} on {instances} instances, {broker} #{rep + 1}",
                    target="odin", connections=n, channels=100, per_conn=1, rate=100,
                    seconds=seconds, instances=instances, broker=broker, extra_wait=40,
                    settle=3, detail=True)
        if quiet:
            r["host_before"] = quiet
        try:  # which gateway was measured (-modified: its sources differ from that commit)
            git = lambda *a: subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True,
                                            timeout=10)
            r["commit"] = git("rev-parse", "--short", "HEAD").stdout.strip() + (
                "" if git("diff", "--quiet", "HEAD", "--", "src", "tools", "CMakeLists.txt").returncode == 0
                else "-modified")
        except Exception:
            pass
        if "error" not in r:
            log(f"scale #{rep + 1}: connected in {r.get('connect_seconds')} s "
                f"({r.get('connections_per_second')}/s), host other "
                f"{r.get('host_cpu', {}).get('other_percent')}%")
        runs.append(r)
    return runs


def compression(b, targets, quick, repeat, seconds=30, quiet_wait=60):
    """permessage-deflate on against off, alternating, on odin only (each run's gateway CPU,
    wire bytes, RSS and /metrics kept):
      market: the sustained shape, 12,000 clients x 5 of 100 channels at 25 msg/s per client
              (500 msg/s published, 300,000 deliveries/s), `seconds` s, publisher --payload
              market (~500-byte order-book objects); on = loadclient --deflate (compression
              negotiated), off = the same clients without --deflate on a gateway with
              WS_COMPRESSION=false. `repeat` pairs.
      tick:   the same shape for 10 s with --payload tick (~180 bytes), one pair.
      idle:   10,000 clients (2 load-client processes) connected, on 1 channel, one message;
              the gateway's RSS once all are connected against its RSS empty, per connection,
              with and without --deflate. `repeat` pairs.
    Before each run it waits (up to quiet_wait s) for other work on the machine to settle.
    --quick: 2,000 clients, 10 s."""
    if "odin" not in targets:
        log("compression: measures the odin target only; add it to --targets")
        return []
    shape = dict(SUSTAINED, connections=2000) if quick else dict(SUSTAINED)
    seconds = 10 if quick else seconds
    n_idle = 2000 if quick else 10000
    runs = []

    def one(label, part, on, **kw):
        quiet = wait_quiet(quiet_wait) if quiet_wait else None
        r = attempt(b, label, target="odin", deflate=on,
                    server_env=None if on else {"WS_COMPRESSION": "false"}, metrics=True,
                    detail=True, **kw)
        r["setup"]["part"] = part
        r["setup"]["compression"] = on
        if quiet:
            r["host_before"] = quiet
        if "error" not in r:
            w, mt = r.get("wire", {}), r.get("server_metrics", {})
            inst = (r.get("instances") or [{}])[0]
            log(f"{label}: wire {w.get('bytes_per_frame')} B/frame, compressed frames "
                f"{w.get('compressed_frames')}, gateway cpu {inst.get('cpu_seconds')} s, "
                f"bytes_out {mt.get('ws_bytes_out_total')} messages_out "
                f"{mt.get('ws_messages_out_total')}, RSS empty "
                f"{(inst.get('empty') or {}).get('rss_kb')} connected "
                f"{(inst.get('connected') or {}).get('rss_kb')} KiB")
        runs.append(r)

    for rep in range(repeat):
        for on in ((True, False) if rep % 2 == 0 else (False, True)):
            one(f"compression market {'on' if on else 'off'} #{rep + 1}", "market", on,
                rate=per_client_to_publish_rate(25), seconds=seconds, payload="market", **shape)
    for on in (True, False):
        one(f"compression tick {'on' if on else 'off'}", "tick", on,
            rate=per_client_to_publish_rate(25), seconds=10, payload="tick", **shape)
    for rep in range(repeat):
        for on in ((True, False) if rep % 2 == 0 else (False, True)):
            one(f"compression idle {'on' if on else 'off'} #{rep + 1}", "idle", on,
                connections=n_idle, channels=1, per_conn=1, rate=1, seconds=1, extra_wait=2,
                client_processes=2, payload="market")
    return runs


SCENARIOS = {"fanout": fanout, "sustained": sustained, "maxrate": maxrate,
             "capacity": capacity, "slow": slow, "burst": burst, "tls": tls,
             "scale": scale, "conflate": conflate, "compression": compression}
ALL = ["fanout", "sustained", "maxrate", "capacity", "slow", "burst"]  # `all`: not tls, scale, conflate, compression


def main():
    global RESULTS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=list(SCENARIOS) + ["all"])
    ap.add_argument("--targets", default=",".join(ALL_TARGETS))
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--threads", type=int, default=0, help="odin's WS_THREADS (0 = its default)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs of each configuration, medians quoted (default: 3 for fanout, 1 for the longer scenarios)")
    ap.add_argument("--quick", action="store_true", help="smaller and shorter: a smoke run")
    ap.add_argument("--seconds", type=int, default=None,
                    help="length of the sustained runs (default 60), the scale runs (default 30) "
                         "and the conflate runs (default 30)")
    ap.add_argument("--quiet-wait", type=int, default=60,
                    help="tls, scale, conflate: seconds to wait before each run for other work on "
                         "the machine to settle (0: don't)")
    ap.add_argument("--no-profile", action="store_true", help="tls: no perf profiles")
    ap.add_argument("--connections", type=int, default=None,
                    help="scale: clients (default 100,000; 10,000 with --quick)")
    ap.add_argument("--broker", default="jetstream", choices=["jetstream", "nats"],
                    help="scale: the gateways' WS_BROKER")
    ap.add_argument("--instances", type=int, default=6,
                    help="scale: gateway instances (each may hold at most 20,000 open files here)")
    ap.add_argument("--rate", type=int, default=None,
                    help="conflate: the deliverable per-client rate (msg/s); default: found first "
                         "with the maxrate search")
    ap.add_argument("--max-hz", type=float, default=None,
                    help="conflate: max_hz of the latest subscriptions (default: none, no cap)")
    ap.add_argument("--results", default=RESULTS,
                    help="where the runs are saved (default docs/bench/results.json; "
                         "tools/bench/compare.py keeps its runs elsewhere)")
    a = ap.parse_args()
    RESULTS = os.path.abspath(a.results)
    targets = [t for t in a.targets.split(",") if t]
    for t in targets:
        if t not in ALL_TARGETS:
            ap.error(f"unknown target {t}")
    b = Bench(a.build, a.threads)
    names = ALL if a.scenario == "all" else [a.scenario]
    command = "tools/bench/run.sh " + " ".join(sys.argv[1:])
    for name in names:
        log(f"== {name}")
        if name == "sustained":
            runs = sustained(b, targets, a.quick, a.repeat or 1, a.seconds or 60)
        elif name == "tls":
            runs = tls(b, targets, a.quick, a.repeat or 3, a.quiet_wait, not a.no_profile)
        elif name == "scale":
            runs = scale(b, targets, a.quick, a.repeat or 3, a.instances, a.quiet_wait,
                         a.seconds or 30, a.connections, a.broker)
        elif name == "compression":
            runs = compression(b, targets, a.quick, a.repeat or 1, a.seconds or 30, a.quiet_wait)
        elif name == "conflate":
            runs = conflate(b, targets, a.quick, 1, a.rate, a.seconds or 30, a.max_hz, a.quiet_wait)
        else:
            runs = SCENARIOS[name](b, targets, a.quick, a.repeat or (3 if name == "fanout" else 1))
        notes = {"quick": a.quick, "threads": a.threads}
        if name in ("tls", "scale", "compression"):
            notes["quiet_wait"] = a.quiet_wait
        replaces = None
        if name == "scale":  # runs of another size or instance count stay
            shape = {r["setup"]["connections"] for r in runs}, a.instances
            replaces = lambda setup: (setup.get("connections") in shape[0]
                                      and setup.get("instances") == shape[1]
                                      and setup.get("broker", "nats") == a.broker
                                      and setup.get("threads", 0) == a.threads)
        if name == "conflate":
            notes.update(rate=a.rate, max_hz=a.max_hz, quiet_wait=a.quiet_wait)
            # Runs at another per-client rate stay (the report shows each rate's pair); a new
            # search replaces the old one.
            rates = {r["setup"]["rate"] for r in runs if not r["setup"].get("search")}
            searched = any(r["setup"].get("search") for r in runs)
            replaces = lambda setup: (searched if setup.get("search")
                                      else setup.get("rate") in rates)
        # tls runs are all of the odin target: they replace the earlier tls runs
        save(name, runs, command, notes,
             ["odin"] if name in ("tls", "scale", "conflate", "compression") else targets,
             replaces)


if __name__ == "__main__":
    main()
