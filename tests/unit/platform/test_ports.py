from signpost.platform.processes import free_port


def test_free_port_never_hands_out_the_same_port_twice() -> None:
    # The OS alone returned a port it had given before in about 125 of 2,000 calls.
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)
