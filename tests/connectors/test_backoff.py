"""The plant sources' reconnect back-off (tenacity's exponential wait): 0.5 s doubling to 30 s,
back to 0.5 s after a success."""
import pytest

from twinlib.ingest.sources._plant import Backoff


def test_reconnect_delays_double_up_to_the_cap_and_reset_after_a_success():
    backoff = Backoff()
    assert [backoff.next() for _ in range(9)] == pytest.approx(
        [0.5, 1, 2, 4, 8, 16, 30, 30, 30])
    backoff.reset()
    assert [backoff.next() for _ in range(3)] == pytest.approx([0.5, 1, 2])


def test_other_first_delay_and_cap():
    backoff = Backoff(first=0.1, cap=0.3)
    assert [backoff.next() for _ in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.3])
