"""Staff API tokens for tests, made the way a login makes them (knox: hashed, with an expiry)."""
from knox.models import AuthToken


def api_token(user) -> str:
    """A fresh token for `user`, for the `Authorization: Token <token>` header."""
    return AuthToken.objects.create(user=user)[1]
