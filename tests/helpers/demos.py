"""The demo scripts (``demo/*.py``) as modules, for calling their ``main`` / parsers in-process."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_demo(name: str, tag: str = 'test'):
    """``demo/<name>.py`` freshly imported (a new module each call, named after ``tag``)."""
    spec = importlib.util.spec_from_file_location(f'{name}_demo_{tag}',
                                                  os.path.join(ROOT, 'demo', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
