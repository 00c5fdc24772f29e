"""The lab's workloads behind the services: servers in pod network namespaces, started and stopped by PID.

  podserver.py sync --dir DIR [--check] [--restore RECORD] < SPEC
                                                    make exactly SPEC's servers run, print what changed (JSON)
  podserver.py udp --bind IP --port N --identity X  a UDP server answering each datagram with X

SPEC is JSON {"servers": [{pod, kind: http|udp, ip, ip6?, port, identity}], "helper": TEXT} (with ip6 on `::`,
both families); TEXT is this file,
kept as DIR/podserver.py for the UDP servers (so the role can run it as `python3 -c` in one task). With no
servers, every server is stopped and DIR removed. An `http` server is the seed's
`python3 -m http.server --bind IP PORT` (seed 004 lab 4), serving a page that holds its identity
(node/pod); a `udp` server answers every datagram with its identity. Each runs in its pod through
`ip netns exec POD`, detached, with a PID file DIR/POD-KIND-PORT.pid (the PID, then the command line
as JSON), so it is stopped by exactly that PID. A server whose pod namespace was replaced (deleted and
made again) or whose command differs is stopped and started again; a PID file of a server no longer in
SPEC has its process stopped and is removed. `--check` only says what would change. `--restore RECORD`
keeps this sync as a record of the node-side restore (plugins/module_utils/_restore.py: an argv and its
input), so the servers come back after a reboot with no Ansible run; no servers, no record.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

NETNS_DIR = "/run/netns"
STATES = {"http": ("tcp", "0A"), "udp": ("udp", "07")}  # /proc/net table and socket state when listening


def listen_address(server: dict) -> str:
    """Where a server listens: the pod's address, or with an IPv6 one too (`ip6`) every address of the pod, of both
    families (`::`, IPv6's socket taking IPv4 too, as http.server does): the pod has no others but loopback."""
    return "::" if server.get("ip6") else server["ip"]


def command(server: dict, directory: str) -> list:
    if server["kind"] == "http":
        return ["python3", "-m", "http.server", "--bind", listen_address(server), "--directory", www(server, directory),
                str(server["port"])]
    return ["python3", os.path.join(directory, "podserver.py"), "udp", "--bind", listen_address(server),
            "--port", str(server["port"]), "--identity", server["identity"]]


def www(server: dict, directory: str) -> str:
    return os.path.join(directory, "www", server["pod"])


def pidfile(server: dict, directory: str) -> str:
    return os.path.join(directory, f"{server['pod']}-{server['kind']}-{server['port']}.pid")


def read_pidfile(path: str) -> tuple:
    """(pid, argv) from a PID file; (None, None) if it is missing or not ours."""
    try:
        with open(path) as handle:
            first, dummy, rest = handle.read().partition("\n")
        return int(first), json.loads(rest or "null")
    except (OSError, ValueError):
        return None, None


def cmdline(pid: int) -> list | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [part.decode() for part in handle.read().split(b"\0")[:-1]]
    except OSError:
        return None


def netns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def alive(pid: int | None, argv: list | None) -> bool:
    """The process of a PID file is still the one we started (not a reused PID)."""
    return pid is not None and argv is not None and cmdline(pid) == argv


def running(server: dict, directory: str) -> bool:
    """The server runs, with the wanted command, in the pod's current network namespace."""
    pid, argv = read_pidfile(pidfile(server, directory))
    if argv != command(server, directory) or not alive(pid, argv):
        return False
    return netns_inode(f"/proc/{pid}/ns/net") == netns_inode(os.path.join(NETNS_DIR, server["pod"]))


def stop(path: str) -> None:
    pid, argv = read_pidfile(path)
    if alive(pid, argv):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while alive(pid, argv) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid, argv):
            os.kill(pid, signal.SIGKILL)
    os.unlink(path)


