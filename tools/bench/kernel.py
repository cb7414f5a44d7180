#!/usr/bin/env python3
"""Kernel settings that bound a WebSocket gateway, measured on this machine (the figures behind
docs/operations.md "Sizing and kernel settings"). Loopback only, bounded in time and count;
stops only the processes it started.

  kernel.py sysctls              which settings are writable here, their values
  kernel.py backlog [--burst N]  accept-queue overflow: a connect burst against a listener that
                                 stalls 200 ms, listen() backlog 128 / 1024 / 4096, and
                                 somaxconn capping listen(4096)
  kernel.py ports                ip_local_port_range: connections from one client address
  kernel.py gwbacklog --build DIR the gateway itself, somaxconn 128 and 4096: 19,000 clients at once
  kernel.py sockmem [--pairs N]  kernel memory per idle and per backlogged TCP connection
  kernel.py fds --build DIR      open files of an idle gateway; what happens past RLIMIT_NOFILE
  kernel.py all [--build DIR] [--out docs/bench/kernel.json]
                                 all of the above (defaults), recorded with the machine and the
                                 command of each, in one JSON file

backlog and ports change net.core.somaxconn / net.ipv4.ip_local_port_range, so they run in a
network namespace of their own (`unshare -n`, root): the machine's own settings, and whatever
else runs on it, are untouched. Each prints one JSON object on stdout.
"""
import argparse
import errno
import json
import os
import resource
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time

IP_BIND_ADDRESS_NO_PORT = 24  # <linux/in.h>; Python's socket module lacks the name

SYSCTLS = ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_syncookies",
           "net.ipv4.tcp_abort_on_overflow", "net.ipv4.ip_local_port_range", "fs.file-max",
           "fs.nr_open", "fs.file-nr", "net.ipv4.tcp_mem", "net.ipv4.tcp_rmem",
           "net.ipv4.tcp_wmem", "net.core.rmem_max", "net.core.wmem_max",
           "net.core.netdev_max_backlog"]


def sysctl_path(name):
    return "/proc/sys/" + name.replace(".", "/")


def read_sysctl(name):
    try:
        with open(sysctl_path(name)) as f:
            return " ".join(f.read().split())
    except OSError as e:
        return f"unreadable: {e.strerror}"


def write_sysctl(name, value):
    with open(sysctl_path(name), "w") as f:
        f.write(str(value))


def writable(name):
    """Writes the current value back: tells whether the setting can be changed here without
    changing it."""
    value = read_sysctl(name)
    try:
        write_sysctl(name, value)
        return True
    except OSError as e:
        return f"no ({e.strerror})"


def in_own_netns(argv):
    """Re-runs this script in a new network namespace (loopback up) unless already there."""
    if os.environ.get("KERNEL_PY_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    env = dict(os.environ, KERNEL_PY_NETNS="1")
    r = subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__)] + argv, env=env)
    sys.exit(r.returncode)


def netstat_counters(names):
    """TcpExt and Tcp counters of the current network namespace (/proc/net/netstat, snmp)."""
    out = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        with open(path) as f:
            lines = f.read().splitlines()
        for head, vals in zip(lines[::2], lines[1::2]):
            prefix = head.split(":")[0]
            for k, v in zip(head.split()[1:], vals.split()[1:]):
                if prefix + k in names:
                    out[prefix + k] = int(v)
    return out


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


# ---- sysctls ------------------------------------------------------------------------------

def cmd_sysctls(a):
    out = {}
    for name in SYSCTLS:
        out[name] = {"value": read_sysctl(name),
                     "writable": writable(name) if name != "fs.file-nr" else "read-only"}
    # Inside a new network namespace: which of them are per-namespace.
    probe = subprocess.run(["unshare", "-n", "sh", "-c", " ".join(
        f"test -e {sysctl_path(n)} && echo {n};" for n in SYSCTLS) + " true"],
                           capture_output=True, text=True)
    per_ns = set(probe.stdout.split())
    for name in SYSCTLS:
        # /proc/sys/fs is there in every namespace: the fs.* limits are the machine's.
        out[name]["per_netns"] = (name in per_ns and name.startswith("net.")
                                  if probe.returncode == 0 else None)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard + 1))
        raise_hard = "yes"
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    except (ValueError, OSError) as e:
        raise_hard = f"no ({e})"
    out["RLIMIT_NOFILE"] = {"soft": soft, "hard": hard, "raise_hard": raise_hard}
    return out


