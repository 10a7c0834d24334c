"""The console's door: login and logout, the session cookie, CSRF and same-origin checks on
every form, and the security headers of every answer.

A page (GET) needs a logged-in session; without one it redirects to the login form. An action
(POST) needs a logged-in session, the session's CSRF token in the form, and — when the browser
says where the request comes from (``Origin``, else ``Referer``) — this console's own origin.
The login form has a CSRF token too (of the session started when it was shown).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.console.sessions import Session, Sessions

COOKIE = "solo_console"
Handler = Callable[[Request, Session], Awaitable[Response]]

HEADERS = {
    # Scripts and styles only from our own /static (htmx is vendored there); no inline code.
    "content-security-policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` to every answer of the console's paths."""

    def __init__(self, app: ASGIApp, *, skip: tuple[str, ...] = ("/hooks/",)) -> None:
        self._app = app
        self._skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the answer's start."""
        if scope["type"] != "http" or scope["path"].startswith(self._skip):
            await self._app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()
                            if k.encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, with_headers)


class Guard:
    """See the module docstring."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def session(self, request: Request) -> Session | None:
        """The request's live session, logged in or not."""
        return self.sessions.get(request.cookies.get(COOKIE))

    @staticmethod
    def set_cookie(response: Response, session: Session) -> Response:
        """Give the browser ``session``'s token: HttpOnly, Secure, SameSite=Strict (browsers
        keep Secure cookies of http://127.0.0.1 and localhost; beyond loopback, serve the
        console behind TLS)."""
        response.set_cookie(COOKIE, session.token, httponly=True, secure=True,
                            samesite="strict", path="/")
        return response

    @staticmethod
    def same_origin(request: Request) -> bool:
        """False when the browser says the request comes from another origin."""
        claimed = request.headers.get("origin") or request.headers.get("referer")
        if not claimed:
            return True  # not a browser form from elsewhere (those carry Origin)
        parts = urlsplit(claimed)
        return f"{parts.scheme}://{parts.netloc}" == \
            f"{request.url.scheme}://{request.headers.get('host', '')}"

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A GET handler for logged-in operators (others go to the login form)."""
        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            session = self.session(request)
            if session is None or not session.operator:
                return RedirectResponse("/login", status_code=303)
            return await handler(request, session)
        return guarded

    def action(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A POST handler for logged-in operators with a same-origin form carrying the
        session's CSRF token."""
        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            session = self.session(request)
            if not self.same_origin(request):
                return PlainTextResponse("Refused: this form comes from another site.",
                                         status_code=403)
            if session is None or not session.operator:
                return PlainTextResponse("Refused: log in first (/login).", status_code=403)
            form = await request.form()
            if not session.csrf_ok(form.get("csrf") or request.headers.get("x-csrf-token")):
                return PlainTextResponse(
                    "Refused: the form's security token is missing or stale; reload the page.",
                    status_code=403)
            return await handler(request, session)
        return guarded
