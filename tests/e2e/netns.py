"""Network namespaces for the multi-node tests: two namespaces joined by a veth pair, each with its own
address on a private /24, so Ray nodes talk to each other over a real network that the host's interfaces
never see (ip netns; root)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

SUBNET = "10.213.0"  # inside the namespaces only: the host has no route to it


@dataclass(frozen=True)
class Namespace:
    name: str
    ip: str

    def command(self, args: list[str]) -> list[str]:
        """`args` run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *args]

    def addresses(self) -> set[str]:
        """Every address of every interface in the namespace."""
        shown = json.loads(_ip(["-n", self.name, "-json", "addr", "show"]))
        return {a["local"] for link in shown for a in link.get("addr_info", [])}

    def listeners(self) -> list[tuple[str, int, str]]:
        """(address, port, process name) of every listening TCP socket in the namespace."""
        out = _run(self.command(["ss", "-Hltnp"]))
        found = []
        for line in out.splitlines():
            fields = line.split()
            host, _, port = fields[3].rpartition(":")
            name = fields[5].split('"')[1] if len(fields) > 5 and '"' in fields[5] else ""
            found.append((host.strip("[]"), int(port), name))
        return found

    def pids(self) -> set[int]:
        out = _ip(["netns", "pids", self.name])
        return {int(p) for p in out.split()}


def available() -> str | None:
    """None where namespaces can be made here, or why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"adl-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], check=True)
    return None


@contextlib.contextmanager
def pair() -> Iterator[tuple[Namespace, Namespace]]:
    """Two namespaces, SUBNET.1 and SUBNET.2, with loopback up in each; deleted afterwards, with every
    process still inside killed first."""
    tag = f"{os.getpid() % 100000:05d}"  # a name per test process: xdist workers run side by side
    spaces = (Namespace(f"adl{tag}a", f"{SUBNET}.1"), Namespace(f"adl{tag}b", f"{SUBNET}.2"))
    links = (f"adl{tag}va", f"adl{tag}vb")  # interface names: 15 characters at most
    try:
        for space in spaces:
            _ip(["netns", "add", space.name])
        _ip(["link", "add", links[0], "type", "veth", "peer", "name", links[1]])
        for space, link in zip(spaces, links, strict=True):
            # IPv4 only: no link-local IPv6 address appears beside the test's own
            _run(space.command(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]))
            _run(space.command(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]))
            _ip(["link", "set", link, "netns", space.name])
            _ip(["-n", space.name, "addr", "add", f"{space.ip}/24", "dev", link])
            _ip(["-n", space.name, "link", "set", link, "up"])
            _ip(["-n", space.name, "link", "set", "lo", "up"])
        yield spaces
    finally:
        for space in spaces:
            with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
                for pid in space.pids():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, 9)
            subprocess.run(["ip", "netns", "delete", space.name], capture_output=True)  # takes the veth with it


def _ip(args: list[str]) -> str:
    return _run(["ip", *args])


def _run(args: list[str]) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout
