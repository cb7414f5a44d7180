"""Durations run on the monotonic clock: the gateway runs under Debian's libfaketime with only the
wall clock faked (FAKETIME_DONT_FAKE_MONOTONIC=1), from a timestamp file the test rewrites, and a
step of an hour either way closes nobody early, keeps every timeout working and expires no
session. The wall clock still gives the envelopes' `ts`."""
import asyncio
import json
import os
import shutil
import tempfile
import time

from harness import Gateway, RawClient, connect, metric, recv_json, recv_until, run_tests

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def set_offset(path, seconds):
    with open(path + ".tmp", "w") as f:
        f.write(f"{seconds:+d}\n")
    os.replace(path + ".tmp", path)  # never a half-written file for the gateway to read


async def off_loop(blocking, *args):
    """Runs a blocking RawClient call in a thread: the websockets clients must keep answering
    pings meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(None, blocking, *args)


async def heartbeat_answered(ws):
    await ws.send(json.dumps({"type": "heartbeat", "id": 5}))
    pong = await recv_json(ws)
    return pong["type"] == "pong" and pong["id"] == 5


async def test_a_wall_clock_step_closes_nobody_and_keeps_timeouts(binary):
    assert os.path.exists(LIBFAKETIME), "needs Debian's faketime package (scripts/install-deps.sh test)"
    tmp = tempfile.mkdtemp(prefix="odin-clock-")
    offset = os.path.join(tmp, "offset")
    set_offset(offset, 0)
    try:
        with Gateway(binary, WS_THREADS=1, WS_PING_INTERVAL="1s", WS_HEARTBEAT_TIMEOUT="3s",
                     WS_RESUME_TTL="60s", LD_PRELOAD=LIBFAKETIME, FAKETIME_TIMESTAMP_FILE=offset,
                     FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1",
                     # The ASan build: its runtime need not come first once libfaketime is
                     # preloaded (both only wrap libc).
                     ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
                     ) as gw:
            honest, _ = await connect(gw, "?channels=c")  # answers pings (python3-websockets)
            await recv_json(honest)
            gone, welcome = await connect(gw, "?channels=c")
            await recv_json(gone)
            await gone.close()
            detached = welcome["data"]["session"]
            silent = RawClient(gw.port)  # never answers a ping
            assert (await off_loop(silent.read_http_head))[0] == 101
            connected = time.time()

            # An hour ahead: before, every connection's silence was an hour (closed 4000 at the
            # next sweep) and every detached session had outlived its TTL.
            set_offset(offset, 3600)
            gw.publish({"channel": "c", "data": {"n": 1}})
            msg = await recv_json(honest)
            assert msg["ts"] > (time.time() + 3000) * 1000, msg  # the wall clock did move
            code, _ = await off_loop(silent.read_until_close, 8)
            assert code == 4000, code
            assert time.time() - connected > 2, "closed by the clock step, not by its silence"
            await asyncio.sleep(1.5)  # several sweeps
            assert await heartbeat_answered(honest)
            back, _ = await connect(gw)
            await back.send(json.dumps({"type": "resume", "data": {"session": detached, "last_seq": 0}}))
            answer, replayed = await recv_until(back, lambda m: m["type"] in ("resumed", "resume_failed"))
            assert answer["type"] == "resumed", answer
            assert [m["data"] for m in replayed] == [{"n": 1}], replayed

            # An hour behind: before, a silence looked negative and no timeout ever fired.
            silent = RawClient(gw.port)
            assert (await off_loop(silent.read_http_head))[0] == 101
            set_offset(offset, -3600)
            code, _ = await off_loop(silent.read_until_close, 8)
            assert code == 4000, code
            assert await heartbeat_answered(honest)
            assert await heartbeat_answered(back)
            assert metric(gw, "ws_heartbeat_timeouts_total") == 2
            await honest.close()
            await back.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_tests([
        test_a_wall_clock_step_closes_nobody_and_keeps_timeouts,
    ])
