"""The scale-out topology for the integration tests, from the repository's own deploy/ files: a
three-node NATS cluster with JetStream (deploy/nats/node-N.conf with free ports and a temporary
store), three gateways on it (WS_BROKER=jetstream, JS_STREAM_REPLICAS=3), and HAProxy running
deploy/haproxy.cfg itself (its addresses given through the environment variables the file reads).
Every process runs on loopback and is stopped by its PID."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from harness import Gateway, free_port
from nats_support import NatsClient, NatsError, NatsServer

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEPLOY = os.path.join(REPO, "deploy")
HAPROXY = os.environ.get("HAPROXY", "/usr/sbin/haproxy")
# The ports deploy/nats/node-N.conf use (client, route, monitoring for nodes 1..3).
NATS_FILE_PORTS = {"client": (4222, 4223, 4224), "route": (6222, 6223, 6224), "http": (8222, 8223, 8224)}


def http_json(port, path, timeout=2):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return json.loads(r.read())


def node_config(n, ports, store_dir):
    """deploy/nats/node-<n>.conf with every port replaced by this test's and the store moved."""
    with open(os.path.join(DEPLOY, "nats", f"node-{n}.conf")) as f:
        text = f.read()
    mapping = {}
    for kind, file_ports in NATS_FILE_PORTS.items():
        for i, p in enumerate(file_ports):
            mapping[p] = ports[i][kind]

    def port(m):
        old = int(m.group(1))
        assert old in mapping, f"node-{n}.conf uses port {old}, not one of {sorted(mapping)}"
        return f"127.0.0.1:{mapping[old]}"

    text, count = re.subn(r"127\.0\.0\.1:(\d+)", port, text)
    assert count == 5, f"node-{n}.conf: expected client, http, cluster and 2 route addresses, found {count}"
    text, count = re.subn(r"(?m)^(\s*store_dir:).*$", lambda m: f'{m.group(1)} "{store_dir}"', text)
    assert count == 1, f"node-{n}.conf: no store_dir"
    return text


class ClusterNode(NatsServer):
    """One nats-server of the cluster, run from its generated configuration file."""

    def __init__(self, n, ports, workdir):
        self.n, self.http_port = n, ports[n - 1]["http"]
        self.node_store = os.path.join(workdir, f"store-{n}")
        self.conf = os.path.join(workdir, f"node-{n}.conf")
        with open(self.conf, "w") as f:
            f.write(node_config(n, ports, self.node_store))
        with open(self.conf) as f:
            self.server_name = re.search(r"(?m)^server_name:\s*(\S+)", f.read()).group(1)
        # -a/-p repeat the file's client address (NatsServer's readiness check uses self.port).
        super().__init__(jetstream=False, port=ports[n - 1]["client"], args=["-c", self.conf])

    def jsz(self):
        return http_json(self.http_port, "/jsz")

    def cleanup(self):
        super().cleanup()
        shutil.rmtree(self.node_store, ignore_errors=True)