# ---- listen backlog ------------------------------------------------------------------------

BACKLOG_COUNTERS = {"TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPSynRetrans",
                    "TcpRetransSegs", "TcpExtSyncookiesSent", "TcpExtTCPReqQFullDoCookies",
                    "TcpExtTCPReqQFullDrop", "TcpActiveOpens", "TcpPassiveOpens"}


def backlog_case(backlog, burst, stall, somaxconn):
    """`burst` non-blocking connects to a listener with listen(backlog) that accepts nothing
    for `stall` seconds (an event loop busy with a fan-out), then accepts as fast as it can.
    Per connection: connect() start to the server's accept() of it (matched by port), at most
    20 s."""
    write_sysctl("net.core.somaxconn", somaxconn)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(backlog)
    srv.setblocking(False)
    port = srv.getsockname()[1]
    ss = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout.split()
    effective = int(ss[2]) if len(ss) > 2 else None  # Send-Q of a listener = its backlog
    before = netstat_counters(BACKLOG_COUNTERS)
    clients, started = [], {}
    t0 = time.monotonic()
    for _ in range(burst):
        c = socket.socket()
        c.setblocking(False)
        t = time.monotonic()
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        started[c.getsockname()[1]] = t
        clients.append(c)
    burst_seconds = time.monotonic() - t0
    time.sleep(max(0.0, stall - (time.monotonic() - t0)))
    # Each client sends its request as soon as its connect() completes (as a browser sends its
    # upgrade request): with SYN cookies the server side only exists once that ACK is accepted.
    ep = select.epoll()
    ep.register(srv.fileno(), select.EPOLLIN)
    by_fd = {c.fileno(): c for c in clients}
    for fd in by_fd:
        ep.register(fd, select.EPOLLOUT)
    accepted, waits, connected = [], [], 0
    deadline = time.monotonic() + 20
    while len(accepted) < burst and time.monotonic() < deadline:
        for fd, ev in ep.poll(0.05):
            if fd == srv.fileno():
                while True:
                    try:
                        s, peer = srv.accept()
                    except BlockingIOError:
                        break
                    waits.append(time.monotonic() - started[peer[1]])
                    accepted.append(s)
            else:
                ep.unregister(fd)
                if not by_fd[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    connected += 1
                    try:
                        by_fd[fd].send(b"GET /ws HTTP/1.1\r\n\r\n")
                    except OSError:
                        pass
    ep.close()
    after = netstat_counters(BACKLOG_COUNTERS)
    for s in accepted + clients:
        s.close()
    srv.close()
    ms = [w * 1000 for w in waits]
    return {"listen_backlog": backlog, "somaxconn": somaxconn, "effective_backlog": effective,
            "burst": burst, "stall_ms": round(stall * 1000), "burst_ms": round(burst_seconds * 1000, 1),
            "client_connected": connected, "accepted": len(accepted),
            "accept_wait_ms": {"p50": round(pct(ms, 50), 1), "p90": round(pct(ms, 90), 1),
                               "p99": round(pct(ms, 99), 1), "max": round(max(ms), 1)} if ms else {},
            "waited_over_1s": sum(1 for w in waits if w >= 1.0),
            "counters": {k: after.get(k, 0) - before.get(k, 0) for k in sorted(BACKLOG_COUNTERS)}}


def cmd_backlog(a):
    in_own_netns(sys.argv[1:])
    raise_nofile()
    cases = [backlog_case(b, a.burst, a.stall, 4096) for b in (128, 1024, 4096)]
    # The gateway calls listen(4096): somaxconn caps it.
    cases.append(backlog_case(4096, a.burst, a.stall, 128))
    return {"netns": "own (unshare -n)", "tcp_max_syn_backlog": read_sysctl("net.ipv4.tcp_max_syn_backlog"),
            "tcp_syncookies": read_sysctl("net.ipv4.tcp_syncookies"),
            "tcp_abort_on_overflow": read_sysctl("net.ipv4.tcp_abort_on_overflow"), "cases": cases}


def start_gateway(build, port, max_connections):
    env = dict(os.environ, WS_ADDR=f"127.0.0.1:{port}", WS_BROKER="embedded",
               WS_MAX_CONNECTIONS=str(max_connections), WS_CPU_REJECT_THRESHOLD="100",
               WS_MEMORY_REJECT_THRESHOLD="100", LOG_LEVEL="warn")
    log = tempfile.NamedTemporaryFile(prefix="kernel-gw-", suffix=".log", delete=False)
    gw = subprocess.Popen([os.path.join(build, "odin-ws")], env=env, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    time.sleep(0.5)
    return gw, log.name


def stop_gateway(gw, log):
    gw.terminate()
    try:
        gw.wait(15)
    except subprocess.TimeoutExpired:
        gw.kill()
        gw.wait()
    os.unlink(log)


def cmd_gwbacklog(a):
    """The real gateway (it calls listen(4096)) with somaxconn 128 and 4096: `--connections`
    clients opened as fast as the load client can (2 processes, 2,000 handshakes in flight
    each): time to connect all, and the kernel's counters."""
    in_own_netns(sys.argv[1:])
    cases = []
    for somaxconn in (128, 4096):
        write_sysctl("net.core.somaxconn", somaxconn)
        port = free_port()
        gw, log = start_gateway(a.build, port, 20000)
        try:
            before = netstat_counters(BACKLOG_COUNTERS)
            r = subprocess.run([os.path.join(a.build, "loadclient"), "--port", str(port),
                                "--connections", str(a.connections), "--processes", "2",
                                "--duration", "1", "--server-pid", str(gw.pid)],
                               capture_output=True, text=True, timeout=240)
            after = netstat_counters(BACKLOG_COUNTERS)
            res = json.loads([l for l in r.stdout.splitlines() if l.startswith("{")][-1])
            cases.append({"somaxconn": somaxconn, "connections": res.get("connections"),
                          "failures": res.get("failures"), "connect_seconds": res.get("connect_seconds"),
                          "connections_per_second": res.get("connections_per_second"),
                          "server_cpu_seconds_connecting": res.get("server", {}).get("cpu_seconds_connecting"),
                          "counters": {k: after.get(k, 0) - before.get(k, 0) for k in sorted(BACKLOG_COUNTERS)}})
        finally:
            stop_gateway(gw, log)
    return {"netns": "own (unshare -n)", "cases": cases}


# ---- ephemeral ports -----------------------------------------------------------------------

def fill(listeners, src, mode, limit, opened):
    """Opens connections until the kernel refuses one (or `limit`): blocking connect() on
    loopback, then the listener accepts it. mode: `auto` (connect() picks the source address and
    port), `bind` (bind((src, 0)) first: the port is chosen at bind()), `no_port` (bind((src, 0))
    with IP_BIND_ADDRESS_NO_PORT: the port is chosen at connect(), per destination)."""
    error = None
    for srv in listeners:
        dest = srv.getsockname()
        n = 0
        while n < limit:
            c = socket.socket()
            try:
                if mode == "no_port":
                    c.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                if mode != "auto":
                    c.bind((src, 0))
                c.connect(dest)
            except OSError as e:
                c.close()
                error = errno.errorcode.get(e.errno, str(e.errno))
                break
            opened.append(c)
            opened.append(srv.accept()[0])
            n += 1
        yield {"destination_port": dest[1], "connections": n, "stopped_by": error}
        error = None


def cmd_ports(a):
    """Each sequence of cases in a fresh network namespace of its own, with the port range cut
    to --low..--high; the listeners sit on ports below it so they use none of it."""
    if os.environ.get("KERNEL_PY_NETNS") != "1":
        out = {"netns": "own (unshare -n), a fresh one per sequence", "ports_in_range": a.high - a.low + 1,
               "default_range_ports": 60999 - 32768 + 1, "sequences": []}
        for seq in ("auto", "bind", "no_port", "bind,no_port"):
            r = subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__), "ports",
                                "--low", str(a.low), "--high", str(a.high), "--cases", seq],
                               env=dict(os.environ, KERNEL_PY_NETNS="1"), capture_output=True,
                               text=True, timeout=120)
            out["sequences"].append(json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr[-500:]})
        return out
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    raise_nofile()
    write_sysctl("net.ipv4.ip_local_port_range", f"{a.low} {a.high}")
    size = a.high - a.low + 1
    listeners = []
    for port in (a.low - 2, a.low - 1):
        srv = socket.socket()
        srv.bind(("127.0.0.1", port))
        srv.listen(4096)
        listeners.append(srv)
    limit = size + 100
    cases, held = [], []
    sources = {"auto": "127.0.0.1", "bind": "127.0.0.2", "no_port": "127.0.0.3"}
    for mode in a.cases.split(","):
        t0 = time.monotonic()
        per_dest = list(fill(listeners, sources[mode], mode, limit, held))
        cases.append({"source": sources[mode], "mode": mode, "per_destination": per_dest,
                      "total": sum(d["connections"] for d in per_dest),
                      "seconds": round(time.monotonic() - t0, 2)})
    for s in held:
        s.close()
    return {"ip_local_port_range": read_sysctl("net.ipv4.ip_local_port_range"),
            "ports_in_range": size, "cases": cases}


