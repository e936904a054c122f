"""c: freshness and validation (RFC 9111 s4.2, s4.3, s5.2): lifetimes from s-maxage, max-age and
Expires, Age from upstream, the request directives that force or relax validation, and what a 304 or a
200 on revalidation does to the stored response.

Time passes through the clock hook (--test-hooks on, POST /larder/clock?advance=N), never by sleeping.
The origin counts plain and conditional requests (If-None-Match / If-Modified-Since)."""

import time

import pytest

from harness import (Larder, Response, access_results, advance_clock, cache_status, fetch, fetch_stored, http_date,
                     is_conditional)

LM = "Mon, 01 Jan 2024 00:00:00 GMT"


def cache_larder(tmp_path, *args):
    return Larder(tmp_path, "--workers", "1", "--test-hooks", "on", *args)


class Validating:
    """Origin handler: 200 with `cc`, ETag and Last-Modified; a conditional request whose validator
    matches gets 304 with `extra304`. `version` counts the 200s, so a test can tell bodies apart."""

    def __init__(self, cc="max-age=60", body=b"stored body", etag='"v1"', lm=LM, extra=(), extra304=()):
        self.cc, self.body, self.etag, self.lm = cc, body, etag, lm
        self.extra, self.extra304 = list(extra), list(extra304)
        self.changed_body = None  # set to bytes: the next request gets a new 200 (validators changed)

    def __call__(self, req):
        if self.changed_body is not None:
            self.body, self.etag, self.changed_body = self.changed_body, '"v2"', None
            return self.full()
        inm, ims = req.header("if-none-match"), req.header("if-modified-since")
        if (inm is not None and self.etag and inm == self.etag) or (inm is None and ims is not None and ims == self.lm):
            h = [("Cache-Control", self.cc)] + ([("ETag", self.etag)] if self.etag else []) + self.extra304
            return Response(status=304, headers=h)
        return self.full()

    def full(self):
        h = [("Content-Type", "text/plain"), ("Cache-Control", self.cc)]
        if self.etag:
            h.append(("ETag", self.etag))
        if self.lm:
            h.append(("Last-Modified", self.lm))
        return Response(headers=h + self.extra, body=self.body)


def kinds(origin):
    """'plain' / 'cond' for each request the origin received."""
    return ["cond" if is_conditional(q) else "plain" for q in origin.requests]


# ---- expiry and refresh by 304 --------------------------------------------------------------------------

def test_max_age_expiry_then_304_refresh(tmp_path, origin):
    origin.handler = Validating("max-age=60", extra=[("X-Version", "1")], extra304=[("X-Version", "2")])
    l = cache_larder(tmp_path)
    url = origin.url("/r")
    r1 = fetch_stored(l, url)
    assert r1.body == b"stored body" and r1.header("x-version") == "1", r1

    # larder's clock has whole seconds: a second boundary may fall between two requests, so every
    # check keeps a second of margin.
    advance_clock(l, 57)
    r2 = fetch(l, url)
    assert cache_status(r2).get("hit") and cache_status(r2)["ttl"] in (2, 3), r2
    assert kinds(origin) == ["plain"]

    advance_clock(l, 4)  # age 61 or 62 > 60: stale
    m0 = l.metrics()
    r3 = fetch_stored(l, url)
    assert r3.status == 200 and r3.body == b"stored body", r3
    assert r3.header("x-version") == "2", f"the 304's header fields update the stored ones (s4.3.4): {r3!r}"
    assert r3.headers_named("x-version") == ["2"], r3
    cs = cache_status(r3)
    assert cs.get("fwd") == "stale" and cs.get("fwd-status") == 304, r3
    assert kinds(origin) == ["plain", "cond"]
    cond = origin.requests[1]
    assert cond.header("if-none-match") == '"v1"' and cond.header("if-modified-since") == LM, cond
    assert access_results(l, url, 3) == ["TCP_MISS/200", "TCP_HIT/200", "TCP_REFRESH_UNMODIFIED/200"]
    l.expect("cache_revalidations", 1)
    l.expect("cache_revalidated_304", 1)
    l.expect("store_meta_writes", m0["store_meta_writes"] + 1)
    m1 = l.metrics()
    # A 304 rewrites the meta record only: not one body byte, not one chunk (DESIGN: split records).
    assert m1["store_body_bytes_written"] == m0["store_body_bytes_written"] == len(b"stored body"), m1
    assert m1["store_body_chunk_writes"] == m0["store_body_chunk_writes"], m1

    # Fresh again, counting from the validation (s4.2.3), with the merged header fields.
    advance_clock(l, 30)
    r4 = fetch(l, url)
    assert cache_status(r4).get("hit") and r4.header("x-version") == "2" and r4.body == b"stored body", r4
    assert 30 <= int(r4.header("age")) <= 31, r4
    assert len(origin.requests) == 2


