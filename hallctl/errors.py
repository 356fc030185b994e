"""One error tree with stable codes.

Every error that can reach another system (an MQTT response, a CLI exit, a log line a technician
greps for) carries a ``code`` from :data:`CODES`. Errors subclass both :class:`HallctlError` and the
obvious built-in, so callers may catch either (the gpiozero pattern).
"""

from __future__ import annotations

from typing import Any

from hallctl.privacy import scrub

#: code -> one-line meaning. This table is part of topic contract v1 (docs/topics.md).
CODES: dict[str, str] = {
    "bad_request": "payload is not valid JSON, not an object, or does not match the action's schema",
    "unknown_command": "the action is not one this receiver implements",
    "unknown_device": "no device with that id on this node",
    "not_found": "the ticket, window or queue named does not exist",
    "conflict": "the request is valid but not in the current state (e.g. complete with nothing called)",
    "device_offline": "the device is down; the supervisor is restarting it",
    "device_error": "the device answered with an error or a corrupt frame",
    "timeout": "the device did not answer in time",
    "config_error": "configuration or firmware profile is invalid",
    "expired": "the request's expires_at had passed when it arrived; it was not executed",
    "forbidden": "the calling client's role may not call this action (or not for that window)",
    "hall_closed": "outside the hall's opening hours no ticket is issued; detail.opens_at says when",
    "internal": "unexpected failure; the daemon logged it and keeps serving",
}


class HallctlError(Exception):
    """Root of every hallctl error. ``code`` is stable; ``message`` is for humans."""

    code = "internal"

    def __init__(self, message: str = "", **detail: Any) -> None:
        # messages echo what a client sent (an unknown queue id...), and they end up in responses
        # and logs: a phone or ID card number in them is masked whatever field it came in
        message = scrub(message or CODES.get(self.code, self.code))
        super().__init__(message)
        self.message = message
        self.detail = {k: scrub(v) for k, v in detail.items()}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            out["detail"] = self.detail
        return out


class BadRequest(HallctlError, ValueError):
    code = "bad_request"


class UnknownCommand(HallctlError, LookupError):
    code = "unknown_command"


class UnknownDevice(HallctlError, LookupError):
    code = "unknown_device"


class NotFound(HallctlError, LookupError):
    code = "not_found"


class Conflict(HallctlError, RuntimeError):
    code = "conflict"


class Forbidden(HallctlError, PermissionError):
    """The caller's role (hallctl.access.roles) may not call the action; not stored, so a retry
    after the hall's config grants it runs."""

    code = "forbidden"


class HallClosed(HallctlError, RuntimeError):
    """A ticket asked for outside the opening hours (or during the lunch break)."""

    code = "hall_closed"


class DeviceOffline(HallctlError, ConnectionError):
    code = "device_offline"


class DeviceError(HallctlError, IOError):
    """The device said something wrong: NACK, corrupt frame, unexpected reply."""

    code = "device_error"


class DeviceTimeout(HallctlError, TimeoutError):
    code = "timeout"


class Expired(HallctlError, TimeoutError):
    """A request that waited too long (e.g. queued at the broker while the receiver was down):
    the sender has given up and told the citizen so, so running it now would be wrong."""

    code = "expired"


class StorageUnavailable(HallctlError, OSError):
    """The disk under a store is full, read-only or gone: an outage, not a configuration error.
    A daemon that meets it at start exits with EX_TEMPFAIL (75), which systemd restarts; once
    space is freed it starts and serves."""

    code = "internal"


class ConfigError(HallctlError, ValueError):
    """Bad configuration. The message names the file, the key and the problem."""

    code = "config_error"

    def __init__(self, problem: str, *, file: str | None = None, key: str | None = None) -> None:
        where = ": ".join(p for p in (file, key) if p)
        super().__init__(f"{where}: {problem}" if where else problem)
        self.file, self.key, self.problem = file, key, problem
