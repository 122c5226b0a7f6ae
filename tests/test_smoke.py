import promwire


def test_minimal_example_from_protocol() -> None:
    raw = bytes.fromhex(
        "0a280a0e0a085f5f6e616d655f5f120275700a080a036a6f621201781a0c09000000000000f03f10e807".replace(
            "1a0c", "120c"
        )
    )
    req = promwire.decode(promwire.WriteRequest, raw)
    up, job = promwire.Label("__name__", "up"), promwire.Label("job", "x")
    assert req.timeseries[0].labels == [up, job]
    assert promwire.encode(req) == raw
