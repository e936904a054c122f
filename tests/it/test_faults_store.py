"""Store faults: a full disk and a cache_dir that cannot be created. larder reports each with a log line,
keeps answering every request in full, and never stores (or later serves) a partial object.

The full disk is a file-size limit (RLIMIT_FSIZE) on the larder process: LMDB's writes past it fail with
EFBIG exactly as they fail with ENOSPC on a full filesystem (larder ignores SIGXFSZ so the write error,
not the signal, is what it sees). Root ignores permission bits, so the unwritable cache_dir is a path
under a regular file: creating it fails with ENOTDIR."""

import hashlib
import resource

from harness import Larder, Response, cache_status, fetch, random_bytes

FSIZE_LIMIT = 3 << 20  # data.mdb cannot grow past this


def start_with_file_size_limit(tmp_path, *args):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, hard))
    try:
        return Larder(tmp_path, "--workers", "1", *args)  # the child inherits the limit at fork
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_disk_full_serves_whole_responses_and_stores_nothing_partial(tmp_path, origin):
    big = random_bytes(6 << 20, seed=21)
    small = b"small and storable\n"
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=600")],
                                          body=big if req.target == "/big" else small)
    l = start_with_file_size_limit(tmp_path)
    for attempt in range(2):
        r = fetch(l, origin.url("/big"), timeout=60)
        assert r.status == 200 and hashlib.sha256(r.body).digest() == hashlib.sha256(big).digest(), \
            f"attempt {attempt}: the client must get the whole body: {r!r}"
        # Never a hit: the object did not fit, so nothing of it may be served from the store.
        assert not cache_status(r).get("hit"), r
    assert [q.target for q in origin.requests].count("/big") == 2, origin.requests
    line = l.wait_error_log(r"(not stored|store write failed|EFBIG|too large|No space|Input/output)")
    assert line, l.error_log_text()[-2000:]
    m = l.metrics()
    assert m["cache_stores"] == 0 or m["cache_store_failures"] + m["cache_store_aborts"] >= 1, m
    # larder keeps working: a small object still goes through (stored or not), whole.
    r = fetch(l, origin.url("/small"))
    assert r.status == 200 and r.body == small, r
    assert l.stop() == 0


def test_cache_dir_that_cannot_be_created_disables_the_cache_not_larder(tmp_path, origin):
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"a regular file where the cache directory's parent should be\n")
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=600")], body=b"forwarded\n")
    l = Larder(tmp_path, "--cache-dir", str(blocker / "cache"))
    line = l.wait_error_log(r"\bERROR\b.*cache")
    assert "cache" in line and str(blocker) in line, f"the error should name the directory: {line!r}"
    for _ in range(2):
        r = fetch(l, origin.url("/x"))
        assert r.status == 200 and r.body == b"forwarded\n", r
        assert cache_status(r).get("fwd") == "bypass", r
    assert len(origin.requests) == 2
