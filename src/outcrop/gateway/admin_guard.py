"""Who may call the local routes under `/_outcrop/` (admin API, endpoint listing, console).

The admin API changes what every caller gets (fault rules, scripted responses), so it must not
be drivable from a web page the developer happens to visit, nor by an unauthenticated caller
when authentication is on. Checked, in this order, for every route under `/_outcrop/` except
`GET /_outcrop/health` (docs/security.md, "The admin API"):

1. **Host** (DNS rebinding): the `Host` header must name a loopback host (`localhost`,
   `*.localhost`, `127.0.0.0/8`, `::1`) or one of `[admin] allowed_hosts` (host names or
   addresses, without port; `"*"` allows any). A request without `Host` (not a browser) passes.
2. **Cross-site** (CSRF): an `Origin` must be the same origin as the request (`null` is not);
   `Sec-Fetch-Site`, when sent, must be `same-origin` or `none`.
3. **Content type**: a POST, PUT or PATCH, and any write carrying a body, must be
   `Content-Type: application/json`, which a cross-site form cannot send without a preflight.
4. **Authentication**, in auth mode `verify`: a SigV4 signature (service scope `bedrock`) or
   bearer API key checked against the configured credentials, as for the AWS APIs; with
   `[admin] principals` set, only those principals. Open mode authenticates nothing. The web
   console's page and assets (`GET /_outcrop/console`, `/_outcrop/console/assets/...`) carry
   no data and skip this check, so that a browser can load the page that then sends a bearer
   API key with each API call (docs/console.md); checks 1 and 2 still apply to them.

The AWS APIs get check 2 only (`cross_site`): SDKs never send `Origin` or `Sec-Fetch-Site`, and a
page's cross-origin call with SigV4 headers fails its CORS preflight anyway, so what it refuses
is a "simple" cross-site request (a form's `text/plain` POST creating a guardrail or running a
model in open mode). Their `Host` is not checked: SDKs name the server as they reach it.

`/metrics` and `GET /_outcrop/health` stay readable by anyone who can reach the port (probes and
scrapers carry no credentials; they expose readiness, model and endpoint names and counters,
never request contents or configuration secrets). A refusal is a 403 with `{"message": ...}`
(an authentication failure: the AWS error the APIs answer, e.g. MissingAuthenticationToken).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from outcrop.config.security import AdminSettings, AuthSettings, principal_arn
from outcrop.gateway.auth import Authenticator
from outcrop.services.base import RequestContext, Response
from outcrop.wire.errors import AccessDeniedException, AwsError

PREFIX = "/_outcrop/"
UNGUARDED = frozenset({("GET", "/_outcrop/health"), ("HEAD", "/_outcrop/health")})
"""Read by probes that carry no credentials and may come from anywhere."""
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LOOPBACK_NAMES = ("localhost", "localhost.", "ip6-localhost", "ip6-loopback")
CONSOLE_PAGES = frozenset({"/_outcrop/console", "/_outcrop/console/"})
CONSOLE_ASSETS = "/_outcrop/console/assets/"


def is_public_asset(method: str, path: str) -> bool:
    """The web console's page and built assets: no data in them, so no credentials needed."""
    return method in ("GET", "HEAD") and (path in CONSOLE_PAGES or path.startswith(CONSOLE_ASSETS))


def _refused(message: str) -> Response:
    return Response(orjson.dumps({"message": message}), [("Content-Type", "application/json")], 403)


