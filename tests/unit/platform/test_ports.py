import itertools
import socket
from pathlib import Path

import pytest

from signpost.platform import processes
from signpost.platform.processes import free_port, port_is_open


def test_free_port_never_hands_out_the_same_port_twice() -> None:
    # The OS alone returned a port it had given before in about 125 of 2,000 calls.
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)


def test_free_port_stays_below_the_ephemeral_range(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Where outgoing connections take their source ports, a probed port can be gone before it is bound.
    ephemeral = tmp_path / "ip_local_port_range"
    ephemeral.write_text("40000\t60999\n")
    monkeypatch.setattr(processes, "_EPHEMERAL_RANGE", ephemeral)
    assert all(40000 - 12_000 <= free_port() < 40000 for _ in range(200))


def test_free_port_passes_over_a_port_something_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = int(held.getsockname()[1])
        # The held port first, then whatever the OS gives (more than once if it gives a port this
        # process handed out before).
        chosen = itertools.chain([taken], itertools.repeat(0))
        monkeypatch.setattr(processes, "_random_port_below_ephemeral", lambda: next(chosen))
        assert free_port() != taken


def test_free_port_lets_the_os_choose_where_the_range_is_unknown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(processes, "_EPHEMERAL_RANGE", tmp_path / "absent")
    with socket.socket() as server:
        server.bind(("127.0.0.1", free_port()))  # a port that can be bound


@pytest.mark.parametrize(
    ("host", "listen_on"), [("::", "::1"), ("::", "127.0.0.1"), ("::1", "::1"), ("0.0.0.0", "127.0.0.1")]
)
def test_a_port_held_on_loopback_is_found_from_an_ipv6_or_wildcard_host(host: str, listen_on: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in listen_on else socket.AF_INET) as held:
        held.bind((listen_on, 0))
        held.listen()
        port = int(held.getsockname()[1])
        assert port_is_open(host, port)
    assert not port_is_open(host, port)


def test_a_host_that_does_not_resolve_is_an_error_not_a_closed_port() -> None:
    with pytest.raises(socket.gaierror):
        port_is_open("no-such-host.invalid", 9)