def test_200_on_revalidation_replaces_the_entry(tmp_path, origin):
    v = Validating("max-age=60", body=b"old body")
    origin.handler = v
    l = cache_larder(tmp_path)
    url = origin.url("/replace")
    fetch_stored(l, url)
    advance_clock(l, 61)
    v.changed_body = b"new body, longer than the old"
    r = fetch_stored(l, url)
    assert r.status == 200 and r.body == b"new body, longer than the old" and r.header("etag") == '"v2"', r
    cs = cache_status(r)
    assert cs.get("fwd") == "stale" and cs.get("fwd-status") == 200 and cs.get("stored"), r
    assert kinds(origin) == ["plain", "cond"]
    r2 = fetch(l, url)
    assert cache_status(r2).get("hit") and r2.body == b"new body, longer than the old", r2
    assert r2.header("etag") == '"v2"', r2
    assert len(origin.requests) == 2
    assert access_results(l, url, 3) == ["TCP_MISS/200", "TCP_REFRESH_MODIFIED/200", "TCP_HIT/200"]
    l.expect("cache_refresh_modified", 1)
    l.expect("cache_revalidated_304", 0)
    l.expect("store_entries", 1)  # replaced, not added
    l.expect("store_body_bytes_written", len(b"old body") + len(b"new body, longer than the old"))


# ---- which lifetime applies (s4.2.1) -------------------------------------------------------------------

@pytest.mark.parametrize("cc,fresh_at,stale_at", [
    ("s-maxage=10, max-age=100", 8, 12),  # s5.2.2.10: a shared cache uses s-maxage
    ("max-age=10, s-maxage=100", 98, 102),
    ("max-age=30", 28, 32),
])
def test_lifetime_source(tmp_path, origin, cc, fresh_at, stale_at):
    origin.handler = Validating(cc)
    l = cache_larder(tmp_path)
    url = origin.url("/life")
    fetch_stored(l, url)
    advance_clock(l, fresh_at)
    r = fetch(l, url)
    assert cache_status(r).get("hit"), f"{cc}: should be fresh at +{fresh_at}s: {r!r}"
    advance_clock(l, stale_at - fresh_at)
    r = fetch_stored(l, url)
    assert not cache_status(r).get("hit") and r.body == b"stored body", f"{cc}: should be stale at +{stale_at}s: {r!r}"
    assert kinds(origin) == ["plain", "cond"]


_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def rfc850(t):
    g = time.gmtime(t)
    return f"{_DAYS[g.tm_wday]}, {g.tm_mday:02d}-{_MONTHS[g.tm_mon - 1]}-{g.tm_year % 100:02d} " \
           f"{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} GMT"


def asctime(t):
    g = time.gmtime(t)
    return (f"{_DAYS[g.tm_wday][:3]} {_MONTHS[g.tm_mon - 1]} {g.tm_mday:2d} "
            f"{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} {g.tm_year}")


