"""Detached sessions are budgeted (issue 12, defect 4): a client that connects with ?channels= and
hangs up, over and over, used to make the gateway keep every one of those sessions (and their
channel entries) for WS_RESUME_TTL, past WS_MAX_CONNECTIONS and the per-address cap. Now at most
WS_MAX_DETACHED_SESSIONS are kept (split over the threads), at most WS_MAX_DETACHED_PER_IP per
client address, the oldest going first, and an honest client's session from another address
survives the flood and resumes."""
import json
import time

from harness import Gateway, RawClient, connect, metric, recv_json, run_tests, bounded_memory_env, memory_kb

HONEST = "127.0.0.2"
ATTACKER = "127.0.0.1"



def hang_up_many(gw, count, channels_each, deadline_s=60):
    """`count` upgrades with `channels_each` fresh channel names each, hung up at once after the
    welcome. Bounded in count and time."""
    start = time.time()
    for i in range(count):
        if time.time() - start > deadline_s:
            raise AssertionError(f"only {i} connections in {deadline_s}s")
        names = ",".join(f"F{i}x{k}" for k in range(channels_each))
        c = RawClient(gw.port, path=f"/ws?channels={names}", source=ATTACKER)
        status, _ = c.read_http_head()
        assert status == 101, status
        op, payload = c.read_frame()
        assert op == 1 and json.loads(payload)["type"] == "welcome"
        c.close()


def honest_session(gw, channel):
    c = RawClient(gw.port, path=f"/ws?channels={channel}", source=HONEST)
    assert c.read_http_head()[0] == 101
    welcome = json.loads(c.read_frame()[1])
    assert json.loads(c.read_frame()[1])["type"] == "subscribed"
    gw.publish({"channel": channel, "data": 1})
    assert json.loads(c.read_frame()[1])["seq"] == 1
    c.close()
    return welcome["data"]["session"]


def resume_from(gw, source, session, last_seq):
    c = RawClient(gw.port, source=source)
    assert c.read_http_head()[0] == 101
    json.loads(c.read_frame()[1])  # welcome
    c.send_text(json.dumps({"type": "resume", "data": {"session": session, "last_seq": last_seq}}))
    while True:  # the replayed messages come first
        reply = json.loads(c.read_frame()[1])
        if "seq" not in reply:
            break
    c.close()
    return reply


def wait_detached(gw, at_most, timeout=5):
    time.sleep(1.2)  # the counts in /stats are refreshed by each thread's sweep (1 s at most)
    deadline = time.time() + timeout
    while True:
        stats = gw.json("/stats")  # refreshed by each thread's sweep
        if stats["detachedSessions"] <= at_most or time.time() > deadline:
            return stats
        time.sleep(0.1)


def test_per_address_budget_keeps_other_clients_sessions(binary):
    with Gateway(binary, WS_THREADS=2, WS_RESUME_TTL="60s", WS_MAX_DETACHED_SESSIONS=400,
                 WS_MAX_DETACHED_PER_IP=20, WS_MAX_CHANNELS_PER_CONN=100,
                 **bounded_memory_env()) as gw:
        session = honest_session(gw, "HONEST")
        before = memory_kb(gw)
        hang_up_many(gw, 1500, 100)
        time.sleep(0.5)  # the last hang-ups reach the gateway
        # 20 per address (10 on each thread), and the honest client's one.
        stats = wait_detached(gw, 21)
        assert stats["detachedSessions"] <= 21, stats
        assert stats["channels"] <= 20 * 100 + 1, stats
        assert metric(gw, "ws_sessions_detached_evicted_total") >= 1500 - 20
        grown_mb = (memory_kb(gw) - before) / 1024
        print(f"  RSS grew {grown_mb:.1f} MB over 1500 hang-ups with 100 fresh channels each")
        assert grown_mb < 60, grown_mb
        gw.publish({"channel": "HONEST", "data": 2})  # while the honest client is away
        reply = resume_from(gw, HONEST, session, 1)
        assert reply["type"] == "resumed" and reply["data"]["replayed"] == 1, reply


def test_thread_budget_bounds_every_address_together(binary):
    with Gateway(binary, WS_THREADS=2, WS_RESUME_TTL="60s", WS_MAX_DETACHED_SESSIONS=100) as gw:
        hang_up_many(gw, 600, 10)
        time.sleep(0.5)
        stats = wait_detached(gw, 100)
        assert 0 < stats["detachedSessions"] <= 100, stats
        assert stats["sessions"] == stats["detachedSessions"], stats
        # The newest are the ones kept: the last session of the flood still resumes.
        c = RawClient(gw.port, source=ATTACKER)
        assert c.read_http_head()[0] == 101
        last = json.loads(c.read_frame()[1])["data"]["session"]
        c.close()
        time.sleep(0.2)
        assert resume_from(gw, ATTACKER, last, 0)["type"] == "resumed"


async def test_an_evicted_session_answers_resume_failed(binary):
    with Gateway(binary, WS_THREADS=1, WS_MAX_DETACHED_SESSIONS=2) as gw:
        ids = []
        for _ in range(3):
            ws, welcome = await connect(gw)
            ids.append(welcome["data"]["session"])
            await ws.close()
        time.sleep(0.3)
        ws, _ = await connect(gw)
        await ws.send(json.dumps({"type": "resume", "data": {"session": ids[0], "last_seq": 0}}))
        err = await recv_json(ws)
        assert err["type"] == "error" and err["data"]["code"] == "resume_failed", err
        await ws.close()
        ws, _ = await connect(gw)
        await ws.send(json.dumps({"type": "resume", "data": {"session": ids[2], "last_seq": 0}}))
        assert (await recv_json(ws))["type"] == "resumed"
        await ws.close()


if __name__ == "__main__":
    run_tests([test_per_address_budget_keeps_other_clients_sessions,
               test_thread_budget_bounds_every_address_together,
               test_an_evicted_session_answers_resume_failed])