# ---- socket memory -------------------------------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")


def sockstat():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                v = line.split()[1:]
                return dict(zip(v[::2], map(int, v[1::2])))
    return {}


def meminfo():
    with open("/proc/meminfo") as f:
        return {l.split(":")[0]: int(l.split()[1]) for l in f}


def tcp_slab():
    """Active objects and object size of the slab caches a TCP socket lives in: the socket
    itself, its inode, its struct file, its dentry (root: /proc/slabinfo)."""
    out = {}
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                p = line.split()
                if p and p[0] in ("TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi"):
                    out[p[0]] = {"active": int(p[1]), "objsize": int(p[3])}
    except OSError:
        return None
    return out


def skmem(port):
    """Per-socket buffers (ss -tm): summed over the sockets whose local port is `port` (the
    server side) and over the others (the client side): r = bytes in the receive queue,
    t = bytes being transmitted, w = queued to send, f = forward-allocated, as `ss` reports."""
    text = subprocess.run(["ss", "-tmnH"], capture_output=True, text=True).stdout
    sums = {"server": {}, "client": {}}
    lines = text.splitlines()
    cur = None
    for line in lines:
        if "skmem:(" in line:
            body = line.split("skmem:(")[1].split(")")[0]
            vals = {}
            for item in body.split(","):
                k = item.rstrip("0123456789")
                vals[k] = int(item[len(k):])
            side = sums[cur] if cur else None
            if side is not None:
                for k in ("r", "rb", "t", "tb", "f", "w"):
                    side[k] = side.get(k, 0) + vals.get(k, 0)
                side["sockets"] = side.get("sockets", 0) + 1
            cur = None
        else:
            p = line.split()
            if len(p) >= 4 and p[0] == "ESTAB":
                cur = "server" if p[3].endswith(f":{port}") else "client"
            if "skmem:(" in line:
                pass
    return sums


