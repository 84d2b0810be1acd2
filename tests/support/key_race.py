"""What each of several processes racing to create the secret key file runs (importable by a
forkserver, which imports this module once for all of them)."""

from pathlib import Path

from infrastructure.secret_box import secret_key
from infrastructure.settings import Settings


def key_in_a_process(data_dir: str) -> str:
    """The key this process reads, or creates, for ``data_dir``."""
    return secret_key(Settings(secret_key=None, data_dir=Path(data_dir)))
