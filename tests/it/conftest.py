"""pytest glue for the integration tests.

- Whatever a test started (larder, origins, DNS, echo servers, client sockets) is stopped when the test
  ends, larder by the PID the harness started. A larder that died during the test, or did not exit 0
  on SIGTERM at the end, fails the test's teardown.
- Each test has a wall-clock limit (SIGALRM raises TimeoutError in the test), 30 s unless marked
  @pytest.mark.time_limit(seconds), so a hung socket fails one test instead of the whole CTest run."""

import signal

import pytest

import harness

DEFAULT_TIME_LIMIT = 30


def pytest_configure(config):
    config.addinivalue_line("markers", f"time_limit(seconds): wall-clock limit of one test (default "
                                       f"{DEFAULT_TIME_LIMIT} s)")


@pytest.fixture(autouse=True)
def _stop_everything(request):
    harness._registry.clear()
    m = request.node.get_closest_marker("time_limit")
    limit = int(m.args[0]) if m else DEFAULT_TIME_LIMIT

    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded its {limit} s time limit")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    problems = harness.cleanup_all()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def origin():
    """A scripted origin on 127.0.0.1:0 (default answer: 200 "<METHOD> <target>\\n")."""
    return harness.Origin()


@pytest.fixture
def larder(tmp_path):
    """larder with the harness defaults only."""
    return harness.Larder(tmp_path)