def listening(pid: int, kind: str, port: int) -> bool:
    """The process's network namespace has a socket listening on the port (read through /proc/PID/net)."""
    table, state = STATES[kind]
    rows = []
    for name in (table, table + "6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as handle:
                rows += [line.split() for line in handle.readlines()[1:]]
        except OSError:
            pass
    return any(int(row[1].split(":")[1], 16) == port and row[3] == state for row in rows)


def start(server: dict, directory: str) -> None:
    argv = command(server, directory)
    if server["kind"] == "http":
        os.makedirs(www(server, directory), exist_ok=True)
    with open(os.devnull, "r+b") as devnull:
        process = subprocess.Popen(["ip", "netns", "exec", server["pod"]] + argv, stdin=devnull, stdout=devnull,
                                   stderr=devnull, cwd=directory, start_new_session=True)
    with open(pidfile(server, directory), "w") as handle:
        handle.write(f"{process.pid}\n{json.dumps(argv)}\n")
    deadline = time.monotonic() + 20
    while not listening(process.pid, server["kind"], server["port"]):
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"podserver: {' '.join(argv)} in pod {server['pod']} did not start listening")
        time.sleep(0.05)


def write(path: str, content: str, check: bool) -> bool:
    """Make the file hold `content`; True if it had to be (re)written."""
    try:
        with open(path) as handle:
            if handle.read() == content:
                return False
    except OSError:
        pass
    if not check:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "w") as handle:
            handle.write(content)
    return True


def keep_record(path: str, directory: str, servers: list, helper: str, check: bool) -> list:
    """The restore record of this sync: written when there are servers, removed when there are none."""
    if servers:
        argv = ["python3", "-c", helper, "sync", "--dir", directory]  # DIR is gone after a reboot
        # the watcher's check: every server's process runs (restore.py reads the PID files as `alive` does)
        canary = {"processes": {pidfile(server, directory): command(server, directory) for server in servers}}
        record = {"argv": argv, "input": {"servers": servers, "helper": helper}, "canary": canary}
        return [path] if write(path, json.dumps(record, indent=1, sort_keys=True) + "\n", check) else []
    if os.path.exists(path):
        if not check:
            os.unlink(path)
        return [f"remove {path}"]
    return []


def sync(directory: str, servers: list, helper: str, check: bool, record: str | None = None) -> dict:
    done = {"started": [], "stopped": [], "pages": [], "files": []}
    if record:
        done["files"] += keep_record(record, directory, servers, helper, check)
    wanted = {pidfile(server, directory) for server in servers}
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        path = os.path.join(directory, name)
        if name.endswith(".pid") and path not in wanted:
            done["stopped"].append(name[:-4])
            if not check:
                stop(path)
    if not servers:
        if os.path.isdir(directory):
            done["files"].append(f"remove {directory}")
            if not check:
                shutil.rmtree(directory)
        done["changed"] = any(done.values())
        return done
    if write(os.path.join(directory, "podserver.py"), helper, check):
        done["files"].append("podserver.py")
    for server in servers:
        label = f"{server['identity']} {server['kind']} {server['ip']}:{server['port']}" + \
            (f" [{server['ip6']}]:{server['port']}" if server.get("ip6") else "")
        if server["kind"] == "http" and write(os.path.join(www(server, directory), "index.html"),
                                              server["identity"] + "\n", check):
            done["pages"].append(label)
        if running(server, directory):
            continue
        done["started"].append(label)
        if not check:
            if os.path.exists(pidfile(server, directory)):
                stop(pidfile(server, directory))
            start(server, directory)
    done["changed"] = any(done.values())
    return done


def serve_udp(bind: str, port: int, identity: str) -> None:
    import socket
    sock = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, socket.SOCK_DGRAM)
    if ":" in bind:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too, as IPv4-mapped peers
    sock.bind((bind, port))
    answer = f"{identity}\n".encode()
    while True:
        peer = sock.recvfrom(2048)[1]
        sock.sendto(answer, peer)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="action", required=True)
    syncing = sub.add_parser("sync")
    syncing.add_argument("--dir", required=True)
    syncing.add_argument("--check", action="store_true")
    syncing.add_argument("--restore")
    udp = sub.add_parser("udp")
    udp.add_argument("--bind", required=True)
    udp.add_argument("--port", type=int, required=True)
    udp.add_argument("--identity", required=True)
    args = parser.parse_args()
    if args.action == "udp":
        serve_udp(args.bind, args.port, args.identity)
        return
    spec = json.load(sys.stdin)
    print(json.dumps(sync(args.dir, spec.get("servers") or [], spec.get("helper") or "", args.check, args.restore)))


if __name__ == "__main__":
    main()