def snapshot():
    return {"sockstat": sockstat(), "mem": meminfo(), "slab": tcp_slab()}


def delta(a, b, n):
    """Per connection (a pair of sockets, both on this machine) from snapshot a to b."""
    out = {"tcp_mem_pages": b["sockstat"]["mem"] - a["sockstat"]["mem"],
           "sockets_inuse": b["sockstat"]["inuse"] - a["sockstat"]["inuse"]}
    out["tcp_mem_bytes_per_connection"] = round(out["tcp_mem_pages"] * PAGE / n)
    out["slab_kb"] = b["mem"]["Slab"] - a["mem"]["Slab"]
    out["slab_bytes_per_connection"] = round(out["slab_kb"] * 1024 / n)
    if a["slab"] and b["slab"]:
        out["slab_caches"] = {k: {"objects": v["active"] - a["slab"].get(k, {}).get("active", 0),
                                  "objsize": v["objsize"]} for k, v in b["slab"].items()}
    return out


def cmd_sockmem(a):
    in_own_netns(sys.argv[1:])
    raise_nofile()
    n = a.pairs
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4096)
    port = srv.getsockname()[1]
    base = snapshot()
    clients, servers = [], []
    for i in range(n):
        c = socket.socket()
        c.connect(srv.getsockname())
        clients.append(c)
        servers.append(srv.accept()[0])
    time.sleep(1)
    idle = snapshot()
    out = {"netns": "own (unshare -n)", "connections": n, "page_bytes": PAGE,
           "note": "a connection is a pair of sockets here (both ends on this machine); the "
                   "sockstat TCP mem figure is the machine's (global, all namespaces), so other "
                   "work adds noise to it",
           "idle": delta(base, idle, n), "idle_skmem": skmem(port)}
    # Backlogged: the server side writes `queued` bytes to each of `backlogged` connections
    # whose client never reads (a stalled browser), then as much as the kernel takes on a few.
    payload = b"x" * 16384
    written = 0
    for s in servers[:a.backlogged]:
        s.setblocking(False)
        left = a.queued
        while left > 0:
            try:
                k = s.send(payload[:min(left, len(payload))])
            except BlockingIOError:
                break
            left -= k
            written += k
    time.sleep(1)
    queued = snapshot()
    out["backlogged"] = dict(delta(idle, queued, a.backlogged), connections=a.backlogged,
                             bytes_written=written,
                             bytes_written_per_connection=round(written / a.backlogged))
    out["backlogged"]["tcp_mem_bytes_per_payload_byte"] = round(
        out["backlogged"]["tcp_mem_pages"] * PAGE / max(written, 1), 2)
    out["backlogged_skmem"] = skmem(port)
    # Until the kernel refuses more (EAGAIN) on `full` of the other connections.
    full = []
    for s in servers[a.backlogged:a.backlogged + a.full]:
        s.setblocking(False)
        total = 0
        t_end = time.monotonic() + 5
        while time.monotonic() < t_end:
            try:
                total += s.send(payload)
            except BlockingIOError:
                time.sleep(0.05)  # loopback delivers asynchronously: make sure it is full
                try:
                    total += s.send(payload)
                    continue
                except BlockingIOError:
                    break
        full.append(total)
    time.sleep(1)
    filled = snapshot()
    out["until_eagain"] = dict(delta(queued, filled, a.full), connections=a.full,
                               bytes_per_connection={"min": min(full), "median": int(statistics.median(full)),
                                                     "max": max(full)})
    out["until_eagain_skmem"] = skmem(port)
    for s in clients + servers:
        s.close()
    srv.close()
    out["sysctls"] = {k: read_sysctl(k) for k in ("net.ipv4.tcp_rmem",
                                                  "net.ipv4.tcp_wmem", "net.core.wmem_max")}
    return out


