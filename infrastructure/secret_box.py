"""Secrets at rest: values sealed with AES-GCM (eventsourcing's ``AESCipher``).

The key is ``DUECALL_SECRET_KEY`` (base64 of 16, 24 or 32 bytes) or, when that is unset, a
key file beside the embedded database's data directory, made on first use (mode 0600; several
processes starting at once agree on one key). A sealed value reads ``enc:v1:<base64>``.
"""

import base64
import os

from eventsourcing.cryptography import AESCipher
from eventsourcing.utils import Environment

from domain.redaction import SEALED_PREFIX, is_sealed
from infrastructure.settings import Settings

__all__ = ["SEALED_PREFIX", "AesSecretBox", "is_sealed", "secret_key"]


class AesSecretBox:
    def __init__(self, key: str) -> None:
        self._cipher = AESCipher(Environment(env={AESCipher.CIPHER_KEY: key}))

    def seal(self, plaintext: str) -> str:
        sealed = self._cipher.encrypt(plaintext.encode())
        return SEALED_PREFIX + base64.b64encode(sealed).decode()

    def open(self, sealed: str) -> str:
        if not sealed.startswith(SEALED_PREFIX):
            raise ValueError("not a sealed value")
        encrypted = base64.b64decode(sealed[len(SEALED_PREFIX) :], validate=True)
        return self._cipher.decrypt(encrypted).decode()


def secret_key(settings: Settings) -> str:
    """The configured key, or the key file's (made now if there is none)."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_dir.parent / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".secret.key.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(AESCipher.create_key(32) + "\n")
        try:
            os.link(draft, path)  # atomic: the first process to link wins, the rest use it
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()
