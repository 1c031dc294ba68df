"""The first process inside the endpoint's private namespaces: brings up loopback, gives the
server a private /dev/shm and /tmp, runs tritonserver, and relays a Unix socket to the server's
SageMaker port.

Why it exists: Triton 2.51's SageMaker listener always binds 0.0.0.0. Inside a private network
namespace nothing it opens is reachable from any other host, and a path-based Unix socket is the
one door that crosses the namespace boundary. This process owns that door.

It is started as `unshare --net --pid --fork --kill-child python -c <this file's text> ...`, so it
is PID 1 of a private PID namespace: when it dies, for any reason, the kernel kills every process
left in the namespace (tritonserver and all its Python stubs). `unshare` itself is tied to the
endpoint's owner with PR_SET_PDEATHSIG, and `--kill-child` ties this process to `unshare`, so a
killed owner takes the whole tree with it.

With `--private-files` it also runs in a private mount namespace (`unshare --mount`, whose mounts
are private): /dev/shm becomes a tmpfs of its own, mode 0700, so the Python backend's shared
memory regions (request and response tensors, mode 0644 upstream) are out of other local users'
reach and vanish with the namespace even when everything is killed; /tmp becomes the endpoint's
own `tmp/` folder, so the environments the backend unpacks into its hard-coded /tmp/python_env_*
go with the endpoint's work folder. Everything that was in /tmp at start stays reachable through
a symlink per entry (the server's install, a test's virtualenv and the work folder may live
there).

Standard library only, and no imports from mmepack: the endpoint runs this file's text with
`python -c`, which works the same from a source checkout, a wheel or a zipped PEX.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time

_BUFFER = 65536
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC = 2, 4, 4096, 16384
# Where the host's /tmp stays reachable once /tmp is the endpoint's own folder; inside the
# private /dev/shm, so nobody outside the namespace sees it.
_HOST_TMP = "/dev/shm/.host-tmp"


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    done = libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if done != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def private_shm() -> None:
    """A tmpfs of this namespace's own on /dev/shm, for its owner alone."""
    _mount("tmpfs", "/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0700")


def private_tmp(folder: str) -> None:
    """/tmp becomes `folder`; each entry of the host's /tmp at this moment stays reachable
    under its own name through a symlink (the work folder itself is usually one of them)."""
    os.mkdir(_HOST_TMP, 0o700)
    _mount("/tmp", _HOST_TMP, None, _MS_BIND | _MS_REC, None)
    _mount(folder, "/tmp", None, _MS_BIND, None)
    for name in os.listdir(_HOST_TMP):
        link = os.path.join("/tmp", name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(_HOST_TMP, name), link)


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
    parser.add_argument("--socket", help="Unix socket path to listen on")
    parser.add_argument("--port", type=int, help="the server's SageMaker port")
    parser.add_argument("--log", help="file for the server's output")
    parser.add_argument("--ip", default="ip", help="the `ip` tool")
    parser.add_argument(
        "--private-files", metavar="TMP", help="private /dev/shm, and this folder as /tmp"
    )
    parser.add_argument(
        "--probe", action="store_true", help="only check that a private /dev/shm can be made"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- tritonserver ...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.probe:
        private_shm()
        return 0
    if args.socket is None or args.port is None or args.log is None or not command:
        parser.error("--socket, --port, --log and a command are required")
    _loopback_up(args.ip)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is the owner's alone
    folder = os.open(os.path.dirname(args.socket) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        # Through the folder's handle: a deep work folder's path is too long for a socket.
        listener.bind(f"/proc/self/fd/{folder}/{os.path.basename(args.socket)}")
    finally:
        os.umask(old_umask)
        os.close(folder)
    listener.listen(64)
    if args.private_files:
        private_shm()
        private_tmp(args.private_files)
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
