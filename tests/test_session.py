"""`sibcl_ray.session`: SIGTERM takes the Ctrl-C path; `cli.run_main` ends an interruption in one line."""

from __future__ import annotations

import argparse
import os
import signal
import time

import pytest

from sibcl_ray.cli import run_main
from sibcl_ray.session import stop_on_sigterm_like_ctrl_c


@pytest.fixture
def restore_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_sigterm_is_handed_to_whatever_handles_sigint_now(restore_handlers) -> None:
    """Tune installs its own SIGINT handler while a search runs; SIGTERM must reach that one."""
    seen: list[int] = []
    stop_on_sigterm_like_ctrl_c()
    signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))  # what Tune does inside fit()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.1)  # the handler runs in the main thread between bytecodes
    assert seen == [signal.SIGINT]


def test_sigterm_without_a_sigint_handler_is_a_keyboard_interrupt(restore_handlers, capsys) -> None:
    stop_on_sigterm_like_ctrl_c()
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def body(args: argparse.Namespace) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return 0

    assert run_main(body, argparse.ArgumentParser(), []) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stopped: interrupted; finished work") and "rerun the same command" in err[0]