# ---- file descriptors ----------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cmd_fds(a):
    """An idle gateway's open files, then `--connections` clients (default 20,000: the file
    limit) against one gateway allowed that many: what the last ones get."""
    gw_port = free_port()
    env = dict(os.environ, WS_ADDR=f"127.0.0.1:{gw_port}", WS_BROKER="embedded",
               WS_MAX_CONNECTIONS=str(a.connections), WS_CPU_REJECT_THRESHOLD="100",
               WS_MEMORY_REJECT_THRESHOLD="100", LOG_LEVEL="warn")
    log = tempfile.NamedTemporaryFile(prefix="kernel-fds-gw-", suffix=".log", delete=False)
    gw = subprocess.Popen([os.path.join(a.build, "odin-ws")], env=env, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True)
    client = None
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", gw_port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)
        fds = lambda: len(os.listdir(f"/proc/{gw.pid}/fd"))
        with open(f"/proc/{gw.pid}/limits") as f:
            limit = next(l for l in f if l.startswith("Max open files")).split()[3:5]
        idle = fds()
        kinds = {}
        for fd in os.listdir(f"/proc/{gw.pid}/fd"):
            try:
                t = os.readlink(f"/proc/{gw.pid}/fd/{fd}")
            except OSError:
                continue
            t = t.split(":")[0] if ":" in t else ("file" if t.startswith("/") else t)
            kinds[t] = kinds.get(t, 0) + 1
        client = subprocess.run([os.path.join(a.build, "loadclient"), "--port", str(gw_port),
                                 "--connections", str(a.connections), "--processes", "2",
                                 "--connect-timeout", "10", "--duration", "1",
                                 "--server-pid", str(gw.pid)],
                                capture_output=True, text=True, timeout=180)
        res = json.loads([l for l in client.stdout.splitlines() if l.startswith("{")][-1])
        with open(log.name, errors="replace") as f:
            warnings = [l for l in f.read().splitlines() if "accept failed" in l]
        return {"gateway_nofile_limit": limit, "idle_gateway_open_files": idle,
                "idle_gateway_open_files_by_kind": kinds, "connections_requested": a.connections,
                "connected": res.get("connections"), "failures": res.get("failures"),
                "connect_seconds": res.get("connect_seconds"),
                "accept_failed_log_lines": len(warnings),
                "accept_failed_example": warnings[0][:300] if warnings else None,
                "server": res.get("server")}
    finally:
        gw.terminate()
        try:
            gw.wait(15)
        except subprocess.TimeoutExpired:
            gw.kill()
            gw.wait()
        os.unlink(log.name)


