"""The first process inside the endpoint's private namespaces: brings up loopback, runs
tritonserver, and relays a Unix socket to the server's SageMaker port.

Why it exists: Triton 2.51's SageMaker listener always binds 0.0.0.0. Inside a private network
namespace nothing it opens is reachable from any other host, and a path-based Unix socket is the
one door that crosses the namespace boundary. This process owns that door.

It is started as `unshare --net --pid --fork --kill-child python -c <this file's text> ...`, so it
is PID 1 of a private PID namespace: when it dies, for any reason, the kernel kills every process
left in the namespace (tritonserver and all its Python stubs). `unshare` itself is tied to the
endpoint's owner with PR_SET_PDEATHSIG, and `--kill-child` ties this process to `unshare`, so a
killed owner takes the whole tree with it.

Standard library only, and no imports from mmepack: the endpoint runs this file's text with
`python -c`, which works the same from a source checkout, a wheel or a zipped PEX.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

_BUFFER = 65536


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes one way until either side closes, then close both."""
    try:
        while True:
            data = source.recv(_BUFFER)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def _relay(listener: socket.socket, port: int) -> None:
    """Accept on the Unix socket; connect each client to the server's loopback port."""
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()  # server not up (yet): the caller sees a closed connection and retries
            continue
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()


def _loopback_up(ip: str) -> None:
    """A new network namespace starts with `lo` down; Triton needs 127.0.0.1."""
    subprocess.run([ip, "link", "set", "lo", "up"], check=True, timeout=30)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mmepack-endpoint-sandbox")
    parser.add_argument("--socket", required=True, help="Unix socket path to listen on")
    parser.add_argument("--port", type=int, required=True, help="the server's SageMaker port")
    parser.add_argument("--log", required=True, help="file for the server's output")
    parser.add_argument("--ip", default="ip", help="the `ip` tool")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- tritonserver ...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    _loopback_up(args.ip)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is the owner's alone
    try:
        listener.bind(args.socket)
    finally:
        os.umask(old_umask)
    listener.listen(64)
    with open(args.log, "ab") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def stop(signum: int, _frame: object) -> None:
        server.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=_relay, args=(listener, args.port), daemon=True).start()
    while True:
        code = server.poll()
        if code is not None:
            break
        time.sleep(0.2)
    listener.close()
    try:
        os.unlink(args.socket)
    except OSError:
        pass
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
