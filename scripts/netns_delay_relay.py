#!/usr/bin/env python3
"""A TCP relay that delays every byte by a fixed time in each direction (scripts/netns_study.sh).

The kernel of the build machines has no netem (and no fq qdisc to honour departure times), so one-way delay cannot be
emulated in the kernel: this relay, in the network namespace between the sites and the server, stands in for it.
Each chunk read from one side is written to the other side DELAY_MS after it was read, in order; EOF and resets are
passed on after the same delay. TLS stays end to end (the relay sees only ciphertext). Differences from netem: TCP's
own acknowledgements are not delayed (each side's TCP talks to the relay), so congestion control sees a short RTT;
the application sees the added latency on every request and answer.

Usage: netns_delay_relay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS
Prints "relay listening on HOST:PORT" once it accepts connections. Standard library only.
"""
import asyncio
import sys
import time


async def pump(reader, writer, delay, abort_all):
    queue = asyncio.Queue()

    async def read():
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((time.monotonic() + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            queue.put_nowait((time.monotonic() + delay, None))

    async def write():
        try:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:  # the other side broke: break this side too
                    abort_all()
                    return
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            abort_all()

    await asyncio.gather(read(), write())


async def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__.strip().splitlines()[-2])
    listen_host, listen_port, target_host, target_port, delay_ms = sys.argv[1:]
    delay = float(delay_ms) / 1000.0

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(target_host, int(target_port))
        except OSError:
            client_writer.transport.abort()
            return
        def abort_all():
            for w in (client_writer, server_writer):
                w.transport.abort()

        await asyncio.gather(
            pump(client_reader, server_writer, delay, abort_all),
            pump(server_reader, client_writer, delay, abort_all))
        for w in (client_writer, server_writer):
            w.close()

    server = await asyncio.start_server(handle, listen_host, int(listen_port))
    print(f"relay listening on {listen_host}:{listen_port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