def cmd_all(a):
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "kernel": os.uname().release,
           "cpus": os.cpu_count(), "memory_kb": meminfo()["MemTotal"], "results": {}}
    for name, extra in (("sysctls", []), ("ports", []), ("backlog", []),
                        ("gwbacklog", ["--build", a.build]), ("sockmem", []),
                        ("fds", ["--build", a.build])):
        argv = ["tools/bench/kernel.py", name] + extra
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, os.path.abspath(__file__), name] + extra,
                           capture_output=True, text=True, timeout=600)
        try:
            res = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            res = {"error": (r.stderr or r.stdout)[-1000:]}
        out["results"][name] = {"command": " ".join(argv),
                                "seconds": round(time.monotonic() - t0, 1), "result": res}
        print(f"{name}: {round(time.monotonic() - t0, 1)} s", file=sys.stderr, flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)
    return {k: "error" not in v["result"] for k, v in out["results"].items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("sysctls")
    b = sub.add_parser("backlog")
    b.add_argument("--burst", type=int, default=3000)
    b.add_argument("--stall", type=float, default=0.2)
    p = sub.add_parser("ports")
    p.add_argument("--low", type=int, default=50000)
    p.add_argument("--high", type=int, default=50999)
    p.add_argument("--cases", default="", help="(internal) modes to run in order in one namespace")
    m = sub.add_parser("sockmem")
    m.add_argument("--pairs", type=int, default=8000)
    m.add_argument("--backlogged", type=int, default=2000)
    m.add_argument("--queued", type=int, default=65536)
    m.add_argument("--full", type=int, default=20)
    g = sub.add_parser("gwbacklog")
    g.add_argument("--build", default="build/release")
    g.add_argument("--connections", type=int, default=19000)
    f = sub.add_parser("fds")
    f.add_argument("--build", default="build/release")
    f.add_argument("--connections", type=int, default=20000)
    al = sub.add_parser("all")
    al.add_argument("--build", default="build/release")
    al.add_argument("--out", default="docs/bench/kernel.json")
    a = ap.parse_args()
    fn = {"all": cmd_all, "sysctls": cmd_sysctls, "backlog": cmd_backlog, "ports": cmd_ports,
          "sockmem": cmd_sockmem, "fds": cmd_fds,
          "gwbacklog": cmd_gwbacklog}[a.cmd]
    print(json.dumps(fn(a)), flush=True)


if __name__ == "__main__":
    main()