@pytest.mark.parametrize("fmt", [http_date, rfc850, asctime], ids=["imf-fixdate", "rfc850", "asctime"])
def test_expires_formats(tmp_path, origin, fmt):
    # s5.3 with RFC 9110 s5.6.7: all three date formats are accepted; lifetime = Expires - Date.
    def handler(req):
        now = int(time.time())
        if is_conditional(req):
            return Response(status=304, headers=[("Date", http_date(now)), ("Expires", fmt(now + 100)),
                                                 ("Last-Modified", LM)])
        return Response(headers=[("Date", http_date(now)), ("Expires", fmt(now + 100)), ("Last-Modified", LM)],
                        body=b"expiring")

    origin.handler = handler
    l = cache_larder(tmp_path)
    url = origin.url("/exp")
    fetch_stored(l, url)
    advance_clock(l, 50)
    r = fetch(l, url)
    assert cache_status(r).get("hit") and 47 <= cache_status(r)["ttl"] <= 50, f"Expires {fmt.__name__}: {r!r}"
    advance_clock(l, 60)
    r = fetch(l, url)
    assert not cache_status(r).get("hit") and r.body == b"expiring", r
    assert kinds(origin) == ["plain", "cond"]


@pytest.mark.parametrize("expires", ["0", "-1", "not a date", "Mon, 32 Foo 2024 99:99:99 GMT"])
def test_invalid_expires_is_stale(tmp_path, origin, expires):
    # s5.3: an invalid Expires, especially "0", means "already expired": stored, but revalidated.
    origin.handler = Validating(cc="public", extra=[("Expires", expires)])
    l = cache_larder(tmp_path)
    url = origin.url("/badexp")
    fetch_stored(l, url)
    r = fetch(l, url)
    assert r.status == 200 and r.body == b"stored body" and not cache_status(r).get("hit"), r
    assert kinds(origin) == ["plain", "cond"]


def test_expires_in_the_past_is_stale(tmp_path, origin):
    def handler(req):
        now = int(time.time())
        return Response(headers=[("Date", http_date(now)), ("Expires", http_date(now - 3600)), ("ETag", '"x"')],
                        body=b"old") if not is_conditional(req) else Response(status=304, headers=[("ETag", '"x"')])

    origin.handler = handler
    l = cache_larder(tmp_path)
    url = origin.url("/past")
    fetch_stored(l, url)
    r = fetch(l, url)
    assert r.body == b"old" and not cache_status(r).get("hit"), r
    assert kinds(origin) == ["plain", "cond"]


def test_max_age_beats_expires(tmp_path, origin):
    # s5.3: "If a response includes a Cache-Control header field with the max-age directive, a recipient
    # MUST ignore the Expires header field."
    origin.handler = Validating("max-age=100", extra=[("Expires", "0")])
    l = cache_larder(tmp_path)
    url = origin.url("/mx")
    fetch_stored(l, url)
    advance_clock(l, 50)
    r = fetch(l, url)
    assert cache_status(r).get("hit"), r
    assert len(origin.requests) == 1


def test_age_from_upstream_counts(tmp_path, origin):
    # s4.2.3: corrected_initial_age includes the upstream Age: max-age=60 with Age: 50 leaves 10 s.
    origin.handler = Validating("max-age=60", extra=[("Age", "50")])
    l = cache_larder(tmp_path)
    url = origin.url("/aged")
    r1 = fetch_stored(l, url)
    assert r1.header("age") == "50", r1
    r = fetch(l, url)
    assert cache_status(r).get("hit") and 50 <= int(r.header("age")) <= 51, r
    assert 9 <= cache_status(r)["ttl"] <= 10, r
    advance_clock(l, 8)
    r = fetch(l, url)
    assert cache_status(r).get("hit") and 58 <= int(r.header("age")) <= 59, r
    advance_clock(l, 3)  # age >= 61
    r = fetch(l, url)
    assert not cache_status(r).get("hit") and r.body == b"stored body", r
    assert kinds(origin) == ["plain", "cond"]


# ---- request directives (s5.2.1, s5.4) ----------------------------------------------------------------

