"""The simulator stamps a request when its bytes reached the machine, not when its busy loop read them."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import time

import pytest

from etl.simulator import SimConfig, SimulatorProcess
from etl.simulator.arrivals import ArrivalClock
from etl.simulator.stats import SimStats

LATE_S = 0.3


def kernel_clock() -> tuple[ArrivalClock, socket.socket]:
    clock = ArrivalClock()
    listener = clock.listening_socket("127.0.0.1", 0)
    if not clock.kernel:
        listener.close()
        pytest.skip("no kernel receive timestamps on this platform (SO_TIMESTAMPING is Linux's)")
    return clock, listener


def skip_without_kernel_stamps() -> None:
    kernel_clock()[1].close()


def test_a_read_long_after_the_bytes_came_keeps_when_they_came() -> None:
    clock, listener = kernel_clock()
    with listener, socket.create_connection(listener.getsockname()) as client:
        connection, _ = listener.accept()
        with connection:
            sent = time.monotonic()
            client.sendall(b"GET / HTTP/1.1\r\n\r\n")
            time.sleep(LATE_S)  # a server too busy to read
            assert connection.recv(1024) == b"GET / HTTP/1.1\r\n\r\n"
            arrived = clock.arrival(connection.fileno())
            assert arrived is not None and sent - 0.01 <= arrived < sent + LATE_S / 3
            assert clock.arrival(connection.fileno()) is None  # one stamp, one request
            fd = connection.fileno()
        assert clock.arrival(fd) is None  # a closed connection's stamp is forgotten


def test_without_kernel_stamps_the_socket_reads_as_any_other() -> None:
    clock = ArrivalClock()
    with clock.listening_socket("127.0.0.1", 0) as listener, socket.create_connection(listener.getsockname()) as client:
        clock.kernel = False  # as where the kernel refused SO_TIMESTAMPING
        connection, _ = listener.accept()
        with connection:
            client.sendall(b"ping")
            assert connection.recv(16) == b"ping"
            assert clock.arrival(connection.fileno()) is None


def test_stats_keep_the_starts_in_time_order_whatever_the_order_they_are_counted_in() -> None:
    stats = SimStats()
    for arrived in (10.0, 10.5, 10.2, 11.1, 10.9):
        stats.request_started("/api/nots/x", "x", arrived=arrived)
    snapshot = stats.snapshot()
    assert snapshot["first_start"] == 10.0 and snapshot["last_start"] == 11.1
    assert snapshot["starts"] == pytest.approx([0.0, 0.2, 0.5, 0.9, 1.1])
    assert snapshot["max_starts_per_1s"] == 4


def test_requests_that_came_while_the_simulator_was_not_running_are_not_stamped_in_a_bunch() -> None:
    """The simulator process stopped (as a loaded machine deschedules it, or a busy loop): the requests sent
    meanwhile are read together when it runs again, but each is counted when it came."""
    skip_without_kernel_stamps()
    with SimulatorProcess(SimConfig(seed=3, n_companies=5)) as sim:
        port = sim.port
        assert port is not None
        sent, clients = [], []
        os.kill(sim.pid, signal.SIGSTOP)
        try:
            for _ in range(3):
                client = socket.create_connection(("127.0.0.1", port))  # the kernel completes the handshake
                client.sendall(b"GET /api/nots/company/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                sent.append(time.monotonic())
                clients.append(client)
                time.sleep(LATE_S / 2)
        finally:
            os.kill(sim.pid, signal.SIGCONT)
        for client in clients:
            with client:
                assert client.recv(64).startswith(b"HTTP/1.1 403")  # no browser headers: counted all the same
        stats = sim.stats()
    starts = [stats["first_start"] + start for start in stats["starts"]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert len(starts) == 3 and all(gap > LATE_S / 3 for gap in gaps), gaps
    assert all(abs(start - at) < LATE_S / 3 for start, at in zip(starts, sent, strict=True))
