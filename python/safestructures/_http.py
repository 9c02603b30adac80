"""Reads over HTTP(S) that a hostile server cannot make unbounded: fsspec's HTTP filesystem reads a response's body
whole (``cat_file``, and ``isdir``/``ls``, which GET the page), so a server that ignores a Range header, or sends more
than its Content-Length or Content-Range says, would fill memory. Here each response is read in chunks up to one byte
past what was asked, its status and Content-Range checked, and the connection dropped rather than drained."""

from __future__ import annotations

import asyncio
import errno
import re
import sys
from typing import Any
from urllib.parse import urlparse

__all__ = ["is_http", "http_ask", "http_listing", "http_range"]

#: A Content-Range of one range (numbers of 20 digits at most: a longer one is no size, and int() would refuse it).
_CONTENT_RANGE = re.compile(r"bytes (\d{1,20})-(\d{1,20})/(\d{1,20}|\*)")
#: What one read of a response's body takes at most.
_CHUNK = 1 << 20
#: Seconds a server may send nothing (before its answer's headers, or between two pieces of its body) before the
#: request is refused as stalled. It applies where the filesystem was given no timeout of the caller's (fsspec's
#: ``client_kwargs={"timeout": aiohttp.ClientTimeout(...)}``, or a request option ``timeout``), which then rules
#: alone; aiohttp's own bound on a whole request (300 s by default) holds beside it.
STALL_SECONDS = 30.0


def is_http(fs: Any) -> bool:
    """Whether ``fs`` is fsspec's HTTP(S) filesystem (read here rather than through its own reads). Its module is
    imported once such a filesystem is made; without aiohttp it cannot be, and no other filesystem imports it."""
    http = sys.modules.get("fsspec.implementations.http")
    return http is not None and isinstance(fs, http.HTTPFileSystem)


def http_range(fs: Any, url: str, begin: int, end: int, size: int, name: str) -> bytes:
    """Bytes ``[begin, end)`` of the file at ``url`` of ``size`` bytes, at most ``end - begin`` of them. OSError naming
    ``name`` when the server answers with other bytes than asked (it ignored the range and sends the whole file, its
    Content-Range names other bytes or another size, its Content-Length another count) or more of them; fewer, from a
    server that says no length, come back as they came (the caller checks)."""
    if begin >= end:
        return b""
    from fsspec.asyn import sync

    return sync(fs.loop, _get_range, fs, url, begin, end, size, name)


def http_ask(fs: Any, url: str, question: str) -> Any:
    """fsspec's own answer to ``question`` ("size" or "exists": a HEAD, or what fsspec asks) about ``url``, within the
    stall bound (:data:`STALL_SECONDS`) as the reads here are."""
    from fsspec.asyn import sync

    return sync(fs.loop, _bounded, fs, getattr(fs, f"_{question}")(url), url)


async def _bounded(fs: Any, awaitable: Any, name: str) -> Any:
    stall = _stall(fs)
    try:
        return await _within(stall, awaitable)
    except _Stalled:
        raise _stalled(stall, "(no answer to the request)", name) from None


def http_listing(fs: Any, url: str, limit: int) -> list[str] | None:
    """The links of the page at ``url`` under it, as fsspec's ``ls`` finds them; None where ``url`` is no listing: not
    found, not an HTML page (nor a page of no type), or over ``limit`` bytes (a file, which a load reads by ranges)."""
    from fsspec.asyn import sync

    page = sync(fs.loop, _get_page, fs, url, limit)
    if page is None:
        return None
    links = _links(fs, url, page)
    if not links and url.endswith("/"):
        return http_listing(fs, url.rstrip("/"), limit)
    return links


async def _get_range(fs: Any, url: str, begin: int, end: int, size: int, name: str) -> bytes:
    want = end - begin

    def lie(what: str) -> OSError:
        return OSError(errno.EIO, f"asked for bytes [{begin}, {end}) of a file of {size} bytes, the server {what}", name)

    async with _request(fs, url, name, {"Range": f"bytes={begin}-{end - 1}"}) as response:
        if response.status == 206:
            said = response.headers.get("Content-Range", "")
            found = _CONTENT_RANGE.fullmatch(said.strip())
            if found is None:
                shown = said if len(said) <= 80 else said[:80] + "..."
                raise lie(f"answered with Content-Range {shown!r}, which names no range")
            first, last, total = int(found.group(1)), int(found.group(2)), found.group(3)
            if (first, last) != (begin, end - 1):
                raise lie(f"sent bytes [{first}, {last + 1}) instead")
            if total != "*" and int(total) != size:
                raise lie(f"now says the file holds {total} bytes (it changed, or the server lies)")
        elif response.status != 200 or begin != 0 or want != size:  # the whole file is fine where it was asked for
            raise lie(f"ignored the range (status {response.status}): it does not serve ranges?")
        # A length other than the range's: more would be refused once read, and fewer, where the server then holds the
        # connection open, would be waited for until the request times out.
        if response.content_length is not None and response.content_length != want:
            raise lie(f"says it sends {response.content_length} bytes" + (
                ": the file is shorter than its size said" if response.content_length < want else ""))
        return await _body(response, want, lambda got: lie(f"sent more than {want} bytes ({got} at least)"), name,
                           _stall(fs))