@pytest.mark.parametrize("hdrs", [
    [("Cache-Control", "max-age=0")],
    [("Cache-Control", "no-cache")],
    [("Pragma", "no-cache")],
], ids=["max-age=0", "no-cache", "pragma"])
def test_request_forces_revalidation(tmp_path, origin, hdrs):
    origin.handler = Validating("max-age=600", extra304=[("X-Version", "2")])
    l = cache_larder(tmp_path)
    url = origin.url("/force")
    fetch_stored(l, url)
    advance_clock(l, 5)
    r = fetch_stored(l, url, headers=hdrs)
    assert r.status == 200 and r.body == b"stored body" and r.header("x-version") == "2", r
    cs = cache_status(r)
    assert not cs.get("hit") and cs.get("fwd") == "request" and cs.get("fwd-status") == 304, r
    assert kinds(origin) == ["plain", "cond"]
    assert access_results(l, url, 2) == ["TCP_MISS/200", "TCP_REFRESH_UNMODIFIED/200"]
    l.expect("cache_revalidated_304", 1)
    # Without the directive the (refreshed) stored response is a hit again.
    r = fetch(l, url)
    assert cache_status(r).get("hit") and r.header("x-version") == "2", r
    assert len(origin.requests) == 2


def test_pragma_ignored_when_cache_control_present(tmp_path, origin):
    # s5.4: Pragma is ignored when the request also has a Cache-Control field.
    origin.handler = Validating("max-age=600")
    l = cache_larder(tmp_path)
    url = origin.url("/pragma")
    fetch_stored(l, url)
    r = fetch(l, url, headers=[("Pragma", "no-cache"), ("Cache-Control", "max-stale=10")])
    assert cache_status(r).get("hit"), r
    assert len(origin.requests) == 1


def test_request_max_age_larger_than_age_is_a_hit(tmp_path, origin):
    origin.handler = Validating("max-age=600")
    l = cache_larder(tmp_path)
    url = origin.url("/rma")
    fetch_stored(l, url)
    advance_clock(l, 20)
    assert cache_status(fetch(l, url, headers=[("Cache-Control", "max-age=30")])).get("hit")
    r = fetch(l, url, headers=[("Cache-Control", "max-age=10")])
    assert not cache_status(r).get("hit") and r.body == b"stored body", r
    assert kinds(origin) == ["plain", "cond"]


def test_max_stale_serves_stale_without_origin(tmp_path, origin):
    # s5.2.1.2
    origin.handler = Validating("max-age=10")
    l = cache_larder(tmp_path)
    url = origin.url("/ms")
    fetch_stored(l, url)
    advance_clock(l, 20)  # 10 s stale
    r = fetch(l, url, headers=[("Cache-Control", "max-stale=15")])
    assert r.status == 200 and r.body == b"stored body" and cache_status(r).get("hit"), r
    assert 20 <= int(r.header("age")) <= 21, r
    r = fetch(l, url, headers=[("Cache-Control", "max-stale")])  # no value: any staleness
    assert cache_status(r).get("hit"), r
    assert len(origin.requests) == 1
    # Staler than the client accepts: validated.
    r = fetch(l, url, headers=[("Cache-Control", "max-stale=5")])
    assert not cache_status(r).get("hit") and r.body == b"stored body", r
    assert kinds(origin) == ["plain", "cond"]
    assert access_results(l, url, 4) == ["TCP_MISS/200", "TCP_STALE_HIT/200", "TCP_STALE_HIT/200",
                                         "TCP_REFRESH_UNMODIFIED/200"]
    l.expect("cache_stale_served", 2)


def test_min_fresh(tmp_path, origin):
    # s5.2.1.3: the client wants the response to stay fresh for at least min-fresh more seconds.
    origin.handler = Validating("max-age=60")
    l = cache_larder(tmp_path)
    url = origin.url("/mf")
    fetch_stored(l, url)
    advance_clock(l, 30)  # 30 s of freshness left
    assert cache_status(fetch(l, url, headers=[("Cache-Control", "min-fresh=20")])).get("hit")
    assert len(origin.requests) == 1
    r = fetch(l, url, headers=[("Cache-Control", "min-fresh=40")])
    assert not cache_status(r).get("hit") and r.body == b"stored body", r
    assert kinds(origin) == ["plain", "cond"]