def host_name(host: str) -> str:
    """The host part of a `Host` header value (no port, no IPv6 brackets), lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def is_loopback(name: str) -> bool:
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class AdminGuard:
    """Decides whether a request to a local route may proceed (see the module docstring)."""

    def __init__(self, auth: AuthSettings, admin: AdminSettings) -> None:
        self.max_body_bytes = admin.max_body_bytes
        self.allowed_hosts = frozenset(h if h == "*" else host_name(h) for h in admin.allowed_hosts)
        self.authenticator = Authenticator(auth) if auth.mode == "verify" else None
        self.principals = (
            frozenset(principal_arn(p, auth.account_id) for p in admin.principals)
            if admin.principals is not None
            else None
        )

    def too_large(self) -> Response:
        """A local route's request body beyond `[admin] max_body_bytes` (not read further)."""
        return Response(
            orjson.dumps(
                {
                    "message": f"The request body exceeds {self.max_body_bytes} bytes "
                    "([admin] max_body_bytes)."
                }
            ),
            [("Content-Type", "application/json")],
            413,
        )

    def guarded(self, method: str, path: str) -> bool:
        return path.startswith(PREFIX) and (method, path) not in UNGUARDED

    def refusal(
        self, scope: Mapping[str, Any], method: str, path: str, query: str, body: bytes
    ) -> Response | None:
        """None when the request may proceed, else the response refusing it."""
        if not self.guarded(method, path):
            return None
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        lowered = {k.lower(): v for k, v in headers}
        scheme = str(scope.get("scheme", "http"))
        host = lowered.get("host") or lowered.get(":authority")
        problem = (
            self._host_problem(host)
            or self._site_problem(lowered, scheme, host)
            or self._type_problem(method, lowered, body)
        )
        if problem is not None:
            return _refused(problem)
        if self.authenticator is None or is_public_asset(method, path):
            return None
        ctx = RequestContext(
            "admin",
            "OutcropAdmin",
            {},
            body,
            service="bedrock-runtime",  # signed for service `bedrock`, as the runtime API
            headers=tuple(headers),
            method=method,
            raw_path=path,
            query=query,
            scheme=scheme,
        )
        try:
            identity = self.authenticator.identify(ctx)
        except AwsError as err:
            status, error_headers, error_body = err.to_http()
            return Response(error_body, list(error_headers), status)
        if self.principals is not None and identity.principal not in self.principals:
            denied = AccessDeniedException(
                f"User: {identity.principal} is not authorized to use the Outcrop admin API "
                "([admin] principals)."
            )
            status, error_headers, error_body = denied.to_http()
            return Response(error_body, list(error_headers), status)
        return None

    def cross_site(self, scope: Mapping[str, Any]) -> AccessDeniedException | None:
        """For the AWS APIs: AccessDeniedException for a browser's cross-site request."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if "origin" not in headers and "sec-fetch-site" not in headers:
            return None
        host = headers.get("host") or headers.get(":authority")
        problem = self._site_problem(headers, str(scope.get("scheme", "http")), host)
        return AccessDeniedException(problem) if problem is not None else None

    def _host_problem(self, host: str | None) -> str | None:
        if host is None or "*" in self.allowed_hosts:
            return None
        name = host_name(host)
        if is_loopback(name) or name in self.allowed_hosts:
            return None
        return (
            f"Host {host!r} is not a loopback host nor listed in [admin] allowed_hosts; the "
            "Outcrop admin API refuses it (DNS rebinding protection)."
        )

    @staticmethod
    def _site_problem(headers: Mapping[str, str], scheme: str, host: str | None) -> str | None:
        site = headers.get("sec-fetch-site")
        if site is not None and site.lower() not in ("same-origin", "none"):
            return f"Cross-site request (Sec-Fetch-Site: {site}) refused by Outcrop."
        origin = headers.get("origin")
        if origin is None:
            return None
        parsed = urlsplit(origin.strip())
        if host is None or parsed.scheme != scheme or parsed.netloc.lower() != host.strip().lower():
            return f"Cross-origin request (Origin: {origin}) refused by Outcrop."
        return None

    @staticmethod
    def _type_problem(method: str, headers: Mapping[str, str], body: bytes) -> str | None:
        if method not in WRITES or (method == "DELETE" and not body):
            return None
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            return "Admin API writes must be sent as Content-Type: application/json."
        return None
