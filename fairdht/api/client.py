"""A small blocking client of a node's HTTP API (for ``fairdht status``, scripts and tests)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from fairdht.errors import NetworkError, NotAcceptedError, UsageError

__all__ = ["ApiClient", "ApiResponseError"]


class ApiResponseError(NetworkError):
    """The API answered with an error status; ``status`` is the HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ApiClient:
    """Calls one node's API at ``base_url`` (e.g. ``http://127.0.0.1:8470``)."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 5.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UsageError(f"API URL {base_url!r} must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/octet-stream",
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.base_url + path, data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                message = _error_message(exc.read()) or exc.reason
            if exc.code == 409:
                raise NotAcceptedError(f"the node says: {message}") from None
            raise ApiResponseError(exc.code, f"the node says: {message}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, OSError) and reason.strerror:
                reason = reason.strerror
            raise NetworkError(f"the node at {self.base_url} does not answer ({reason})") from None

    def status(self) -> dict[str, Any]:
        """``GET /api/status``."""
        result: dict[str, Any] = self._call("GET", "/api/status")
        return result

    def history(self, network: str, *, limit: int = 50) -> dict[str, Any]:
        """``GET /api/history``: the node's newest server-list commits of ``network``."""
        query = urllib.parse.urlencode({"network": network, "limit": limit})
        result: dict[str, Any] = self._call("GET", f"/api/history?{query}")
        return result

    def records(self, key: bytes, *, local: bool = False) -> list[dict[str, Any]]:
        """``GET /api/records/{key}``: the records (JSON objects) under ``key``."""
        suffix = "?local=1" if local else ""
        result = self._call("GET", f"/api/records/{key.hex()}{suffix}")
        records: list[dict[str, Any]] = result["records"]
        return records

    def put(self, raw: bytes) -> dict[str, Any]:
        """``POST /api/records`` with the record's bytes; needs the token."""
        result: dict[str, Any] = self._call("POST", "/api/records", raw)
        return result

    def vote(self, subject: str, action: str, *, network: str, context: str = "") -> dict[str, Any]:
        """``POST /api/karma/vote``: the node signs a vote on ``subject`` (hex key) with its
        own key, as a game server reports a player's game event; needs the token."""
        document = {"subject": subject, "action": action, "context": context, "network": network}
        body = json.dumps(document).encode()
        result: dict[str, Any] = self._call("POST", "/api/karma/vote", body, "application/json")
        return result


def _error_message(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    message = document.get("error") if isinstance(document, dict) else None
    return message if isinstance(message, str) else None