def test_only_if_cached(tmp_path, origin):
    # s5.2.1.7: answer from the cache or 504, never contact the origin.
    origin.handler = Validating("max-age=60")
    l = cache_larder(tmp_path)
    url = origin.url("/oic")
    r = fetch(l, url, headers=[("Cache-Control", "only-if-cached")])
    assert r.status == 504, r
    assert len(origin.requests) == 0
    l.expect("cache_only_if_cached_fail", 1)
    fetch_stored(l, url)
    r = fetch(l, url, headers=[("Cache-Control", "only-if-cached")])
    assert r.status == 200 and r.body == b"stored body" and cache_status(r).get("hit"), r
    advance_clock(l, 61)
    r = fetch(l, url, headers=[("Cache-Control", "only-if-cached")])
    assert r.status == 504, f"stale and only-if-cached: 504 without contacting the origin: {r!r}"
    assert len(origin.requests) == 1
    l.expect("cache_only_if_cached_fail", 2)
    assert access_results(l, url, 4) == ["TCP_MISS/504", "TCP_MISS/200", "TCP_HIT/200", "TCP_MISS/504"]


# ---- response directives (s5.2.2) ----------------------------------------------------------------------

@pytest.mark.parametrize("cc", ["max-age=10, must-revalidate", "max-age=10, proxy-revalidate", "s-maxage=10"])
def test_must_revalidate_never_served_stale(tmp_path, origin, cc):
    # s5.2.2.2, s5.2.2.8, s5.2.2.10: once stale, not served without validation, even with max-stale.
    origin.handler = Validating(cc)
    l = cache_larder(tmp_path)
    url = origin.url("/mr")
    fetch_stored(l, url)
    advance_clock(l, 20)
    r = fetch(l, url, headers=[("Cache-Control", "max-stale=3600")])
    assert r.status == 200 and r.body == b"stored body" and not cache_status(r).get("hit"), r
    assert kinds(origin) == ["plain", "cond"]
    l.expect("cache_stale_served", 0)


def test_response_no_cache_always_revalidated(tmp_path, origin):
    # s5.2.2.4: no-cache (unqualified): never used without successful validation, even when fresh.
    origin.handler = Validating("max-age=600, no-cache", extra304=[("X-Checked", "yes")])
    l = cache_larder(tmp_path)
    url = origin.url("/nc")
    fetch_stored(l, url)
    for i in range(2):
        r = fetch_stored(l, url)
        assert r.status == 200 and r.body == b"stored body" and not cache_status(r).get("hit"), r
        assert r.header("x-checked") == "yes", r
    assert kinds(origin) == ["plain", "cond", "cond"]
    l.expect("cache_revalidated_304", 2)
    l.expect("store_body_bytes_written", len(b"stored body"))


def test_no_cache_with_field_names_hit_without_those_fields(tmp_path, origin):
    # s5.2.2.4: no-cache="X-Secret": reusable without validation, but without X-Secret.
    origin.handler = Validating('max-age=600, no-cache="X-Secret"', extra=[("X-Secret", "s3cr3t"), ("X-Public", "p")])
    l = cache_larder(tmp_path)
    url = origin.url("/ncf")
    r1 = fetch_stored(l, url)
    assert r1.header("x-secret") == "s3cr3t", r1
    r2 = fetch(l, url)
    assert cache_status(r2).get("hit") and r2.body == b"stored body", r2
    assert not r2.has("x-secret"), f"a no-cache field was served from the cache: {r2!r}"
    assert r2.header("x-public") == "p", r2
    assert len(origin.requests) == 1


def test_304_without_validators_match_refetches(tmp_path, origin):
    # s4.3.4: a 304 whose strong ETag matches no stored response cannot update it: larder must fetch
    # the full response (unconditionally) instead of serving the stored body.
    state = {"n": 0}

    def handler(req):
        state["n"] += 1
        if state["n"] == 1:
            return Response(headers=[("Cache-Control", "max-age=10"), ("ETag", '"a"')], body=b"body A")
        if is_conditional(req):
            return Response(status=304, headers=[("ETag", '"b"')])
        return Response(headers=[("Cache-Control", "max-age=10"), ("ETag", '"b"')], body=b"body B")

    origin.handler = handler
    l = cache_larder(tmp_path)
    url = origin.url("/mismatch")
    fetch_stored(l, url)
    advance_clock(l, 11)
    r = fetch_stored(l, url)
    assert r.status == 200 and r.body == b"body B" and r.header("etag") == '"b"', r
    assert kinds(origin) == ["plain", "cond", "plain"]
