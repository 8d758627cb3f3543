"""The error family every part raises: a stable machine code plus a translatable message."""

from __future__ import annotations

from unioncard.i18n import translate


class UnionCardError(Exception):
    """Base error: ``code`` is stable for APIs; ``message`` is an English msgid with %(name)s."""

    code = "error"
    message = "Something went wrong"
    http_status = 400

    def __init__(self, message: str | None = None, *, code: str | None = None, **params):
        if message is not None:
            self.message = message
        if code is not None:
            self.code = code
        self.params = params
        super().__init__(self.render("en"))

    def render(self, locale: str | None = None) -> str:
        if locale == "en":
            return self.message % self.params if self.params else self.message
        return translate(self.message, locale, **self.params)

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.render(), "params": {k: str(v) for k, v in self.params.items()}}


class ValidationError(UnionCardError):
    code = "invalid"
    message = "Invalid value"


class NotFound(UnionCardError):
    """Also raised for objects outside the actor's scope: they must look non-existent."""

    code = "not_found"
    message = "Not found"
    http_status = 404


class Conflict(UnionCardError):
    code = "conflict"
    message = "Conflict"
    http_status = 409


class PermissionDenied(UnionCardError):
    code = "forbidden"
    message = "You do not have the right to do this"
    http_status = 403


class RateLimited(UnionCardError):
    code = "rate_limited"
    message = "Too many requests: try again later"
    http_status = 429
