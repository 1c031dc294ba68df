"""Model-test servers are bounded by one setting: never more hold a slot than it allows."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mmepack.errors import MmepackError
from mmepack.testing import slots
from mmepack.testing.slots import SERVERS_VARIABLE, server_limit, server_slot


def test_never_more_than_the_limit_at_once(tmp_path: Path) -> None:
    # flock locks belong to open files, so threads of one process contend like test processes.
    active: list[int] = []
    peak = [0]
    used: set[int] = set()
    guard = threading.Lock()

    def one_test() -> None:
        with server_slot("t", limit=2, folder=tmp_path, timeout=30) as slot:
            with guard:
                active.append(slot)
                used.add(slot)
                peak[0] = max(peak[0], len(active))
            time.sleep(0.3)
            with guard:
                active.remove(slot)

    workers = [threading.Thread(target=one_test) for _ in range(6)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert not any(worker.is_alive() for worker in workers)
    assert peak[0] == 2
    assert used == {0, 1}
    # Six holds of 0.3 s, two at a time: three rounds, not one.
    assert time.monotonic() - started >= 0.85


def test_a_full_machine_times_out_naming_the_setting(tmp_path: Path) -> None:
    with server_slot("first", limit=1, folder=tmp_path, timeout=5):
        with pytest.raises(MmepackError) as caught:
            with server_slot("second.tar.gz", limit=1, folder=tmp_path, timeout=0.5):
                pass
    message = str(caught.value)
    assert "second.tar.gz" in message and SERVERS_VARIABLE in message
    # Released on exit: the next one gets the slot at once.
    with server_slot("third", limit=1, folder=tmp_path, timeout=0.5) as slot:
        assert slot == 0


def test_setting_and_machine_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SERVERS_VARIABLE, "3")
    assert server_limit() == 3
    monkeypatch.delenv(SERVERS_VARIABLE)
    assert server_limit() == slots.machine_default() >= 1
    monkeypatch.setattr(slots, "_available_gib", lambda: 3.9)
    assert slots.machine_default() == 1  # 3.9 GiB holds one 2 GiB server, whatever the cores
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv(SERVERS_VARIABLE, bad)
        with pytest.raises(MmepackError, match="expected a positive whole number"):
            server_limit()