class NatsCluster:
    def __init__(self, timeout=20):
        self.workdir = tempfile.mkdtemp(prefix="odin-nats-cluster-")
        ports = [{"client": free_port(), "route": free_port(), "http": free_port()} for _ in range(3)]
        self.nodes = []
        try:
            for n in (1, 2, 3):
                self.nodes.append(ClusterNode(n, ports, self.workdir))
            self.wait_formed(timeout)
        except BaseException:
            self.cleanup()
            raise

    @property
    def urls(self):
        return ",".join(node.url for node in self.nodes)

    def wait_formed(self, timeout=20):
        """Until every running node sees the same JetStream meta leader and all 3 peers."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                metas = [node.jsz().get("meta_cluster", {}) for node in self.nodes
                         if node.proc.poll() is None]
                leaders = {m.get("leader") for m in metas}
                routes = [http_json(node.http_port, "/routez")["num_routes"] for node in self.nodes
                          if node.proc.poll() is None]
                if (len(leaders) == 1 and None not in leaders and all(m.get("cluster_size") == 3 for m in metas)
                        and all(r == len(routes) - 1 for r in routes)):
                    return leaders.pop()
                last = (metas, routes)
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError(f"NATS cluster not formed within {timeout}s: {last}\n" +
                           "\n".join(n.output()[-2000:] for n in self.nodes))

    def stream_info(self, stream="ODIN_TOKENS", timeout=10):
        """$JS.API.STREAM.INFO from any running node. Retried: a reply from another node can be
        lost while the cluster settles (seen right after the gateways created the stream)."""
        deadline = time.time() + timeout
        while True:
            for node in self.nodes:
                if node.proc.poll() is not None:
                    continue
                try:
                    with NatsClient(node.url, reconnect=False) as c:
                        return c.js_api(f"STREAM.INFO.{stream}", timeout=1, check=True)
                except (OSError, NatsError):
                    if time.time() > deadline:
                        raise

    def consumers(self, stream="ODIN_TOKENS"):
        for node in self.nodes:
            if node.proc.poll() is None:
                try:
                    with NatsClient(node.url, reconnect=False) as c:
                        return c.js_api(f"CONSUMER.NAMES.{stream}", timeout=1, check=True)["consumers"]
                except (OSError, NatsError):
                    pass
        return []

    def gateway_clients(self, node):
        """How many gateways (NATS client name "odin-ws gw<N>") are connected to this node."""
        conns = http_json(node.http_port, "/connz").get("connections") or []
        return sum(1 for c in conns if re.fullmatch(r"odin-ws gw\d+", c.get("name", "")))

    def node_named(self, server_name):
        return next(node for node in self.nodes if node.server_name == server_name)

    def cleanup(self):
        for node in self.nodes:
            node.cleanup()
        shutil.rmtree(self.workdir, ignore_errors=True)


class Haproxy:
    """deploy/haproxy.cfg in front of the given gateways, in the foreground (-db)."""

    def __init__(self, gateways, maxconn=2000, timeout=10):
        assert len(gateways) == 3, "deploy/haproxy.cfg lists three gateways"
        self.port, self.stats_port = free_port(), free_port()
        self.env = dict(os.environ)
        self.env.update({"ODIN_LB_ADDR": f"127.0.0.1:{self.port}",
                         "ODIN_LB_STATS": f"127.0.0.1:{self.stats_port}",
                         "ODIN_LB_MAXCONN": str(maxconn), "ODIN_GW_MAXCONN": str(maxconn)})
        for i, gw in enumerate(gateways):
            self.env[f"ODIN_GW{i + 1}"] = f"127.0.0.1:{gw.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="odin-haproxy-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", os.path.join(DEPLOY, "haproxy.cfg")],
                                     env=self.env, stdout=self.log, stderr=self.log)
        try:
            self.wait_states({"gw1": "UP", "gw2": "UP", "gw3": "UP"}, timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}/ws"

    def server_states(self):
        """{"gw1": "UP", ...} from the status page's CSV."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/;csv", timeout=2) as r:
            lines = r.read().decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        states = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == "odin_gateways" and row.get("svname") not in ("FRONTEND", "BACKEND"):
                states[row["svname"]] = row["status"].split(" ")[0]
        return states

    def wait_states(self, wanted, timeout=10):
        deadline = time.time() + timeout
        states = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("haproxy exited:\n" + self.output())
            try:
                states = self.server_states()
                if all(states.get(k) == v for k, v in wanted.items()):
                    return states
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"haproxy servers {states}, wanted {wanted}\n" + self.output()[-3000:])

    def output(self):
        with open(self.log.name, "r", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # hard stop: cuts the tunnels
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def cleanup(self):
        self.stop()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


class Cluster:
    """NATS cluster + 3 gateways + HAProxy; a context manager that stops all of it."""

    def __init__(self, binary, per_gateway=({}, {}, {}), **gateway_env):
        self.nats, self.gateways, self.lb = None, [], None
        try:
            self.nats = NatsCluster()
            for i in range(3):
                env = {"WS_BROKER": "jetstream", "NATS_URL": self.nats.urls, "JS_STREAM_REPLICAS": 3,
                       "WS_INSTANCE_ID": f"gw{i + 1}"}
                env.update(gateway_env)
                env.update(per_gateway[i])
                self.gateways.append(Gateway(binary, wait_ready=False, **env))  # waited for below
            self.wait_healthy()
            self.wait_intake()
            self.lb = Haproxy(self.gateways)
        except BaseException:
            self.cleanup()
            raise

    def wait_healthy(self, gateways=None, timeout=30):
        """Until each gateway's /health is 200 (its JetStream intake set up)."""
        deadline = time.time() + timeout
        for gw in gateways or self.gateways:
            while True:
                status, _, body = gw.http("GET", "/health")
                if status == 200:
                    break
                if time.time() > deadline or gw.proc.poll() is not None:
                    raise RuntimeError(f"gateway :{gw.port} not healthy: {body}\n{gw.output()[-3000:]}")
                time.sleep(0.1)

    def wait_intake(self, timeout=30):
        """Until each gateway's durable consumer exists (what /health's `broker.ready` says
        too): a consumer starts with the messages published after its creation, so a test must
        not publish before."""
        deadline = time.time() + timeout
        wanted = {f"ws-server-{gw.env['WS_INSTANCE_ID']}" for gw in self.gateways}
        while True:
            have = set(self.nats.consumers())
            if wanted <= have:
                return
            if time.time() > deadline:
                raise RuntimeError(f"consumers {sorted(have)}, wanted {sorted(wanted)}\n" +
                                   "\n".join(gw.output()[-2000:] for gw in self.gateways))
            time.sleep(0.1)

    def connections(self):
        return [gw.json("/stats")["currentConnections"] if gw.proc.poll() is None else None
                for gw in self.gateways]

    def cleanup(self):
        if self.lb:
            self.lb.cleanup()
        for gw in self.gateways:
            gw.__exit__(None, None, None)
        if self.nats:
            self.nats.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

