"""Single flight when clients leave or stall (proxy/flight.h, txn.c txn_client_gone): the fetch for a
URL goes on without the client whose request started it (flight_orphaned), so the clients that follow
it still get the object and the object is stored; followers that leave disturb no one; a client that
stops reading should not hold the others back; and shutdown is not held up by a fetch without a client.

The origin sends a large random body through a GatedBody that stops part-way until the test releases
it; counts at the origin are exact, larder's own view is read from its counters."""

import threading

import pytest

from harness import poll_until, Download, GatedBody, Larder, Response, cache_status, fetch, random_bytes

MIB = 1 << 20
BIG = 8 * MIB
HALF = BIG // 2


def cacheable(g: GatedBody, framing: str = "length", chunk_delay: float = 0.0) -> Response:
    return Response(headers=[("Content-Type", "application/octet-stream"), ("Cache-Control", "max-age=300")], body=g,
                    length=g.length, framing=framing, chunk_delay=chunk_delay)


def assert_whole(d: Download, g: GatedBody):
    assert d.head is not None and d.head.status == 200, d
    assert d.complete and d.error is None, d
    assert d.nbytes == g.length and d.first_mismatch is None and d.sha256 == g.sha256, d


# ---- the client that started the fetch leaves --------------------------------------------------------

@pytest.mark.parametrize("pace", ["paced", "fast"])
@pytest.mark.parametrize("followers", [4, 0])
def test_first_client_aborts_and_the_fill_continues(tmp_path, origin, followers, pace):
    """The leader's client resets its connection after 1 MiB. The fetch goes on without it: either the
    transaction continues without a client (flight_orphaned), or, when that client had fallen behind,
    it was already reading from the store while the fetch ran on its own (flight_self_follow). The
    followers get whole bodies, and, with or without them, the object is stored and the next request is
    a hit.

    paced: the origin sends 64 KiB every 20 ms, so larder's write queue to the leaving client is short
    when it notices. fast: the origin sends as fast as it can, so the client usually leaves while that
    queue is above its high-water mark and larder has paused the upstream read for it (back-pressure):
    nothing may leave the read paused once the client is gone."""
    g = GatedBody(random_bytes(BIG, seed=4), stops=[HALF])
    origin.respond(cacheable(g, chunk_delay=0.02 if pace == "paced" else 0.0))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/abort")
    leader = Download(l, url, expect=g.data, close_after=MIB)
    origin.wait_for_requests(1)
    others = [Download(l, url, expect=g.data) for _ in range(followers)]
    l.expect("flight_followers", followers, timeout=10)
    leader.join(20)
    assert leader.aborted, leader
    assert g.reached(HALF).wait(20)
    g.release()
    for d in others:
        assert_whole(d.join(30), g)
    def went_on_without_the_client():
        m = l.metrics()
        return m["flight_orphaned"] + m["flight_self_follow"] >= 1
    assert poll_until(went_on_without_the_client, timeout=10), l.metrics()
    l.expect("store_meta_writes", ">=", 1, timeout=20)
    l.expect("cache_stores", 1)
    r = fetch(l, url)
    assert r.status == 200 and cache_status(r).get("hit"), r
    assert len(r.body) == BIG and r.body == g.data
    assert len(origin.requests) == 1, origin.requests


def test_first_client_leaves_before_the_response_head(tmp_path, origin):
    # The leader's client goes while the origin has not answered yet: the followers still get the
    # response when it comes, from the one request.
    go = threading.Event()
    g = GatedBody(random_bytes(2 * MIB, seed=5))

    def handler(req):
        go.wait(20)
        return cacheable(g)

    origin.handler = handler
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/abort-early")
    leader = Download(l, url)
    origin.wait_for_requests(1)
    others = [Download(l, url, expect=g.data) for _ in range(3)]
    l.expect("flight_followers", 3, timeout=10)
    leader.close()  # before any response byte
    go.set()
    for d in others:
        assert_whole(d.join(30), g)
    # larder does not read a client's connection while its request is in progress, so it learns that
    # the client left when it writes the response head: the fetch then goes on without it.
    l.expect("flight_orphaned", 1, timeout=10)
    l.expect("store_meta_writes", ">=", 1, timeout=10)
    r = fetch(l, url)
    assert r.status == 200 and cache_status(r).get("hit") and r.body == g.data, r
    assert len(origin.requests) == 1, origin.requests


def test_followers_that_leave_do_not_disturb_the_others(tmp_path, origin):
    # Two of five followers reset their connections part-way; the leader and the other followers get
    # the whole object, and it is stored.
    g = GatedBody(random_bytes(BIG, seed=8), stops=[HALF])
    origin.respond(cacheable(g))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/followers-leave")
    leader = Download(l, url, expect=g.data)
    origin.wait_for_requests(1)
    quitters = [Download(l, url, expect=g.data, close_after=n) for n in (256 * 1024, 3 * MIB)]
    stayers = [Download(l, url, expect=g.data) for _ in range(3)]
    assert g.reached(HALF).wait(20)
    for d in quitters:
        d.join(20)
        assert d.aborted, d
    g.release()
    for d in [leader, *stayers]:
        assert_whole(d.join(30), g)
    l.expect("flight_followers", 5)
    l.expect("store_meta_writes", ">=", 1, timeout=10)
    l.expect("cache_stores", 1)
    assert len(origin.requests) == 1, origin.requests


# ---- a client that stops reading ---------------------------------------------------------------------

@pytest.mark.time_limit(60)
def test_a_stalled_leader_client_does_not_stall_the_followers(tmp_path, origin):
    # The first client reads 1 MiB of a 32 MiB object, then stops reading (without closing). The
    # object is being stored and three followers wait for it: they should get it whole at the speed
    # of the store, not of the slowest client. (Far more than socket buffers and larder's write
    # queue can hold, so the leader's client cannot absorb the body without reading.)
    g = GatedBody(random_bytes(32 * MIB, seed=7))
    origin.respond(cacheable(g))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/stalled-leader")
    leader = Download(l, url, expect=g.data, stop_after=MIB, timeout=60)
    origin.wait_for_requests(1)
    others = [Download(l, url, expect=g.data, timeout=15) for _ in range(3)]
    try:
        for d in others:
            d.join(40)
    finally:
        leader.resume()  # and let it finish, so the test ends with no fetch left behind
        leader.join(30)
    for d in others:
        assert_whole(d, g)
    assert_whole(leader, g)
    assert len(origin.requests) == 1, origin.requests


# ---- shutdown --------------------------------------------------------------------------------------

def test_shutdown_while_a_fetch_without_client_waits_for_the_origin(tmp_path, origin):
    # The only client left after 256 KiB; the fetch goes on without it (flight_orphaned) and then the
    # origin stops sending. SIGTERM must still stop larder within shutdown_timeout (the abandoned fill
    # is not stored), exiting 0 with every handle closed.
    g = GatedBody(random_bytes(4 * MIB, seed=16), stops=[MIB])
    origin.respond(cacheable(g, chunk_delay=0.02))  # paced: larder writes on, so it sees the client go
    l = Larder(tmp_path, "--workers", "1", "--shutdown-timeout", "1s")
    d = Download(l, origin.url("/orphan-at-shutdown"), close_after=256 * 1024)
    d.join(20)
    assert d.aborted, d
    l.expect("flight_orphaned", 1, timeout=10)
    assert g.reached(MIB).wait(20)
    rc = l.stop(timeout=10)
    assert rc == 0, l.diagnostics()
    assert "handles still open" not in l.error_log_text(), l.error_log_text()[-2000:]
