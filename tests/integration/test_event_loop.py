"""The event loop's own bookkeeping: a handler that throws does not end the accept or the sweep
chain (ODIN_TEST_FAULTS injects the throw); connections retire in any order without disturbing
the others; a connection adopted from another thread after the drain began still gets 1001; no
member of the gateway is destroyed while a connection still refers to it."""
import asyncio
import json
import os
import signal
import socket
import time

import websockets

from harness import Gateway, RawClient, close_code_of, connect, recv_json, run_tests


def wait_closed_by_server(sock, timeout):
    """Seconds until the server closed `sock` (EOF or reset), or None after `timeout`."""
    start = time.time()
    sock.settimeout(0.2)
    while time.time() - start < timeout:
        try:
            if not sock.recv(4096):
                return time.time() - start
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.time() - start
    return None


async def test_a_throwing_accept_handler_does_not_stop_accepting(binary):
    # The first accept throws; before, the next accept was armed after the handling, so the
    # listener of that thread accepted nobody ever again (the start-up probe would time out).
    with Gateway(binary, WS_THREADS=1, ODIN_TEST_FAULTS="accept=1") as gw:
        assert "injected test fault" in gw.output(), gw.output()
        for _ in range(3):
            ws, _ = await connect(gw, "?channels=a")
            assert (await recv_json(ws))["type"] == "subscribed"
            await ws.close()
        assert gw.json("/health")["status"] in ("healthy", "degraded")


def test_a_throwing_sweep_does_not_stop_the_sweeps(binary):
    # The first sweep throws; before, the sweep re-armed itself after its work, so handshake and
    # heartbeat timeouts, pings and session expiry stopped for good.
    with Gateway(binary, WS_THREADS=1, ODIN_TEST_FAULTS="sweep=1", WS_HANDSHAKE_TIMEOUT="1s") as gw:
        deadline = time.time() + 5
        while "injected test fault" not in gw.output() and time.time() < deadline:
            time.sleep(0.05)
        assert "injected test fault" in gw.output(), gw.output()
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as silent:
            closed_after = wait_closed_by_server(silent, 8)
        assert closed_after is not None, "the handshake timeout never fired: no sweep ran"


async def test_connections_retire_in_any_order(binary):
    # Retiring swaps the last connection into the retired one's place: whichever ones go, in
    # whatever order, the others stay and keep receiving.
    with Gateway(binary, WS_THREADS=1) as gw:
        clients = []
        for _ in range(40):
            ws, _ = await connect(gw, "?channels=r")
            await recv_json(ws)
            clients.append(ws)
        gone = [i for i in range(len(clients)) if i % 3 == 0 or i in (1, 39)]
        await asyncio.gather(*(clients[i].close() for i in reversed(gone)))
        stay = [clients[i] for i in range(len(clients)) if i not in gone]
        for round_ in range(3):
            late, _ = await connect(gw, "?channels=r")
            await recv_json(late)
            stay.append(late)
            # Close a few more, from the middle and from the end of the loop's list.
            for ws in (stay.pop(len(stay) // 2), stay.pop(0), stay.pop()):
                await ws.close()
            assert gw.publish({"channel": "r", "data": {"round": round_}}) == 1
            for ws in stay:
                msg = await recv_json(ws)
                assert msg["data"] == {"round": round_}, msg
        deadline = time.time() + 5
        while gw.json("/health")["checks"]["capacity"]["current"] != len(stay) and time.time() < deadline:
            await asyncio.sleep(0.05)
        assert gw.json("/health")["checks"]["capacity"]["current"] == len(stay)
        for ws in stay:
            await ws.send(json.dumps({"type": "heartbeat", "id": 1}))
            assert (await recv_json(ws))["type"] == "pong"
            await ws.close()


async def test_a_connection_adopted_during_the_drain_gets_1001(binary):
    # Resumes move connections between threads while SIGTERM arrives: a connection that reached
    # its session's thread after that thread began draining was never told to go, and the drain
    # waited for it until WS_DRAIN_TIMEOUT.
    for attempt in range(6):
        gw = Gateway(binary, WS_THREADS=4, WS_DRAIN_TIMEOUT="20s")
        try:
            sessions = []
            for _ in range(80):
                ws, welcome = await connect(gw)
                sessions.append(welcome["data"]["session"])
                await ws.close()
            fresh = [(await connect(gw))[0] for _ in sessions]
            half = len(fresh) // 2 + attempt * 5
            start = time.time()
            for i, (ws, session) in enumerate(zip(fresh, sessions)):
                if i == half:
                    gw.proc.send_signal(signal.SIGTERM)
                await ws.send(json.dumps({"type": "resume", "data": {"session": session, "last_seq": 0}}))

            async def until_closed(ws):
                try:
                    while True:
                        await recv_json(ws, 15)
                except websockets.ConnectionClosed as e:
                    return close_code_of(e)
                except asyncio.TimeoutError:
                    return "still open"

            codes = await asyncio.gather(*(until_closed(ws) for ws in fresh))
            assert set(codes) == {1001}, codes
            status = await asyncio.get_running_loop().run_in_executor(None, gw.proc.wait, 30)
            assert status == 0, status
            assert time.time() - start < 10, (time.time() - start, gw.output())
            assert "drain timeout" not in gw.output(), gw.output()
        finally:
            gw.stop()


def test_shutdown_with_connections_left_touches_nothing_destroyed(binary):
    # A client that never answers the close frame outlives a short drain: its connection is
    # destroyed with its loop, and gives its address slot back to limits that must still exist
    # (they were destroyed before the loops).
    gw = Gateway(binary, WS_DRAIN_TIMEOUT="500ms", WS_MAX_CONNECTIONS_PER_IP="10")
    try:
        stubborn = [RawClient(gw.port) for _ in range(3)]
        for c in stubborn:
            assert c.read_http_head()[0] == 101
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.proc.wait(10) == 0
        assert "drain timeout" in gw.output(), gw.output()  # they really were left over
        assert "still hold connection slots" not in gw.output(), gw.output()
        for c in stubborn:
            c.close()
    finally:
        gw.stop()


if __name__ == "__main__":
    run_tests([
        test_a_throwing_accept_handler_does_not_stop_accepting,
        test_a_throwing_sweep_does_not_stop_the_sweeps,
        test_connections_retire_in_any_order,
        test_a_connection_adopted_during_the_drain_gets_1001,
        test_shutdown_with_connections_left_touches_nothing_destroyed,
    ])
