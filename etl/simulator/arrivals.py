"""When each request reached the simulator, as the kernel saw its bytes arrive.

The busiest-second figure is only as true as its stamps. Stamped by the handler, a request that arrived
while the event loop was busy (a page built on the worker thread holding the GIL, the process descheduled
on a loaded machine) is stamped when the loop gets round to it, together with those that came meanwhile:
measured at 40 req/s on a loaded 2-core machine, the client wrote its requests at most 40 in any second,
and the simulator's loop read them up to 148 ms later and counted 43. A real server's rate limit meets the
packets as they arrive, so on Linux the listening socket asks the kernel for software receive timestamps
(SO_TIMESTAMPING) and each read records when its bytes arrived, in time.monotonic() seconds. Where the
kernel does not offer them, or for an app served some other way (tests' TestServer), there is no kernel
stamp and the handler stamps as before.
"""

from __future__ import annotations

import socket
import struct
import sys
import time

# Linux's SO_TIMESTAMPING (include/uapi/asm-generic/socket.h) and its flags (linux/net_tstamp.h); Python's
# socket module does not name them.
SO_TIMESTAMPING = 37
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
# struct scm_timestamping: three struct timespec, the software stamp first.
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY_SPACE = socket.CMSG_SPACE(3 * _TIMESPEC.size)


class ArrivalClock:
    """The latest arrival on each of the server's connections, keyed by the socket's file descriptor."""

    def __init__(self) -> None:
        self.latest: dict[int, float] = {}
        self.kernel = False  # True once a listening socket has the kernel's receive timestamps on

    def listening_socket(self, host: str, port: int) -> socket.socket:
        """A TCP socket bound and listening on host:port whose accepted connections stamp their reads."""
        sock = StampingSocket(socket.AF_INET, socket.SOCK_STREAM)
        sock.clock = self
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self.kernel = sys.platform == "linux" and _ask_for_stamps(sock)
        return sock

    def arrival(self, fd: int) -> float | None:
        """When the latest bytes on connection `fd` arrived (None: not known, stamp it yourself). Each stamp is
        handed out once: a later request on the connection whose read brought none is not counted at the time
        of the one before it."""
        return self.latest.pop(fd, None) if self.kernel else None


def _ask_for_stamps(sock: socket.socket) -> bool:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE)
    except OSError:
        return False
    return True


def kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The software receive timestamp of a recvmsg's ancillary data, as time.monotonic() seconds."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            if seconds or nanoseconds:
                # The kernel's clock is CLOCK_REALTIME: how long ago that was, taken off the monotonic clock.
                return time.monotonic() - (time.time() - (seconds + nanoseconds / 1e9))
    return None


class StampingSocket(socket.socket):
    """A socket whose connections (the ones it accepts) record each read's kernel arrival time in `clock`.
    asyncio's socket transport reads with recv(); that is the one call changed, to recvmsg()."""

    clock: ArrivalClock | None = None

    def accept(self) -> tuple[socket.socket, object]:
        fd, address = self._accept()  # type: ignore[attr-defined]
        connection = StampingSocket(self.family, self.type, self.proto, fileno=fd)
        connection.clock = self.clock
        if socket.getdefaulttimeout() is None and self.gettimeout():
            connection.setblocking(True)  # as socket.socket.accept does
        if self.clock is not None and self.clock.kernel:
            _ask_for_stamps(connection)  # Linux copies the option to an accepted socket; this does not rely on it
        return connection, address

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self.clock is None or not self.clock.kernel:
            return super().recv(bufsize, flags)
        data, ancillary, _, _ = self.recvmsg(bufsize, _ANCILLARY_SPACE, flags)
        stamp = kernel_stamp(ancillary)
        if stamp is not None:
            self.clock.latest[self.fileno()] = stamp
        return data

    def close(self) -> None:
        if self.clock is not None and self.fileno() >= 0:
            self.clock.latest.pop(self.fileno(), None)
        super().close()
