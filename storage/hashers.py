"""Password hashers for accounts imported from ai-chatbot.

ai-chatbot stores plain bcrypt hashes (``$2a$``/``$2b$``, bcrypt-ts). Imported users keep them
as ``bcrypt$<hash>`` so they can still sign in; a new password is hashed with the default
hasher. bcrypt itself only reads the first 72 bytes of a password, and bcrypt-ts silently
truncates, while the Python bcrypt library (5.x) refuses longer passwords: truncate here so a
long password that worked on ai-chatbot still works (and never raises).
"""

from __future__ import annotations

from django.contrib.auth.hashers import BCryptPasswordHasher

BCRYPT_MAX_BYTES = 72


class ChatbotBCryptPasswordHasher(BCryptPasswordHasher):
    def encode(self, password: str, salt: bytes) -> str:
        bcrypt = self._load_library()
        data = bcrypt.hashpw(password.encode()[:BCRYPT_MAX_BYTES], salt)
        return f"{self.algorithm}${data.decode('ascii')}"
