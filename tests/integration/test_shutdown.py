"""Graceful drain: SIGTERM or SIGINT sends close 1001 to every client and exits 0."""
import asyncio
import signal
import time

import websockets

from harness import Gateway, connect, recv_json, run_tests


async def drain_with(binary, sig):
    gw = Gateway(binary, WS_DRAIN_TIMEOUT="5s")
    try:
        clients = [(await connect(gw))[0] for _ in range(3)]
        start = time.time()
        gw.proc.send_signal(sig)
        codes = []
        for ws in clients:
            try:
                while True:
                    await recv_json(ws, 5)
            except websockets.ConnectionClosed as e:
                codes.append(e.rcvd.code if e.rcvd else None)
        assert codes == [1001, 1001, 1001], codes
        status = await asyncio.get_running_loop().run_in_executor(None, gw.proc.wait, 10)
        assert status == 0, status
        assert time.time() - start < 5, time.time() - start
    finally:
        gw.stop()


async def test_sigterm(binary):
    await drain_with(binary, signal.SIGTERM)


async def test_sigint(binary):
    await drain_with(binary, signal.SIGINT)


async def test_refuses_during_drain(binary):
    # A client that never answers the close frame keeps the drain open until the close handshake
    # deadline; meanwhile the listener is closed, so new clients are refused.
    from harness import RawClient
    gw = Gateway(binary, WS_DRAIN_TIMEOUT="3s")
    try:
        stubborn = RawClient(gw.port)
        stubborn.read_http_head()
        gw.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        try:
            gw.http("GET", "/health")
            raise AssertionError("the listener should be closed during the drain")
        except ConnectionRefusedError:
            pass
        code, _ = stubborn.read_until_close(5)
        assert code == 1001, code
        status = await asyncio.get_running_loop().run_in_executor(None, gw.proc.wait, 10)
        assert status == 0
    finally:
        gw.stop()


if __name__ == "__main__":
    run_tests([test_sigterm, test_sigint, test_refuses_during_drain])
