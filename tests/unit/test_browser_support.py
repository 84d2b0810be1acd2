"""Browser tests skip, saying why, only when no Chromium can be installed."""

from pathlib import Path

import pytest

from tests.support import browser


def test_without_chromium_or_apt_get_the_test_is_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "chromium")
    monkeypatch.setattr(browser, "_install_tried", [])
    monkeypatch.setattr("shutil.which", lambda _name: None)
    with pytest.raises(pytest.skip.Exception, match="apt-get is not available"):
        browser.chromium_executable()
    with pytest.raises(pytest.skip.Exception, match="apt-get is not available"):  # tried once
        browser.chromium_executable()


def test_an_installed_chromium_is_used_as_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    executable = tmp_path / "chromium"
    executable.touch()
    monkeypatch.setattr(browser, "CHROMIUM", executable)
    monkeypatch.setattr("shutil.which", pytest.fail)
    assert browser.chromium_executable() == executable
