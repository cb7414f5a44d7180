#!/usr/bin/env python3
"""Writes docs/benchmarks.md and its plots (docs/bench/*.png) from docs/bench/results.json, the
records tools/bench/bench.py appends. Medians over repeated runs; ratios against each peer are
taken within the same run of the suite. The hand-written analysis in docs/bench/analysis.md is
included as it is."""
import json
import os
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOCS = os.path.join(ROOT, "docs")
BENCH = os.path.join(DOCS, "bench")
RESULTS = os.path.join(BENCH, "results.json")
ANALYSIS = os.path.join(BENCH, "analysis.md")
TLS_ANALYSIS = os.path.join(BENCH, "tls-analysis.md")
SCALE_ANALYSIS = os.path.join(BENCH, "scale-analysis.md")
CONFLATE_ANALYSIS = os.path.join(BENCH, "conflate-analysis.md")
COMPRESSION_BOUND = os.path.join(BENCH, "compression-bound.md")  # tools/bench/deflate_bound.py
COMPRESSION_ANALYSIS = os.path.join(BENCH, "compression-analysis.md")
TARGETS = ["odin", "odin-1t", "blaster", "node", "nats-ws"]
LABEL = {"odin": "odin-ws", "odin-1t": "odin-ws, 1 thread", "blaster": "ceiling (writev blaster)", "node": "Node ws+nats",
         "nats-ws": "nats-server WebSocket"}
SEEDS_FANOUT_P99 = {100: 17.8, 1000: 55.6, 10000: 1073}
LABEL_TLS = {None: "plain", "ecdsa": "TLS, ECDSA P-256", "rsa": "TLS, RSA-2048"}
# Exported functions the TLS profiles are read through (the library internals are stripped).
PROFILE_SYMBOLS = [
    ("__GI___writev", "socket writes (kernel TCP send path below it)"),
    ("odin::OutBatch::flush_one", "plain: a connection's frames to its socket"),
    ("odin::OutBatch::flush_tls", "TLS: a connection's frames gathered and encrypted"),
    ("SSL_write_ex", "TLS record layer: framing and encryption of the frames"),
    ("EVP_EncryptUpdate", "AES-256-GCM encryption"),
    ("EVP_CipherInit_ex", "per-record cipher (nonce) setup"),
    ("odin::OutBatch::send_tls_output", "TLS: ciphertext to the socket (writev)"),
    ("SSL_read_ex", "server TLS input: the whole handshake runs inside it"),
    ("EVP_DigestSignFinal", "the handshake signature (CertificateVerify): ECDSA or RSA sign"),
    ("BN_mod_exp_mont_consttime", "RSA private-key operation"),
    ("EVP_PKEY_generate", "ephemeral key share (X25519 key generation)"),
    ("EVP_PKEY_derive", "ECDHE shared secret (X25519)"),
    ("EVP_DigestUpdate", "transcript hashing"),
    ("EVP_KDF_derive", "TLS 1.3 key schedule (HKDF)"),
    ("SSL_new", "per-connection TLS object"),
    ("SSL_free", "freeing it"),
    ("OPENSSL_LH_doall_arg", "OpenSSL 3 provider/name-map lookups (hash-table walks)"),
    ("odin::EventLoop::add_connection", "accepting a connection (over TLS also the first handshake flight, when the ClientHello is already there)"),
]
COLOR = {"odin": "#1f77b4", "odin-1t": "#9467bd", "blaster": "#7f7f7f", "node": "#d62728", "nats-ws": "#2ca02c"}


def ok(r):
    return "error" not in r


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def pick(runs, **match):
    return [r for r in runs if all(r["setup"].get(k) == v for k, v in match.items())]


def get(r, path):
    for k in path.split("."):
        if not isinstance(r, dict) or k not in r:
            return None
        r = r[k]
    return r


def stat(runs, path):
    return med([get(r, path) for r in runs if ok(r)])


def fmt(v, unit="", digits=1):
    if v is None:
        return "–"
    if isinstance(v, float) and abs(v) >= 100:
        digits = 0
    return f"{v:,.{digits}f}{unit}"


def failures(runs):
    bad = [r for r in runs if not ok(r)]
    return f" ({len(bad)} of {len(runs)} runs failed)" if bad else ""


def ratio(peer, ours):
    if peer is None or ours in (None, 0):
        return "–"
    return f"{peer / ours:.1f}x"


def tls_ratio(tls, plain):
    """TLS / plain, two decimals (the interesting ratios are near 1 or far below it)."""
    if tls is None or plain in (None, 0):
        return "–"
    r = tls / plain
    return f"{r:.2f}x (1/{1 / r:.0f})" if r < 0.2 else f"{r:.2f}x"


def lowest_delivery(runs):
    return min([r.get("delivery_percent", 0) for r in runs if ok(r)] or [0])


def delivered(runs):
    good = [r for r in runs if ok(r)]
    if not good:
        return "failed"
    lo = lowest_delivery(good)
    return f"{lo:.2f}%" if lo < 99.995 else "100%"


