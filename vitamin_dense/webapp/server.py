"""A small HTTP server for the web demo (standard library only, nothing fetched from a CDN).

Routes:

* ``GET /``: the page (:mod:`vitamin_dense.webapp.page`: HTML, CSS and script inline);
* ``GET /api/info``: the models and tasks this server answers, the example images;
* ``GET /examples/NAME``: an example image;
* ``POST /api/predict?task=&model=&vocab=&threshold=&example=``: the body is the
  uploaded image (raw bytes; none with ``example=``); the answer is JSON with
  the picture (PNG data URL), the legend rows and a record to download, or
  ``{"ok": false, "error": "one line"}`` with status 400.

Requests are handled in threads; :class:`~vitamin_dense.webapp.models.DemoModels`
serialises the model calls. Gradio was considered (the ecosystem's convention)
and not used: its page loads web fonts from a CDN by default, it pulls a large
dependency tree (FastAPI, uvicorn, pandas, ...) into an environment that must
install offline-capable from the package index alone, and a plain page is
enough for one form and one result.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Optional, Tuple
from urllib.parse import parse_qs, urlparse

from ..errors import ConfigError, VitaminDenseError
from .models import DemoModels, Request, decode_upload
from .page import PAGE

logger = logging.getLogger(__name__)

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'assets',
                      'sample.jpg')
DEFAULT_MAX_UPLOAD_MB = 20.0


class DemoServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` holding the demo's models and settings."""

    daemon_threads = True

    def __init__(self, address: Tuple[str, int], models: DemoModels,
                 examples: Optional[Dict[str, str]] = None,
                 max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB):
        super().__init__(address, DemoHandler)
        self.models = models
        self.examples = dict(examples if examples is not None else {'sample.jpg': SAMPLE})
        self.max_upload_bytes = int(max_upload_mb * 2 ** 20)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f'http://{host}:{port}/'


class DemoHandler(BaseHTTPRequestHandler):
    server: DemoServer
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):  # route the access log to logging
        logger.info('%s %s', self.address_string(), fmt % args)

    # ------------------------------------------------------------ helpers
    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-store')
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data) -> None:
        self._send(status, json.dumps(data).encode(), 'application/json')

    def _error(self, message: str, status: int = HTTPStatus.BAD_REQUEST) -> None:
        self._json(status, {'ok': False, 'error': message})

    # ------------------------------------------------------------- routes
    def do_GET(self):  # noqa: N802 - http.server API
        url = urlparse(self.path)
        if url.path in ('/', '/index.html'):
            return self._send(200, PAGE.encode(), 'text/html; charset=utf-8')
        if url.path == '/api/info':
            return self._json(200, {'models': self.server.models.choices(),
                                    'describe': self.server.models.describe,
                                    'examples': sorted(self.server.examples)})
        if url.path.startswith('/examples/'):
            path = self.server.examples.get(url.path[len('/examples/'):])
            if path is None:
                return self._error('no such example', HTTPStatus.NOT_FOUND)
            with open(path, 'rb') as f:
                data = f.read()
            kind = 'image/png' if path.lower().endswith('.png') else 'image/jpeg'
            return self._send(200, data, kind)
        return self._error('not found', HTTPStatus.NOT_FOUND)

    def do_POST(self):  # noqa: N802
        url = urlparse(self.path)
        if url.path != '/api/predict':
            return self._error('not found', HTTPStatus.NOT_FOUND)
        try:
            length = int(self.headers.get('Content-Length') or 0)
        except ValueError:
            length = -1
        if length < 0:
            return self._error('bad Content-Length')
        if length > self.server.max_upload_bytes:
            self._discard(length)
            return self._error(f'the image is {length / 2 ** 20:.1f} MB; the limit is '
                               f'{self.server.max_upload_bytes / 2 ** 20:.0f} MB',
                               HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        body = self.rfile.read(length) if length else b''
        try:
            request = self._request(parse_qs(url.query), body)
            reply = self.server.models.predict(request)
        except VitaminDenseError as exc:
            return self._error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except Exception as exc:  # a bug must not take the server down: log it, answer 500
            logger.exception('request failed')
            return self._error(f'internal error ({type(exc).__name__}): see the server log',
                               HTTPStatus.INTERNAL_SERVER_ERROR)
        return self._json(200, reply.to_json())

    def _discard(self, length: int, cap: int = 256 * 2 ** 20) -> None:
        """Read and drop a refused body (so the client reads the answer), up to ``cap``."""
        if length > cap:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _request(self, query: Dict[str, list], body: bytes) -> Request:
        def one(key: str, default: str = '') -> str:
            return query.get(key, [default])[0].strip()

        task = one('task', 'semantic')
        model = one('model', 'training-free')
        threshold = one('threshold')
        value = None
        if threshold:
            try:
                value = float(threshold)
            except ValueError:
                raise ConfigError(f"threshold '{threshold}' is not a number") from None
        example = one('example')
        if example:
            path = self.server.examples.get(example)
            if path is None:
                raise ConfigError(f"no example image '{example}'")
            from ..utils.image_io import read_image
            image, source = read_image(path), example
        else:
            image, source = decode_upload(body, one('name') or 'the upload'), \
                one('name') or 'upload'
        vocab = one('vocab')
        if not vocab:
            raise ConfigError('type the classes to find, e.g. "cat, dog, sofa"')
        return Request(image=image, vocabulary=vocab, task=task, model=model,
                       threshold=value, source=source)


def make_server(models: DemoModels, host: str = '127.0.0.1', port: int = 7860,
                **options) -> DemoServer:
    """Bind the demo server (``port=0`` picks a free port; see ``server.url``)."""
    return DemoServer((host, port), models, **options)


def serve_in_thread(server: DemoServer) -> threading.Thread:
    """Run ``server`` in a daemon thread (tests, notebooks); stop with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, daemon=True, name='demo-server')
    thread.start()
    return thread


__all__ = ['DemoServer', 'make_server', 'serve_in_thread', 'SAMPLE', 'DEFAULT_MAX_UPLOAD_MB']
