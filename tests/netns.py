"""Move this process into a private network namespace with only loopback up (Linux, root or CAP_SYS_ADMIN).

The PACS tests and benchmark run real servers (Orthanc listens on every interface whatever it is told):
inside a private namespace nothing they open is reachable from outside, and nothing outside is reachable
from them. A namespace belongs to a thread; threads and child processes started afterwards inherit it, so
this must run before any thread starts (first thing in pytest_configure or a script's main).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def enter_private_netns() -> str | None:
    """None when the process is now in a fresh namespace with ``lo`` up; else why not (in words)."""
    if not hasattr(os, "sched_getaffinity") or os.uname().sysname != "Linux":
        return "private network namespaces need Linux"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        return f"unshare(CLONE_NEWNET) not permitted: {os.strerror(err)} (run as root or with CAP_SYS_ADMIN)"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
    return None