class Report:
    def __init__(self, data):
        self.data = data
        self.s = data.get("scenarios", {})
        self.out = []
        self.targets_summary = []
        self.peer_rows = []
        self.tls_vals = {}  # the TLS tables' medians, for the TLS / plain summary

    def w(self, line=""):
        self.out.append(line)

    def sustained_seconds(self):
        runs = self.s.get("sustained", {}).get("runs", [])
        return runs[0]["setup"].get("seconds", 60) if runs else 60

    def section(self, name, title, description):
        """Heading, description and command of a scenario; its runs, or None when it was not run."""
        if name not in self.s:
            return None
        self.w(f"## {title}")
        self.w()
        self.w(description)
        self.w()
        self.command(name)
        return self.s[name]["runs"]

    def command(self, name):
        sc = self.s[name]
        cmds = " and ".join(f"`{c}`" for c in sc.get("commands", [sc["command"]]))
        self.w(f"Command: {cmds} ({sc['date']}; {self.repeats(sc['runs'])})")
        self.w()

    @staticmethod
    def repeats(runs):
        keys = {}
        for r in runs:
            k = json.dumps({k: v for k, v in r["setup"].items() if k != "search"}, sort_keys=True)
            keys[k] = keys.get(k, 0) + 1
        n = max(keys.values()) if keys else 0
        return f"median of {n} runs" if n > 1 else "one run each"

    def present(self, runs):
        return [t for t in TARGETS if pick(runs, target=t)]

    def peer_check(self, label, runs, match):
        """Records, per scenario row, whether each odin variant beats every peer: at least the
        peer's delivery and a lower p99."""
        for variant in ("odin", "odin-1t"):
            mine = [r for r in pick(runs, target=variant, **match) if ok(r)]
            if not mine:
                continue
            my_d = lowest_delivery(mine)
            my_p = stat(mine, "latency_ms.p99")
            for peer in ("node", "nats-ws"):
                theirs = pick(runs, target=peer, **match)
                good = [r for r in theirs if ok(r)]
                if not theirs:
                    continue
                their_d = lowest_delivery(good)
                their_p = stat(good, "latency_ms.p99")
                ahead = (not good) or my_d > their_d or (my_d >= their_d and my_p is not None and their_p is not None and my_p < their_p)
                self.peer_rows.append((variant, f"{label} vs {LABEL[peer]}", ahead))

    def target(self, what, goal, value, met):
        self.targets_summary.append((what, goal, value, "met" if met else "**not met**"))

    # ---- scenarios ----

    def fanout(self):
        runs = self.section("fanout", "Fan-out (the seeds' experiment 2)",
                            "N clients on one channel; 10 messages per second for 10 s, 500-byte payloads, "
               "published on NATS. Latency: publisher's timestamp to the client's read of each "
               "delivery. Reach-all: until the last of the N clients has the message.")
        if runs is None:
            return
        targets = self.present(runs)
        sizes = sorted({r["setup"]["connections"] for r in runs})
        head = "| clients | " + " | ".join(f"{LABEL[t]}: delivered, p50 / p99 (reach-all p99)" for t in targets)
        self.w(head + " | seeds' Go p99 | " + " | ".join(f"p99 ratio {LABEL[t]} / odin-ws" for t in targets if t != "odin") + " |")
        self.w("|" + "---|" * (2 + len(targets) + len([t for t in targets if t != "odin"])))
        for n in sizes:
            cells, p99 = [], {}
            for t in targets:
                rs = pick(runs, target=t, connections=n)
                p99[t] = stat(rs, "latency_ms.p99")
                cells.append(f"{delivered(rs)}, {fmt(stat(rs, 'latency_ms.p50'))} / **{fmt(p99[t])}** ms "
                             f"({fmt(stat(rs, 'reach_all_ms.p99'))}){failures(rs)}")
            ratios = [ratio(p99[t], p99.get("odin")) for t in targets if t != "odin"]
            self.peer_check(f"fan-out {n:,}", runs, dict(connections=n))
            self.w(f"| {n:,} | " + " | ".join(cells) + f" | {fmt(SEEDS_FANOUT_P99.get(n))} | " + " | ".join(ratios) + " |")
        self.w()
        fig, ax = plt.subplots(figsize=(7, 4))
        for t in targets:
            xs, ys = [], []
            for n in sizes:
                v = stat(pick(runs, target=t, connections=n), "latency_ms.p99")
                if v is not None:
                    xs.append(n)
                    ys.append(v)
            ax.plot(xs, ys, marker="o", label=LABEL[t], color=COLOR[t])
        ax.plot(list(SEEDS_FANOUT_P99), list(SEEDS_FANOUT_P99.values()), marker="x", linestyle=":",
                color="black", label="seeds' Go gateway")
        ax.axhline(60, color="orange", linestyle="--", linewidth=1, label="target at 10k: 60 ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("clients on the channel")
        ax.set_ylabel("p99 latency, ms")
        ax.set_title("Fan-out: 10 msg/s, p99 publish -> client")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        self.plot(fig, "fanout.png", "Fan-out p99 by number of clients")
        at_10k = pick(runs, target="odin", connections=10000)
        o = stat(at_10k, "latency_ms.p99")
        d = lowest_delivery(at_10k)
        if o is not None:
            self.target("fan-out at 10,000: 100% delivered, p99 <= 60 ms", "<= 60 ms",
                        f"{fmt(o)} ms, {d:.2f}%", o <= 60 and d >= 100)

    def sustained(self):
        runs = self.section("sustained", "Sustained (the seeds' 12k configuration)",
                            "12,000 clients, each subscribed to 5 of 100 channels; every client receives 25 or "
               "100 messages per second (500 or 2,000 messages/s published on NATS, 300k or 1.2M "
               f"deliveries/s), 500-byte payloads, {self.sustained_seconds():.0f} s per run.")
        if runs is None:
            return
        fixed = [r for r in runs if not r["setup"].get("search")]
        search = [r for r in self.s.get("maxrate", {}).get("runs", []) if r["setup"].get("search")]
        self.w("| per client | system | delivered | p50 | p99 | p999 | server CPU (100% = 1 core) | p99 ratio to odin-ws |")
        self.w("|---|---|---|---|---|---|---|---|")
        labels, groups = [], {}
        for per_client in (25, 100):
            rate = per_client * 100 / 5
            ours = stat(pick(fixed, target="odin", rate=rate), "latency_ms.p99")
            for t in self.present(fixed):
                rs = pick(fixed, target=t, rate=rate)
                p99 = stat(rs, "latency_ms.p99")
                self.w(f"| {per_client}/s | {LABEL[t]} | {delivered(rs)}{failures(rs)} | {fmt(stat(rs, 'latency_ms.p50'))} ms | "
                       f"**{fmt(p99)} ms** | {fmt(stat(rs, 'latency_ms.p999'))} ms | {fmt(stat(rs, 'server.cpu_percent'), '%', 0)} | "
                       f"{'' if t == 'odin' else ratio(p99, ours)} |")
                groups.setdefault(t, []).append(p99)
            labels.append(f"{per_client}/s per client")
            for variant in ("odin", "odin-1t"):
                rs = pick(fixed, target=variant, rate=rate)
                if not rs:
                    continue
                mine = stat(rs, "latency_ms.p99")
                d = lowest_delivery(rs)
                goal = 50 if per_client == 25 else 400
                self.target(f"sustained {per_client}/s per client: 100% delivered, p99 <= {goal} ms ({LABEL[variant]})",
                            f"<= {goal} ms", f"{fmt(mine)} ms, {d:.2f}%", mine is not None and mine <= goal and d >= 100)
                self.peer_check(f"sustained {per_client}/s", fixed, dict(rate=rate))
        self.w()
        if search:
            self.w("Highest rate held (100% delivered and p99 under 1 s), 20-s steps of 25 msg/s per client:")
            self.w()
            self.command("maxrate")
            self.w("| system | per-client rates tried (delivered, p99) | highest held | deliveries/s |")
            self.w("|---|---|---|---|")
            held = {}
            for t in ("odin", "odin-1t", "blaster"):
                rs = [r for r in search if r["setup"]["target"] == t]
                if not rs:
                    continue
                tried, best = [], None
                for r in rs:
                    pc = r["setup"]["rate"] * 5 / 100
                    if ok(r):
                        good = r.get("delivery_percent", 0) >= 100 and r["latency_ms"]["p99"] < 1000
                        tried.append(f"{pc:.0f}/s ({r['delivery_percent']:.2f}%, {fmt(r['latency_ms']['p99'])} ms)")
                        if good:
                            best = pc if best is None else max(best, pc)
                    else:
                        tried.append(f"{pc:.0f}/s (failed)")
                held[t] = best
                self.w(f"| {LABEL[t]} | {'; '.join(tried)} | {fmt(best, '/s', 0)} | {fmt(best * 12000 if best else None, '', 0)} |")
            self.w()
            for t in ("odin", "odin-1t"):
                if held.get(t) and held.get("blaster"):
                    share = held[t] / held["blaster"]
                    self.w(f"{LABEL[t]} holds {share:.0%} of the ceiling's rate.")
                    self.w()
                    self.target(f"highest rate held >= 70% of the ceiling's ({LABEL[t]})", ">= 70%",
                                f"{share:.0%} ({held[t] * 12000:,.0f} deliveries/s)", share >= 0.7)
        fig, ax = plt.subplots(figsize=(7, 4))
        width = 0.8 / max(1, len(groups))
        for i, (t, vals) in enumerate(groups.items()):
            ax.bar([x + i * width for x in range(len(vals))], [v or 0 for v in vals], width,
                   label=LABEL[t], color=COLOR[t])
        ax.set_xticks([x + width * (len(groups) - 1) / 2 for x in range(len(labels))], labels)
        ax.set_yscale("log")
        ax.set_ylabel("p99 latency, ms")
        ax.set_title("Sustained, 12,000 clients x 5 of 100 channels")
        ax.legend(fontsize=8)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        self.plot(fig, "sustained.png", "Sustained p99")

    def capacity(self):
        runs = self.section("capacity", "Capacity",
                            "Connections opened as fast as the client can (no ramp limit), each subscribed to 5 of "
               "100 channels; then 1 message per second per client (20 messages/s over 100 "
               "channels) until every replay ring is full. RSS is the server's (`VmRSS`, summed "
               "over instances), divided by the connections.")
        if runs is None:
            return
        self.w("| system | instances | connections | connections/s | RSS per connection, subscribed idle | RSS per connection at the end (rings full) | delivered | p99 |")
        self.w("|---|---|---|---|---|---|---|---|")
        for t in self.present(runs):
            for inst in sorted({r["setup"].get("instances", 1) for r in pick(runs, target=t)}):
                rs = pick(runs, target=t, instances=inst)
                n = rs[0]["setup"]["connections"]
                idle = stat(rs, "server.rss_kb_connected")
                end = stat(rs, "server.rss_kb_end")
                cps = stat(rs, "connections_per_second")
                self.w(f"| {LABEL[t]} | {inst} | {n:,} | {fmt(cps, '', 0)} | {fmt(idle * 1024 / n if idle else None, ' B', 0)} | "
                       f"**{fmt(end * 1024 / n if end else None, ' B', 0)}** | {delivered(rs)}{failures(rs)} | {fmt(stat(rs, 'latency_ms.p99'))} ms |")
                if t == "odin" and inst == 1 and end:
                    self.target(f"RSS per connection at {n:,}, rings full", "<= 4 KB", f"{end * 1024 / n:,.0f} B", end * 1024 / n <= 4096)
                    self.target("new connections per second", ">= 20,000/s", fmt(cps, "/s", 0), (cps or 0) >= 20000)
                if t == "odin" and inst > 1:
                    d = lowest_delivery(rs)
                    self.target("100,000 connections on the box across instances", "100,000, all delivered",
                                f"{n:,} on {inst} instances, {d:.2f}% delivered", n >= 100000 and d >= 100)
        self.w()

    def scale(self):
        runs = self.section("scale", "Scale: 100,000 clients, JetStream, several gateways",
                            "The gateways (`WS_BROKER=jetstream`, default threads, admission thresholds 100) share "
               "one `nats-server -js` (file store in a temporary directory). 100 channels ch0..ch99; "
               "client *i* subscribes to channel *i* % 100 (1,000 clients per channel) on gateway "
               "*i* % instances; each channel is published at 1 msg/s (100 msg/s in total, "
               "500-byte payloads, core NATS `PUB` into the stream's subjects) for 30 s: 1 msg/s per "
               "client, 100,000 deliveries/s, 30 messages expected by every client. Connections "
               "are opened as fast as the load client can (one worker process per 18,000 "
               "connections, at most 2,000 handshakes in flight each). *Connect* is the first "
               "connect() to the last `subscribed`. Gateway RSS per connection is (RSS once all "
               "are connected − RSS of the same instance before any client) / its clients; *peak* "
               "is the highest RSS sampled every 0.5 s while the clients were connected. Gateway "
               "CPU is utime + stime of all instances from all-connected (+3 s) to the load "
               "client's exit, per delivery: that CPU / the deliveries. *Other work* is the "
               "machine's busy time not spent by this run's processes (other sessions' builds and "
               "tests), 100% = one core.")
        if runs is None:
            return
        good = [r for r in runs if ok(r)]

        def per_conn(r, key):
            inst = r.get("instances") or []
            vals = [(i.get(key) if key != "connected" else (i.get("connected") or {}).get("rss_kb"))
                    for i in inst]
            empty = [(i.get("empty") or {}).get("rss_kb") for i in inst]
            if not inst or None in vals or None in empty:
                return None
            return (sum(vals) - sum(empty)) * 1024 / r["setup"]["connections"]

        def gw_cpu(r):
            inst = r.get("instances") or []
            if not inst or any(i.get("cpu_seconds") is None for i in inst):
                return None, None
            secs = sum(i["cpu_seconds"] for i in inst)
            window = med([i.get("window_seconds") for i in inst])
            return 100.0 * secs / window, secs * 1e6 / max(r.get("received", 0), 1)

        br = lambda r: r["setup"].get("broker", "nats") + (
            f", WS_THREADS={r['setup']['threads']}" if r["setup"].get("threads") else "")
        shapes = sorted({(r["setup"]["instances"], r["setup"]["connections"], br(r)) for r in runs},
                        key=lambda x: (not x[2].startswith("jetstream"), -x[1], x[0], x[2]))
        same = lambda r, shape: (r["setup"]["instances"], r["setup"]["connections"], br(r)) == shape
        self.w("| broker | gateways | clients (per gateway) | runs | connect all | connections/s | delivered (lowest run) | gaps | p50 | p99 | reach-all p99 | gateway RSS, all connected | RSS per connection, connected / peak | gateway CPU (100% = 1 core) | gateway CPU per delivery | other work on the machine |")
        self.w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for inst, n, broker in shapes:
            rs = [r for r in good if same(r, (inst, n, broker))]
            allrs = [r for r in runs if same(r, (inst, n, broker))]
            cpu = [gw_cpu(r) for r in rs]
            rss = med([sum((i.get("connected") or {}).get("rss_kb") or 0 for i in r.get("instances", [])) for r in rs])
            split = f"{n // inst:,}" if n % inst == 0 else f"{n // inst:,}-{n // inst + 1:,}"
            self.w(f"| {broker} | {inst} | {n:,} ({split}) | {len(rs)}{failures(allrs)} | {fmt(stat(rs, 'ready_seconds'), ' s', 1)} | "
                   f"{fmt(stat(rs, 'connections_per_second'), '', 0)} | {delivered(rs)} | {sum(r.get('gaps', 0) for r in rs)} | "
                   f"{fmt(stat(rs, 'latency_ms.p50'))} ms | **{fmt(stat(rs, 'latency_ms.p99'))} ms** | {fmt(stat(rs, 'reach_all_ms.p99'))} ms | "
                   f"{fmt(rss / 1024 if rss else None, ' MiB')} | {fmt(med([per_conn(r, 'connected') for r in rs]), ' B', 0)} / "
                   f"{fmt(med([per_conn(r, 'peak_rss_kb_connected') for r in rs]), ' B', 0)} | "
                   f"{fmt(med([c[0] for c in cpu]), '%', 0)} | {fmt(med([c[1] for c in cpu]), ' µs', 2)} | "
                   f"{fmt(stat(rs, 'host_cpu.other_percent'), '%', 0)} |")
            if n >= 100000 and rs and broker.startswith("jetstream"):
                d = lowest_delivery(rs)
                self.target(f"100,000 connections ({broker}, {inst} gateways): every client every message", "100%",
                            f"{d:.2f}% (lowest of {len(rs)} run{'s' if len(rs) > 1 else ''}), p99 {fmt(stat(rs, 'latency_ms.p99'))} ms",
                            d >= 100 and all(r.get("gaps", 1) == 0 for r in rs))
        self.w()
        self.w("Every run (the medians above are over these):")
        self.w()
        self.w("| broker | gateways | clients | run | connect all | delivered | received / expected | p50 | p99 | max | gateway CPU | gateway CPU per delivery | client CPU | other work on the machine |")
        self.w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for inst, n, broker in shapes:
            rs = [r for r in runs if same(r, (inst, n, broker))]
            for k, r in enumerate(rs, 1):
                if not ok(r):
                    self.w(f"| {broker} | {inst} | {n:,} | {k} | failed: {r['error'][:120]} | | | | | | | | | |")
                    continue
                c = gw_cpu(r)
                self.w(f"| {broker} | {inst} | {n:,} | {k} | {fmt(r.get('ready_seconds'), ' s', 1)} | {r.get('delivery_percent', 0):.3f}% | "
                       f"{r.get('received', 0):,} / {r.get('expected', 0):,} | {fmt(get(r, 'latency_ms.p50'))} ms | "
                       f"{fmt(get(r, 'latency_ms.p99'))} ms | {fmt(get(r, 'latency_ms.max'))} ms | {fmt(c[0], '%', 0)} | "
                       f"{fmt(c[1], ' µs', 2)} | {fmt(r.get('client_cpu_percent'), '%', 0)} | {fmt(get(r, 'host_cpu.other_percent'), '%', 0)} |")
        self.w()
        # Per instance, from the run with the median p99 of each shape.
        for inst, n, broker in shapes:
            rs = sorted([r for r in good if same(r, (inst, n, broker)) and r.get("instances")],
                        key=lambda r: get(r, "latency_ms.p99") or 0)
            if not rs:
                continue
            r = rs[len(rs) // 2]
            self.w(f"Per gateway, {broker}, {n:,} clients on {inst} gateways (the run with the median p99):")
            self.w()
            self.w("| gateway | RSS empty | RSS all connected | RSS peak | RSS per connection, connected / peak | open files connected (empty) | CPU connecting | CPU while publishing |")
            self.w("|---|---|---|---|---|---|---|---|")
            per = n // inst
            for k, i in enumerate(r["instances"]):
                e, c = (i.get("empty") or {}), (i.get("connected") or {})
                pk = i.get("peak_rss_kb_connected")
                pc = lambda v: fmt((v - e["rss_kb"]) * 1024 / per if v and e.get("rss_kb") else None, " B", 0)
                self.w(f"| {k} | {fmt(e.get('rss_kb', 0) / 1024, ' MiB')} | {fmt((c.get('rss_kb') or 0) / 1024, ' MiB')} | "
                       f"{fmt((pk or 0) / 1024, ' MiB')} | {pc(c.get('rss_kb'))} / {pc(pk)} | {c.get('fds', '–'):,} ({e.get('fds', '–')}) | "
                       f"{fmt(i.get('cpu_seconds_connecting'), ' s', 2)} | {fmt(i.get('cpu_percent'), '%', 0)} |")
            self.w()
        if os.path.exists(SCALE_ANALYSIS):
            with open(SCALE_ANALYSIS) as f:
                self.w(f.read().rstrip())
            self.w()

    def slow(self):
        runs = self.section("slow", "Slow consumers",
                            "2,000 clients on one channel, 100 messages/s of 2,000 bytes for 30 s (6 MB for each "
               "client, more than socket buffers and the gateway's 256 KiB per-client queue hold); in "
               "the second run of each pair 1% of the clients stop reading once subscribed. Figures "
               "are for the clients that keep reading; the slow ones' close codes are read from "
               "their sockets at the end.")
        if runs is None:
            return
        self.w("| system | slow clients | delivered to the others | p99 of the others | server RSS peak | slow clients' close codes | server's slow-consumer closes |")
        self.w("|---|---|---|---|---|---|---|")
        for t in self.present(runs):
            for frac in (0.0, 0.01):
                rs = pick(runs, target=t, slow_fraction=frac)
                if not rs:
                    continue
                codes = {}
                for r in rs:
                    for k, v in (get(r, "slow.close_codes") or {}).items():
                        codes[k] = codes.get(k, 0) + v
                peak = stat(rs, "server.rss_kb_peak")
                self.w(f"| {LABEL[t]} | {frac:.0%} | {delivered(rs)}{failures(rs)} | {fmt(stat(rs, 'latency_ms.p99'))} ms | "
                       f"{fmt(peak / 1024 if peak else None, ' MiB')} | {', '.join(f'{k}: {v}' for k, v in sorted(codes.items())) or '–'} | "
                       f"{fmt(stat(rs, 'server_stats.slowClientDisconnects'), '', 0)} |")
        self.w()

    def burst(self):
        runs = self.section("burst", "Burst",
                            "The sustained configuration at 25 messages/s per client (500 messages/s published) "
               "for 30 s, with ten times that (5,000 messages/s, 3M deliveries/s) from 10 s to 15 s.")
        if runs is None:
            return
        self.w("| system | delivered | gaps | p99 over the run | worst second's p99 | worst p99 from 10 s after the burst on |")
        self.w("|---|---|---|---|---|---|")
        fig, ax = plt.subplots(figsize=(7, 4))
        for t in self.present(runs):
            rs = pick(runs, target=t)
            worst = med([max((s.get("p99_ms", 0) for s in r.get("timeline", [])), default=None) for r in rs if ok(r)])
            tail = med([max((s.get("p99_ms", 0) for s in r.get("timeline", []) if s["s"] >= 26), default=None) for r in rs if ok(r)])
            self.w(f"| {LABEL[t]} | {delivered(rs)}{failures(rs)} | {stat(rs, 'gaps')} | {fmt(stat(rs, 'latency_ms.p99'))} ms | "
                   f"{fmt(worst)} ms | {fmt(tail)} ms |")
            good = [r for r in rs if ok(r) and r.get("timeline")]
            if good:
                r = good[0]
                ax.plot([s["s"] for s in r["timeline"]], [max(s.get("p99_ms", 0), 0.1) for s in r["timeline"]],
                        label=LABEL[t], color=COLOR[t])
        # The publisher starts about 1 s after the clients are connected (bench.py's settle).
        ax.axvspan(11, 16, color="orange", alpha=0.15, label="burst (10x)")
        ax.set_yscale("log")
        ax.set_xlabel("seconds since the clients were connected")
        ax.set_ylabel("p99 latency of that second, ms")
        ax.set_title("Burst: 10x the sustained rate for 5 s")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        self.w()
        self.plot(fig, "burst.png", "p99 per second through the burst")

    # ---- latest-value subscriptions under overload ----

    @staticmethod
    def publishing_window(r):
        """Seconds since all connected (the timeline's clock) of the first and the last message
        the load client's NATS observer saw."""
        obs = r.get("observer") or {}
        if not obs.get("messages"):
            return None, None
        p0 = obs.get("first_after_connected_s", 0)
        return p0, p0 + obs.get("seconds", 0)

    @staticmethod
    def rss_at(r, second):
        """The gateway's RSS (KiB) sampled in that second of the timeline, else the nearest one
        before it."""
        best = None
        for e in r.get("timeline", []):
            if e.get("rss_kb") and e["s"] <= second:
                best = e["rss_kb"]
        return best

    def conflate(self):
        runs = self.section(
            "conflate", "Latest-value subscriptions under overload (`latest` against `all`)",
            "The sustained configuration (12,000 clients, each on 5 of 100 channels, 500-byte "
            "payloads published on core NATS) at **twice the deliverable per-client rate** (the "
            "rate this machine can deliver), for 30 s: once with every client subscribed `\"delivery\":\"latest\"` (no "
            "`max_hz`: at most the socket's pace), once with `all` (v1, `?channels=`), one gateway "
            "with default threads. The deliverable rate is the highest per-client rate the "
            "sustained configuration holds with 100% delivered and p99 under 1 s, found first with "
            "the maxrate search (20-s steps of 25 msg/s per client) unless `--rate` gives it. "
            "**Staleness** is what a user's screen shows: every 100 ms, for every client and each "
            "of its channels, how long the value it holds has been out of date, i.e. now minus "
            "the publish time (the payload's `t`) of the first message newer than the one it "
            "holds, and 0 when it holds the newest published (the load client knows what was "
            "published from its own NATS subscription). Sampled from the first publish until "
            "every client is up to date after the last; clients the gateway closed are left out "
            "(their count is *disconnects*), the *with closed* column keeps their frozen values "
            "in. *Checks*: per client and channel the publisher's counter only increases, each "
            "`conflated` is exactly the messages skipped, and at the end received + conflated "
            "= published, ending on the newest. Gateway RSS is sampled every 250 ms: at the "
            "first publish, its peak, and when the load client stopped (clients still connected).")
        if runs is None:
            return
        search = [r for r in runs if r["setup"].get("search")]
        pc = lambda r: r["setup"]["rate"] * r["setup"]["per_conn"] / r["setup"]["channels"]
        main = sorted([r for r in runs if r["setup"].get("delivery")],
                      key=lambda r: (pc(r), r["setup"]["delivery"] != "latest"))
        if search:
            tried = "; ".join(
                f"{r['setup']['rate'] * r['setup']['per_conn'] / r['setup']['channels']:.0f}/s ("
                + (f"{r.get('delivery_percent', 0):.2f}%, {fmt(get(r, 'latency_ms.p99'), ' ms', 0)})" if ok(r) else "failed)")
                for r in search)
            self.w(f"Deliverable rate, searched first: {tried}.")
            self.w()
        given = sorted({r.get("deliverable_per_client") for r in main if r.get("deliverable_from") == "given"})
        if given:
            held = [r["setup"]["rate"] * r["setup"]["per_conn"] / r["setup"]["channels"]
                    for r in self.s.get("maxrate", {}).get("runs", [])
                    if r["setup"].get("target") == "odin" and ok(r) and r.get("delivery_percent", 0) >= 100
                    and get(r, "latency_ms.p99") is not None and r["latency_ms"]["p99"] < 1000]
            searched = [pc(r) for r in search if ok(r) and r.get("delivery_percent", 0) >= 100
                        and get(r, "latency_ms.p99") is not None and r["latency_ms"]["p99"] < 1000]
            if searched:
                ref = f" (the search above held {max(searched):.0f}/s)"
            else:
                ref = (f" (the maxrate search above holds {max(held):.0f}/s for odin-ws, "
                       f"{self.s['maxrate']['date'][:10]})" if held else "")
            self.w("Deliverable rates given on the command line (`--rate`), each run at twice it: "
                   + " and ".join(f"{g}/s per client (run at {2 * g}/s)" for g in given) + f"{ref}.")
            self.w()
        self.w("| delivery | per client (published/s) | clients connected | frames received per client (mean) / published | staleness p50 / p99 / max | staleness p99 with closed | disconnects (close codes) | gateway RSS: first publish / peak / at the stop | RSS growth, 2nd half of publishing | gateway CPU (100% = 1 core) | conflated (gateway's count) | checks | other work on the machine |")
        self.w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        verdicts = []
        for r in main:
            d = r["setup"]["delivery"] + (f", max_hz {r['setup']['max_hz']}" if r["setup"].get("max_hz") else "")
            per_client = pc(r)
            if not ok(r):
                self.w(f"| {d} | {per_client:.0f}/s | failed: {r['error'][:160]} | | | | | | | | | | |")
                continue
            st, stc, cc, srv = (r.get("staleness_ms") or {}), (r.get("staleness_with_closed_ms") or {}), \
                (r.get("channel_check") or {}), (r.get("server") or {})
            mib = lambda kb: fmt(kb / 1024 if kb else None, " MiB")
            p0, p1 = self.publishing_window(r)
            growth = mid = None
            if p0 is not None:
                mid, end = self.rss_at(r, (p0 + p1) / 2), self.rss_at(r, p1)
                if mid and end:
                    growth = (end - mid) / 1024
            codes = ", ".join(f"{k}: {v:,}" for k, v in sorted((r.get("close_codes") or {}).items())) or "none"
            checks = []
            if cc:
                checks.append(f"on newest {cc.get('final_newest', 0):,} of {cc.get('final_slots', 0):,}")
                bad = {k: cc.get(k, 0) for k in ("conflated_mismatch", "order_errors", "final_short", "final_over") if cc.get(k)}
                checks.append(", ".join(f"{k} {v:,}" for k, v in bad.items()) or "counts exact")
            checks.append(f"seq gaps {r.get('gaps', 0)}")
            count = round(r["setup"]["rate"] * r["setup"]["seconds"])
            published = count // r["setup"]["channels"] * r["setup"]["per_conn"]
            received = r.get("received", 0) / max(1, r.get("connections", 1))
            self.w(f"| {d} | {per_client:.0f}/s ({r['setup']['rate']:,.0f}/s) | {r.get('connections', 0):,} of {r['setup']['connections']:,} | "
                   f"{received:,.0f} / {published:,.0f} | {fmt(st.get('p50'), ' ms')} / **{fmt(st.get('p99'), ' ms')}** / {fmt(st.get('max'), ' ms')} | "
                   f"{fmt(stc.get('p99'), ' ms')} | **{r.get('closed', 0):,}** ({codes}) | {mib(srv.get('rss_kb_publish_start'))} / {mib(srv.get('rss_kb_peak'))} / {mib(srv.get('rss_kb_end'))} | "
                   f"{fmt(growth, ' MiB')} | {fmt(srv.get('cpu_percent'), '%', 0)} | {cc.get('conflated', 0):,} ({fmt(get(r, 'server_stats.conflatedMessages'), '', 0)}) | {'; '.join(checks)} | "
                   f"{fmt(get(r, 'host_cpu.other_percent'), '%', 0)} |")
            at = f"at {per_client:.0f}/s per client"
            if r["setup"]["delivery"] == "latest":
                flat = growth is not None and mid and growth * 1024 <= 0.05 * mid
                verdicts += [
                    f"- {at}, p99 staleness at most 1 s with `latest`: **{'met' if st.get('p99', 1e9) <= 1000 else 'not met'}** ({fmt(st.get('p99'), ' ms')}; `all`: see its row)",
                    f"- {at}, zero disconnects with `latest`: **{'met' if r.get('closed', 1) == 0 and r.get('failed', 1) == 0 else 'not met'}** ({r.get('closed', 0):,} closed, {r.get('failed', 0):,} failed to connect)",
                    f"- {at}, gateway memory flat with `latest` (over the second half of publishing RSS grows by at most 5% of its value at the middle): "
                    f"**{'met' if flat else 'not met'}** ({fmt(growth, ' MiB')})",
                ]
            else:
                verdicts.append(f"- {at}, `all`: {r.get('closed', 0):,} of {r.get('connections', 0):,} clients cut ({codes})")
        self.w()
        if verdicts:
            self.w("Against the targets of the issue:")
            self.w()
            for v in verdicts:
                self.w(v)
            self.w()
        top = max((pc(r) for r in main), default=None)
        good = [r for r in main if ok(r) and r.get("timeline") and pc(r) == top]
        if good:
            fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
            for r, color in zip(good, ("#1f77b4", "#d62728")):
                label = r["setup"]["delivery"]
                tl = r["timeline"]
                pts = [(e["s"], max(e["stale_p99_ms"], 0.1)) for e in tl if e.get("stale_p99_ms") is not None]
                if pts:
                    a1.plot([x for x, _ in pts], [y for _, y in pts], label=label, color=color)
                pts = [(e["s"], e["rss_kb"] / 1024) for e in tl if e.get("rss_kb")]
                if pts:
                    a2.plot([x for x, _ in pts], [y for _, y in pts], label=label, color=color)
                p0, p1 = self.publishing_window(r)
                if p0 is not None:
                    for ax in (a1, a2):
                        ax.axvspan(p0, p1, color=color, alpha=0.06)
            a1.axhline(1000, color="gray", linestyle="--", linewidth=0.8)
            a1.set_yscale("log")
            a1.set_xlabel("seconds since the clients were connected")
            a1.set_ylabel("staleness p99 of that second's samples, ms")
            a1.set_title(f"Staleness (open clients), {top:.0f}/s per client")
            a2.set_xlabel("seconds since the clients were connected")
            a2.set_ylabel("gateway RSS, MiB")
            a2.set_title(f"Gateway memory, {top:.0f}/s per client")
            for ax in (a1, a2):
                ax.legend(fontsize=8)
                ax.grid(True, which="both", alpha=0.3)
            self.plot(fig, "conflate.png", "Staleness and gateway RSS per second, latest against all")
        if os.path.exists(CONFLATE_ANALYSIS):
            with open(CONFLATE_ANALYSIS) as f:
                self.w(f.read().rstrip())
            self.w()

    # ---- TLS cost ----

    def tls(self):
        if "tls" not in self.s:
            return
        sc = self.s["tls"]
        runs = sc["runs"]
        reps = max(len(self.tls_pick(runs, "fanout", t)) for t in (None, "ecdsa"))
        self.w("## TLS cost")
        self.w()
        self.w("odin-ws plain against the same binary with `WS_TLS_CERT`/`WS_TLS_KEY` (its one "
               "listener then speaks only TLS), run back to back in one invocation with the same "
               "settings. Certificates are self-signed and made by the scenario with `openssl`: "
               "P-256 ECDSA for every TLS run, RSA-2048 also for the connect rate (RSA signing "
               "is the classic handshake cost). The load client (`loadclient --tls`) makes full "
               "handshakes without certificate verification (it still checks the handshake "
               "signature, as TLS 1.3 requires), unless the row says it resumes. It decrypts "
               "every delivery on the same two cores as the gateway. Not part of `run.sh all`.")
        self.w()
        cmds = " and ".join(f"`{c}`" for c in sc.get("commands", [sc["command"]]))
        self.w(f"Command: {cmds} ({sc['date']}; the fan-out pair {reps} times, medians quoted; the rest one run each)")
        self.w()
        good = [r for r in runs if ok(r)]
        info = {}
        for r in good:
            t = r["setup"].get("tls")
            if t and t not in info and (r.get("tls_info") or {}).get("version"):
                info[t] = r["tls_info"]
        if info:
            parts = [f"{LABEL_TLS[t]}: {i['version']}, {i['cipher']}, {i['group']}, {i['signature']}"
                     for t, i in info.items()]
            self.w("Negotiated: " + "; ".join(parts) + ".")
            self.w()
        others = [get(r, "host_cpu.other_percent") for r in good if not r["setup"].get("profile")]
        other = med(others)
        if other is not None:
            self.w(f"**This machine was not idle.** Other work (builds and tests of other sessions) used a median "
                   f"{other:.0f}% of its two cores (100% = one core; range {min(o for o in others if o is not None):.0f}-"
                   f"{max(o for o in others if o is not None):.0f}%) while these runs measured, although each run first waited up "
                   "to --quiet-wait seconds for a quieter moment (the `other work` columns). Latencies and connect rates are "
                   "therefore low-bound figures for this hardware; the CPU costs per delivery and per connection "
                   "(CPU time, not wall time) are the steadier comparison. Plain and TLS alternate, so both saw the same "
                   "kind of load.")
            self.w()
        self.tls_fanout(runs)
        self.tls_connect(runs)
        self.tls_sustained(runs)
        self.tls_ratios(runs)
        self.tls_profiles(runs)
        if os.path.exists(TLS_ANALYSIS):
            with open(TLS_ANALYSIS) as f:
                self.w(f.read().rstrip())
            self.w()

    @staticmethod
    def tls_pick(runs, part, tls, resume=False):
        return [r for r in runs if r["setup"].get("part") == part and r["setup"].get("tls") == tls
                and bool(r["setup"].get("tls_resume")) == resume]

    @staticmethod
    def per_delivery_us(r, key):
        cpu = get(r, key)
        n = r.get("received")
        if cpu is None or not n or not r.get("window_seconds"):
            return None
        return cpu / 100 * r["window_seconds"] / n * 1e6

    def tls_fanout(self, runs):
        rows = {t: self.tls_pick(runs, "fanout", t) for t in (None, "ecdsa")}
        if not any(rows.values()):
            return
        n = next(r["setup"]["connections"] for rs in rows.values() for r in rs)
        reps = max(len(rs) for rs in rows.values())
        self.w(f"### Fan-out: {n:,} clients on one channel, 10 msg/s for 10 s "
               f"({'median of ' + str(reps) + ' runs each' if reps > 1 else 'one run each'}, plain and TLS alternating)")
        self.w()
        self.w("| | delivered | p50 | p99 | max | gateway CPU (100% = 1 core) | gateway CPU per delivery | client CPU | client CPU per delivery | other work on the machine |")
        self.w("|---|---|---|---|---|---|---|---|---|---|")
        vals = {}
        for t, rs in rows.items():
            good = [r for r in rs if ok(r)]
            v = vals[t] = {
                "p50": stat(good, "latency_ms.p50"), "p99": stat(good, "latency_ms.p99"),
                "max": stat(good, "latency_ms.max"), "cpu": stat(good, "server.cpu_percent"),
                "cpu_d": med([self.per_delivery_us(r, "server.cpu_percent") for r in good]),
                "ccpu": stat(good, "client_cpu_percent"),
                "ccpu_d": med([self.per_delivery_us(r, "client_cpu_percent") for r in good]),
                "other": stat(good, "host_cpu.other_percent")}
            self.w(f"| {LABEL_TLS[t]} | {delivered(rs)}{failures(rs)} | {fmt(v['p50'])} ms | **{fmt(v['p99'])} ms** | {fmt(v['max'])} ms | "
                   f"{fmt(v['cpu'], '%', 0)} | {fmt(v['cpu_d'], ' µs', 2)} | {fmt(v['ccpu'], '%', 0)} | {fmt(v['ccpu_d'], ' µs', 2)} | {fmt(v['other'], '%', 0)} |")
        p, t = vals[None], vals["ecdsa"]
        self.w(f"| TLS / plain | | {tls_ratio(t['p50'], p['p50'])} | **{tls_ratio(t['p99'], p['p99'])}** | {tls_ratio(t['max'], p['max'])} | "
               f"{tls_ratio(t['cpu'], p['cpu'])} | **{tls_ratio(t['cpu_d'], p['cpu_d'])}** | {tls_ratio(t['ccpu'], p['ccpu'])} | {tls_ratio(t['ccpu_d'], p['ccpu_d'])} | |")
        spread = {k: [self.per_delivery_us(r, "server.cpu_percent") for r in rows[k] if ok(r)] for k in rows}
        if all(len(v) > 1 for v in spread.values()):
            self.w()
            self.w("Gateway CPU per delivery, every run: " + "; ".join(
                f"{LABEL_TLS[k]} " + ", ".join(f"{x:.2f}" for x in v if x is not None) + " µs" for k, v in spread.items()) + ".")
        self.w()
        self.w("CPU per delivery: the process's CPU over the measured window (all connected to the last delivery) "
               "divided by the deliveries.")
        self.w()
        self.tls_vals["fanout"] = vals

    def tls_connect(self, runs):
        variants = [(None, False), ("ecdsa", False), ("rsa", False), ("ecdsa", True)]
        rows = [(t, res, self.tls_pick(runs, "connect", t, res)) for t, res in variants]
        rows = [x for x in rows if x[2]]
        if not rows:
            return
        n = rows[0][2][0]["setup"]["connections"]
        self.w(f"### Connecting {n:,} clients as fast as they can (at most 2,000 handshakes in flight), one run each")
        self.w()
        self.w("| | connections/s | handshake time p50 / p99 (connect() to TLS done) | gateway CPU per connection | client CPU per connection | "
               "gateway RSS per connection (connected − empty gateway) | gateway heap in use per connection | heap held from the system per connection | other work on the machine |")
        self.w("|---|---|---|---|---|---|---|---|---|")
        vals = {}
        for t, res, rs in rows:
            good = [r for r in rs if ok(r)]
            r = good[0] if good else None
            label = LABEL_TLS[t] + (", resumed sessions" if res else "")
            if not r:
                self.w(f"| {label} | failed | | | | | | | |")
                continue
            conns = r["connections"] or 1
            v = vals[(t, res)] = {
                "cps": r.get("connections_per_second"),
                "hs50": get(r, "tls_info.handshake_ms.p50"), "hs99": get(r, "tls_info.handshake_ms.p99"),
                "scpu": (get(r, "server.cpu_seconds_connecting") or 0) / conns * 1e6,
                "ccpu": (r.get("client_cpu_seconds_connecting") or 0) / conns * 1e6,
                "rss": (r["server"]["rss_kb_connected"] - r["server"]["rss_kb_start"]) * 1024 / conns,
                "heap": get(r, "server_heap.in_use_kb"), "sys": get(r, "server_heap.system_kb"),
                "resumed": get(r, "tls_info.resumed"), "other": get(r, "host_cpu.other_percent"),
                "failed": r.get("failed")}
            heap = f"{v['heap'] * 1024 / conns:,.0f} B" if v["heap"] else "–"
            held = f"{v['sys'] * 1024 / conns:,.0f} B" if v["sys"] else "–"
            hs = f"{fmt(v['hs50'], ' ms', 0)} / {fmt(v['hs99'], ' ms', 0)}" if t else "–"
            note = f" ({v['resumed']:,} resumed)" if res and v["resumed"] is not None else ""
            note += f" ({v['failed']:,} failed)" if v["failed"] else ""
            self.w(f"| {label}{note} | **{fmt(v['cps'], '', 0)}** | {hs} | {fmt(v['scpu'], ' µs', 0)} | {fmt(v['ccpu'], ' µs', 0)} | "
                   f"**{fmt(v['rss'], ' B', 0)}** | {heap} | {held} | {fmt(v['other'], '%', 0)} |")
        self.w()
        self.w("Heap figures are glibc's `malloc_stats()` of the gateway, read through gdb right after the last client "
               "subscribed (the empty gateway's heap included; the resumed run has none). RSS counts what the allocator "
               "keeps, the heap in use what is live.")
        self.w()
        self.tls_vals["connect"] = vals

    def tls_sustained(self, runs):
        rows = {t: self.tls_pick(runs, "sustained", t) for t in (None, "ecdsa")}
        if not any(rows.values()):
            return
        r0 = next(r for rs in rows.values() for r in rs)
        st = r0["setup"]
        self.w(f"### Sustained: {st['connections']:,} clients x {st['per_conn']} of {st['channels']} channels, "
               f"{st['rate'] * st['per_conn'] / st['channels']:.0f} msg/s per client for {st['seconds']:.0f} s (one run each)")
        self.w()
        self.w("| | delivered | p50 | p99 | gateway CPU (100% = 1 core) | gateway CPU per delivery | client CPU | other work on the machine |")
        self.w("|---|---|---|---|---|---|---|---|")
        vals = {}
        for t, rs in rows.items():
            good = [r for r in rs if ok(r)]
            v = vals[t] = {"p50": stat(good, "latency_ms.p50"), "p99": stat(good, "latency_ms.p99"),
                           "cpu": stat(good, "server.cpu_percent"),
                           "cpu_d": med([self.per_delivery_us(r, "server.cpu_percent") for r in good]),
                           "ccpu": stat(good, "client_cpu_percent"), "other": stat(good, "host_cpu.other_percent")}
            self.w(f"| {LABEL_TLS[t]} | {delivered(rs)}{failures(rs)} | {fmt(v['p50'])} ms | **{fmt(v['p99'])} ms** | "
                   f"{fmt(v['cpu'], '%', 0)} | {fmt(v['cpu_d'], ' µs', 2)} | {fmt(v['ccpu'], '%', 0)} | {fmt(v['other'], '%', 0)} |")
        p, t = vals[None], vals["ecdsa"]
        self.w(f"| TLS / plain | | {tls_ratio(t['p50'], p['p50'])} | **{tls_ratio(t['p99'], p['p99'])}** | {tls_ratio(t['cpu'], p['cpu'])} | "
               f"**{tls_ratio(t['cpu_d'], p['cpu_d'])}** | {tls_ratio(t['ccpu'], p['ccpu'])} | |")
        self.w()
        self.tls_vals["sustained"] = vals

    def tls_ratios(self, runs):
        v = self.tls_vals
        f, c, s = v.get("fanout", {}), v.get("connect", {}), v.get("sustained", {})
        rows = []

        def row(what, plain, tls, unit, digits=1):
            if plain is None or tls is None:
                return
            r = tls_ratio(tls, plain)
            rows.append(f"| {what} | {fmt(plain, unit, digits)} | {fmt(tls, unit, digits)} | **{r}** |")
        if f:
            row("fan-out p99 latency", f[None]["p99"], f["ecdsa"]["p99"], " ms")
            row("fan-out p50 latency", f[None]["p50"], f["ecdsa"]["p50"], " ms")
            row("fan-out gateway CPU per delivery", f[None]["cpu_d"], f["ecdsa"]["cpu_d"], " µs", 2)
        if s:
            row("sustained p99 latency", s[None]["p99"], s["ecdsa"]["p99"], " ms")
            row("sustained gateway CPU per delivery", s[None]["cpu_d"], s["ecdsa"]["cpu_d"], " µs", 2)
        plain = c.get((None, False))
        for key, name in ((("ecdsa", False), "ECDSA P-256"), (("rsa", False), "RSA-2048"), (("ecdsa", True), "ECDSA, resumed")):
            if plain and key in c:
                row(f"connect rate, {name} (connections/s)", plain["cps"], c[key]["cps"], "", 0)
                row(f"gateway CPU per connection, {name}", plain["scpu"], c[key]["scpu"], " µs", 0)
                row(f"client CPU per connection, {name}", plain["ccpu"], c[key]["ccpu"], " µs", 0)
        key = ("ecdsa", False)
        if plain and key in c:
            row("gateway RSS per connection (ECDSA)", plain["rss"], c[key]["rss"], " B", 0)
            n = runs and next((r["connections"] for r in runs if ok(r) and r["setup"].get("part") == "connect"), 0)
            if plain["heap"] and c[key]["heap"] and n:
                row("gateway heap in use per connection (ECDSA)", plain["heap"] * 1024 / n, c[key]["heap"] * 1024 / n, " B", 0)
        if rows:
            self.w("### TLS / plain")
            self.w()
            self.w("| measure | plain | TLS | TLS / plain |")
            self.w("|---|---|---|---|")
            for line in rows:
                self.w(line)
            self.w()

    def tls_profiles(self, runs):
        profiles = [(r["setup"]["part"], r["setup"].get("tls"), r["profile"]) for r in runs
                    if ok(r) and r.get("profile")]
        if not profiles:
            return
        self.w("### Where the gateway's CPU goes (perf)")
        self.w()
        self.w("`perf record -F 499 --call-graph dwarf -p <gateway>` in separate profile runs (perf perturbs what it "
               "watches, so these runs are not in the tables above): for 10 s of a fan-out, and for the connecting "
               f"phase of {next((r['connections'] for r in runs if r['setup'].get('part') == 'profile-connect'), 0):,} clients. "
               "Debian's libcrypto and libssl are stripped of their internal symbols, so the assembly "
               "(AES-NI/GHASH, P-256, X25519, bignum) shows as addresses; the exported OpenSSL entry points above it "
               "are named, and their inclusive share is the cost of what they do.")
        self.w()
        cols = []  # (column title, one profile's summary)
        for part, t, prof in profiles:
            phase = "publish" if part == "profile-fanout" else "connect"
            if phase in prof and "error" not in prof[phase]:
                cols.append((f"{'fan-out' if phase == 'publish' else 'connect'}, {LABEL_TLS[t]}", prof[phase]))
        if not cols:
            return
        self.w("Share of the gateway's samples by library (self time):")
        self.w()
        self.w("| library | " + " | ".join(c for c, _ in cols) + " |")
        self.w("|---|" + "---|" * len(cols))
        dsos = []
        for _, p in cols:
            for row in p.get("dso", []):
                if row["dso"] not in dsos:
                    dsos.append(row["dso"])
        for d in dsos:
            cells = [fmt(next((x["percent"] for x in p.get("dso", []) if x["dso"] == d), None), "%") for _, p in cols]
            self.w(f"| {d} | " + " | ".join(cells) + " |")
        self.w()
        self.w("Inclusive share of named functions (time in them and in what they call):")
        self.w()
        self.w("| function | what it is | " + " | ".join(c for c, _ in cols) + " |")
        self.w("|---|---|" + "---|" * len(cols))
        for sym, what in PROFILE_SYMBOLS:
            cells = []
            for _, p in cols:
                v = max((x["percent"] for x in p.get("children", []) if x["sym"] == sym), default=None)
                cells.append(fmt(v, "%"))
            if any(c != "–" for c in cells):
                self.w(f"| `{sym}` | {what} | " + " | ".join(cells) + " |")
        self.w()
        self.w("Top named symbols by self time (the stripped libraries' internals are only in the library table; "
               "this VM has no hardware PMU, so perf samples on a timer and the kernel's samples gather where "
               "interrupts are re-enabled: `finish_task_switch`, `_raw_spin_unlock_irqrestore`):")
        self.w()
        for c, p in cols:
            top = ", ".join(f"`{x['sym']}` {x['percent']:.1f}%" for x in p.get("self", [])
                            if not x["sym"].startswith("0x"))
            self.w(f"- {c}: " + ", ".join(top.split(", ")[:10]))
        self.w()

    def compression(self):
        runs = self.section(
            "compression", "Compression (permessage-deflate, RFC 7692)",
            "odin-ws with permessage-deflate negotiated (load client `--deflate`: it offers "
            "`permessage-deflate; client_max_window_bits`, the gateway answers "
            "`client_no_context_takeover`, and every RSV1 frame is inflated alone: inflateReset, "
            "payload + `00 00 ff ff`) against a gateway with `WS_COMPRESSION=false` and clients that "
            "do not offer it; on and off alternate, so both see the same machine. **market**: the "
            "sustained configuration, 12,000 clients each on 5 of 100 channels at 25 msg/s per "
            "client (500 msg/s published on core NATS, 300,000 deliveries/s), 30 s, with "
            "`publisher --payload market`: a ~500-byte order-book/trade object per message (symbol, "
            "last trade, 5 bid and 5 ask levels with 2-decimal prices on a seeded random walk from "
            "43251.17 and 4-decimal sizes, 24 h volume/high/low, timestamps), `t` and `n` first as "
            "the load client reads them. **tick**: the same for 10 s with `--payload tick` (~180 "
            "bytes, the demo feed's tick shape). **idle**: 10,000 clients (2 load-client processes) "
            "connected on one channel, no traffic: (gateway RSS with all connected − RSS of the "
            "empty gateway) / 10,000. *Gateway CPU per delivery*: the gateway's process CPU over the "
            "measured window / deliveries received. *Wire bytes per delivery*: WebSocket payload "
            "bytes the clients read per data frame (load client), and the gateway's "
            "`ws_bytes_out_total / ws_messages_out_total` (frame headers included). *Compression "
            "ratio*: `ws_compression_output_bytes_total / ws_compression_input_bytes_total` (the "
            "shared tail; each recipient adds its stored `{\"seq\":N,` block). *CPU time per message*: "
            "`ws_compression_seconds_total` (the compressing thread's CPU time) / (compressed + not worth) messages, each compressed "
            "once for all its recipients.")
        if runs is None:
            return
        good = [r for r in runs if ok(r)]

        def sel(part, on):
            return [r for r in good if r["setup"].get("part") == part
                    and bool(r["setup"].get("compression")) == on]

        def val(rs, f):
            return med([x for x in (f(r) for r in rs) if x is not None])

        def cpu_us(r):
            c = get(r, "instances")
            cpu = c[0].get("cpu_seconds") if c else None
            n = r.get("received")
            return cpu / n * 1e6 if cpu is not None and n else None

        def mdiv(r, a, b):
            m = r.get("server_metrics", {})
            return m[a] / m[b] if m.get(a) is not None and m.get(b) else None

        def rss_per_conn(r):
            c = get(r, "instances")
            if not c:
                return None
            e, k = get(c[0], "empty.rss_kb"), get(c[0], "connected.rss_kb")
            n = r.get("connections")
            return (k - e) * 1024 / n if None not in (e, k) and n else None

        def comp_us(r):
            m = r.get("server_metrics", {})
            n = (m.get("ws_compressed_messages_total") or 0) + (m.get("ws_compression_not_worth_total") or 0)
            return m.get("ws_compression_seconds_total", 0) / n * 1e6 if n else None

        def q(v, d=1, u=""):
            return fmt(v, u, d)

        def rt(a, b):
            return f"{a / b:.2f}x" if a is not None and b else "–"

        metrics = [
            ("delivered", lambda r: r.get("delivery_percent"), 2, "%"),
            ("latency p50", lambda r: get(r, "latency_ms.p50"), 1, " ms"),
            ("latency p99", lambda r: get(r, "latency_ms.p99"), 1, " ms"),
            ("gateway CPU per delivery", cpu_us, 3, " µs"),
            ("gateway CPU (100% = 1 core)", lambda r: (get(r, "instances") or [{}])[0].get("cpu_percent"), 0, "%"),
            ("load client CPU (100% = 1 core; it inflates every compressed frame)",
             lambda r: r.get("client_cpu_percent"), 0, "%"),
            ("wire bytes per delivery (client: payload per data frame)", lambda r: get(r, "wire.bytes_per_frame"), 1, " B"),
            ("wire bytes per delivery (gateway: ws_bytes_out_total / ws_messages_out_total)",
             lambda r: mdiv(r, "ws_bytes_out_total", "ws_messages_out_total"), 1, " B"),
            ("inflated bytes per compressed frame (client)",
             lambda r: get(r, "wire.inflated_bytes") / get(r, "wire.compressed_frames")
             if get(r, "wire.compressed_frames") else None, 1, " B"),
            ("compressed frames received", lambda r: get(r, "wire.compressed_frames"), 0, ""),
            ("compression ratio (gateway: output / input bytes)",
             lambda r: mdiv(r, "ws_compression_output_bytes_total", "ws_compression_input_bytes_total"), 3, ""),
            ("compression CPU time per message", comp_us, 2, " µs"),
            ("messages compressed / sent uncompressed (not worth)",
             lambda r: None, 0, ""),
        ]
        self.w("| payload | figure | compression on | off | on / off |")
        self.w("|---|---|---|---|---|")
        found = {}
        for part in ("market", "tick"):
            on, off = sel(part, True), sel(part, False)
            if not on and not off:
                continue
            for name, f, d, u in metrics:
                if name.startswith("messages compressed"):
                    a = val(on, lambda r: get(r, "server_metrics.ws_compressed_messages_total"))
                    b = val(on, lambda r: get(r, "server_metrics.ws_compression_not_worth_total"))
                    self.w(f"| {part} | {name} | {q(a, 0)} / {q(b, 0)} | – | |")
                    continue
                a, b = val(on, f), val(off, f)
                found[(part, name)] = (a, b)
                ratio_cell = rt(a, b) if not name.startswith(("compression", "compressed", "inflated", "delivered")) else ""
                self.w(f"| {part} | {name} | {q(a, d, u)} | {q(b, d, u)} | {ratio_cell} |")
        idle_on, idle_off = sel("idle", True), sel("idle", False)
        ri_on, ri_off = val(idle_on, rss_per_conn), val(idle_off, rss_per_conn)
        if idle_on or idle_off:
            n = (idle_on or idle_off)[0].get("connections")
            self.w(f"| idle | gateway RSS per connection ({n:,} connected − empty) | {q(ri_on, 0, ' B')} | "
                   f"{q(ri_off, 0, ' B')} | {('+' if ri_on >= ri_off else '') + fmt(ri_on - ri_off, ' B', 0) if None not in (ri_on, ri_off) else '–'} |")
        self.w()
        self.w("Latency with compression on includes the load client's own inflating: one load-client "
               "process reads all 12,000 connections and inflates every frame (300,000 a second in "
               "the market runs) on the same two cores as the gateway and NATS, so its backlog, not "
               "the gateway's, sets those latencies (compare the load client's CPU). The compression "
               "ratio is what raw DEFLATE gets from one ~500-byte message alone (no context between "
               "messages); zlib's level makes little difference on it.")
        self.w()
        for extra in (COMPRESSION_BOUND, COMPRESSION_ANALYSIS):
            if os.path.exists(extra):
                with open(extra) as f:
                    self.w(f.read().rstrip())
                self.w()
        counts = {p: (len(sel(p, True)), len(sel(p, False))) for p in ("market", "tick", "idle")}
        self.w("Runs (on, off): " + ", ".join(f"{p} {a}+{b}" for p, (a, b) in counts.items())
               + " (medians when more than one)" + failures(runs) + ".")
        self.w()
        a, b = found.get(("market", "wire bytes per delivery (client: payload per data frame)"), (None, None))
        if a is not None and b:
            self.target("compression: wire bytes per delivery, 500-byte market message", "<= 45% of uncompressed",
                        f"{100 * a / b:.0f}% ({a:.0f} B against {b:.0f} B)", a / b <= 0.45)
        a, b = found.get(("market", "gateway CPU per delivery"), (None, None))
        if a is not None and b:
            self.target("compression: gateway CPU per delivery, market", "<= 1.2x without",
                        f"{a / b:.2f}x ({a:.3f} against {b:.3f} µs)", a / b <= 1.2)
        if None not in (ri_on, ri_off):
            self.target("compression: idle RSS per connection", "<= +256 B",
                        f"{ri_on - ri_off:+.0f} B ({ri_on:.0f} against {ri_off:.0f} B)", ri_on - ri_off <= 256)

    def plot(self, fig, name, alt):
        fig.tight_layout()
        fig.savefig(os.path.join(BENCH, name), dpi=110)
        plt.close(fig)
        self.w(f"![{alt}](bench/{name})")
        self.w()

    def render(self):
        m = self.data.get("machine", {})
        body_start = len(self.out)
        for part in (self.fanout, self.sustained, self.capacity, self.scale, self.slow, self.burst,
                     self.conflate, self.compression, self.tls):
            part()
        body = self.out[body_start:]
        self.out = self.out[:body_start]
        self.w("# Benchmarks")
        self.w()
        self.w("Generated by `tools/bench/report.py` from `docs/bench/results.json`; do not edit by "
               "hand (the analysis below comes from `docs/bench/analysis.md`). Regenerate everything "
               "on a machine with:")
        self.w()
        self.w("```sh")
        self.w("tools/bench/run.sh all        # about an hour; or one scenario: fanout, sustained, maxrate, capacity, slow, burst")
        self.w("tools/bench/run.sh tls        # not in all: TLS against plain")
        self.w("tools/bench/run.sh scale      # not in all: 100,000 clients, JetStream, 6 gateways, 3 runs (about 8 minutes)")
        if "conflate" in self.s:
            self.w("tools/bench/run.sh conflate   # not in all: latest against all at twice the deliverable rate (about 5 minutes)")
        if "compression" in self.s:
            self.w("tools/bench/run.sh compression  # not in all: permessage-deflate on against off (about 6 minutes with --repeat 3)")
        self.w("```")
        self.w()
        self.w(f"Machine: {m.get('os', '?')}, {m.get('cpus', '?')} vCPU ({m.get('cpu', '?')}), "
               f"{m.get('memory_gib', '?')} GiB, kernel {m.get('kernel', '?')}, {m.get('nofile_hard', '?')} open files per process; "
               f"{m.get('nats_server', '?')}; Node {m.get('node', '?')}; {m.get('compiler', '?')}. "
               "Everything (NATS, the system under test, the publisher, the load client) shares the "
               "same two cores, so every latency includes the client's own cost of reading the sockets.")
        self.w()
        self.w("Systems: **odin-ws** (core NATS intake, default threads, admission thresholds set to "
               "100 so nothing is refused or paused); **ceiling**: `tools/bench/blaster.cpp`, one "
               "thread that only writes pre-built frames with `writev`, coalescing everything "
               "pending per socket; **Node ws+nats**: `tools/bench/peers/node`, a competent "
               "single-process Node.js gateway speaking the same envelope; **nats-server WebSocket**: "
               "nats-server's own WebSocket listener, clients speak NATS over WebSocket. Same load "
               "client (`tools/bench/loadclient.cpp`, C++, epoll, several processes past 18,000 "
               "connections, source addresses 127.0.0.2-254) and same publisher "
               "(`tools/bench/publisher.cpp`, on NATS; each payload carries its send time in ns) "
               "for all.")
        self.w()
        for variant in ("odin", "odin-1t"):
            rows = [r for r in self.peer_rows if r[0] == variant]
            if rows:
                behind = [what for _, what, ahead in rows if not ahead]
                self.target(f"ahead of every peer, fan-out and sustained rows ({LABEL[variant]}; capacity, slow, burst: see their tables)", "lower p99, no less delivered",
                            f"ahead in {len(rows) - len(behind)} of {len(rows)} comparisons" + (f"; behind: {', '.join(behind)}" if behind else ""),
                            not behind)
        if self.targets_summary:
            self.w("## Targets (DESIGN.md)")
            self.w()
            self.w("| target | goal | measured (median) | |")
            self.w("|---|---|---|---|")
            for what, goal, value, verdict in self.targets_summary:
                self.w(f"| {what} | {goal} | {value} | {verdict} |")
            self.w()
        self.out += body
        if os.path.exists(ANALYSIS):
            with open(ANALYSIS) as f:
                self.w(f.read().rstrip())
            self.w()
        return "\n".join(self.out) + "\n"


def main():
    with open(RESULTS) as f:
        data = json.load(f)
    text = Report(data).render()
    with open(os.path.join(DOCS, "benchmarks.md"), "w") as f:
        f.write(text)
    print(f"wrote docs/benchmarks.md ({len(text)} bytes) and plots in docs/bench/")


if __name__ == "__main__":
    main()
