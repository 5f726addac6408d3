"""Errors the stand-in answers on the wire, shaped like Stripe's ``{"error": {...}}`` bodies.

These never leave the stand-in as Python exceptions: the app turns each one into a response.
Messages never contain secrets (API keys are masked before they are formatted).
"""

from __future__ import annotations

from typing import Any

__all__ = ["StripeError", "invalid_request", "no_such", "unrecognized"]


class StripeError(Exception):
    """An error answered with ``status`` and Stripe's error JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        """The JSON body Stripe sends for this error."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        if request_id is not None:
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": error}


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    """A 400 ``invalid_request_error`` naming the offending parameter."""
    return StripeError(400, message, param=param, code=code)


def no_such(object_type: str, object_id: str, param: str = "id", status: int = 404) -> StripeError:
    """Stripe's ``resource_missing`` error: ``No such customer: 'cus_…'``."""
    noun = object_type.replace("_", " ").replace(".", " ")
    return StripeError(
        status, f"No such {noun}: '{object_id}'", code="resource_missing", param=param
    )


def unrecognized(method: str, path: str) -> StripeError:
    """Stripe's 404 for a path (or method) no endpoint serves, inside ``/v1`` or not."""
    return StripeError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or "
        "we can help at https://support.stripe.com/.",
    )