async def _get_page(fs: Any, url: str, limit: int) -> str | None:
    async with _request(fs, url, url, {}, missing_ok=True) as response:
        if response.status == 404:
            return None
        mimetype = response.headers.get("Content-Type", "").partition(";")[0] or None
        if mimetype not in ("text/html", None):
            return None
        try:
            body = await _body(response, limit, lambda _got: _TooLarge(), url, _stall(fs))
        except _TooLarge:
            return None
        return body.decode("utf-8", errors="ignore")  # links are ASCII; anything else in the page is of no use


class _TooLarge(Exception):
    pass


class _request:  # noqa: N801 (used as a function: ``async with _request(...)``)
    """A GET of ``url`` with ``headers``, as the filesystem's own reads make it; on exit the response is closed, so
    that a body left unread (a server sending without end) drops its connection instead of being drained. aiohttp's
    errors and a status of 400 or more come out as OSError naming ``name`` (FileNotFoundError for 404, unless
    ``missing_ok``: the caller looks at the status)."""

    def __init__(self, fs: Any, url: str, name: str, headers: dict[str, str], missing_ok: bool = False) -> None:
        self._fs, self._url, self._name, self._headers, self._missing_ok = fs, url, name, headers, missing_ok
        self._response: Any = None

    async def __aenter__(self) -> Any:
        import aiohttp

        kwargs = dict(self._fs.kwargs)
        # Bytes as stored: a body the server compresses would count other bytes than the file's.
        headers = {**(kwargs.pop("headers", None) or {}), "Accept-Encoding": "identity", **self._headers}
        stall = _stall(self._fs)
        try:
            session = await self._fs.set_session()
            self._response = await _within(stall, session.get(self._fs.encode_url(self._url), headers=headers, **kwargs))
        except _Stalled:
            raise _stalled(stall, "(no answer to the request)", self._name) from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise OSError(errno.EIO, f"the request failed: {_failure(e)}", self._name) from None
        status = self._response.status
        if status >= 400 and not (status == 404 and self._missing_ok):
            self._response.close()
            if status == 404:
                raise FileNotFoundError(errno.ENOENT, "not found (HTTP 404)", self._name)
            raise OSError(errno.EIO, f"the server answered HTTP {status} {self._response.reason}", self._name)
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        self._response.close()


async def _body(response: Any, most: int, too_much: Any, name: str, stall: float | None) -> bytes:
    """The body of ``response``, read until it ends or holds one byte more than ``most``, which raises
    ``too_much(got)``; OSError naming ``name`` when nothing comes for ``stall`` seconds."""
    import aiohttp

    out = bytearray()
    try:
        while len(out) <= most:
            chunk = await _within(stall, response.content.read(min(_CHUNK, most + 1 - len(out))))
            if not chunk:
                return bytes(out)
            out += chunk
    except _Stalled:
        raise _stalled(stall, f"after {len(out)} bytes of its answer", name) from None
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        raise OSError(errno.EIO, f"the transfer failed: {_failure(e)}", name) from None
    raise too_much(len(out))


class _Stalled(Exception):
    pass


def _stalled(stall: Any, when: str, name: str) -> OSError:
    return OSError(errno.EIO, f"the server sent nothing for {stall:g} s {when}: it stalls", name)


def _stall(fs: Any) -> float | None:
    """How long ``fs``'s requests may send nothing (:data:`STALL_SECONDS`); None where the caller gave the filesystem
    a timeout of their own."""
    given = "timeout" in (getattr(fs, "client_kwargs", None) or {}) or "timeout" in (fs.kwargs or {})
    return None if given else STALL_SECONDS


async def _within(seconds: float | None, awaitable: Any) -> Any:
    """``await awaitable``, cancelled with _Stalled when it has not finished in ``seconds`` (None: no bound of ours).
    Its own errors, aiohttp's timeouts among them, come out as they are."""
    if seconds is None:
        return await awaitable
    task = asyncio.ensure_future(awaitable)
    try:
        done, _pending = await asyncio.wait({task}, timeout=seconds)
    except BaseException:
        task.cancel()
        raise
    if not done:
        task.cancel()
        await asyncio.wait({task})  # its cancellation through (what it held released) before the error is raised
        if task.cancelled():
            raise _Stalled
    return task.result()  # what it gave, or raised: one that finished as it was cancelled too


def _failure(e: BaseException) -> str:
    """What failed, for a message: aiohttp's timeout of a whole request says nothing of itself."""
    if isinstance(e, asyncio.TimeoutError) and not str(e):
        return f"{type(e).__name__}: the request took longer than the session's timeout allows"
    return f"{type(e).__name__}: {e}"


def _links(fs: Any, url: str, page: str) -> list[str]:
    """The links of an HTML ``page`` that lie under ``url``, as fsspec's HTTP ``ls`` reads them (its own patterns)."""
    from fsspec.implementations.http import ex, ex2

    found = [match[2] for match in ex.findall(page)]
    if fs.simple_links:
        found = ex2.findall(page) + found
    parts = urlparse(url)
    under = url.rstrip("/") + "/"
    out = set()
    for link in found:
        if link.startswith("/") and len(link) > 1:
            link = f"{parts.scheme}://{parts.netloc}{link}"
        if link.startswith("http"):
            if link.replace("https", "http").startswith(under.replace("https", "http")):  # either scheme, as fsspec's
                out.add(link)
        elif link not in ("..", "../"):
            out.add(under + link.lstrip("/"))
    return sorted(out)
