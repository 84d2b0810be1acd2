"""Headless Chromium for browser tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser downloads (``playwright install``) are never used: the tests launch
``/usr/bin/chromium``. When it is missing they install Debian's package once (as root, with
apt-get, within a time limit) and otherwise skip, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
_INSTALL_TIMEOUT_SECONDS = 600
_install_tried: list[str] = []  # why the one install attempt failed, if it did


def chromium_executable() -> Path:
    """``/usr/bin/chromium``, installed with apt-get if need be; else the test is skipped."""
    if CHROMIUM.exists():
        return CHROMIUM
    if _install_tried:
        pytest.skip(_install_tried[0])
    _install_tried.append(_install())
    if CHROMIUM.exists():
        return CHROMIUM
    pytest.skip(_install_tried[0])


def _install() -> str:
    """Try `apt-get install -y chromium` once; return why there is still no browser."""
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        return f"no browser: {CHROMIUM} is missing and apt-get is not available to install it"
    if os.geteuid() != 0:
        return f"no browser: {CHROMIUM} is missing and installing it needs root (apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for command in ([apt_get, "install", "-y", "chromium"],
                        [apt_get, "update"], [apt_get, "install", "-y", "chromium"]):
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=_INSTALL_TIMEOUT_SECONDS, check=False)
            if command[1] == "install" and done.returncode == 0:
                return ""
    except subprocess.TimeoutExpired:
        return f"no browser: `apt-get install -y chromium` took over {_INSTALL_TIMEOUT_SECONDS} s"
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return f"no browser: `apt-get install -y chromium` failed ({tail[0]})"


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """A headless Chromium (Debian's) under Playwright; skips the test if there is none."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    executable = chromium_executable()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
