"""The web demo: a plain page served by the standard library, models loaded once.

``demo/app.py`` starts it; :class:`DemoModels` holds the models and answers one
request at a time, :func:`make_server` binds the HTTP server.
"""
from .models import DemoModels, Reply, Request, decode_upload
from .server import DemoServer, make_server, serve_in_thread

__all__ = ['DemoModels', 'Request', 'Reply', 'decode_upload', 'DemoServer', 'make_server',
           'serve_in_thread']
