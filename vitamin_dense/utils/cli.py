"""Shared behaviour of the command-line tools: one-line errors, quiet logs.

``run_cli(main)`` runs a tool's ``main`` and turns expected failures (bad
input, missing weights, config typos) into a single ``error: ...`` line and
exit status 2. ``--debug`` (or ``VITAMIN_DENSE_DEBUG=1``) shows the traceback.
"""
from __future__ import annotations

import argparse
import logging
import os
import os.path as osp
import sys
import warnings
from typing import Callable, List, NoReturn, Optional, Sequence

from ..errors import VitaminDenseError

EXIT_USAGE = 2


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, KeyError) and text.startswith(("'", '"')):
        text = text[1:-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return ' '.join(lines) if lines else type(exc).__name__


def _is_config_error(exc: BaseException) -> bool:
    """Errors MMEngine raises for config mistakes (unknown type, bad argument)."""
    text = str(exc)
    return (isinstance(exc, KeyError) and 'registry' in text) or \
        (isinstance(exc, TypeError) and ('unexpected keyword argument' in text
                                         or 'missing' in text and 'required' in text)) or \
        type(exc).__name__ in ('ConfigParsingError',) or \
        isinstance(exc, SyntaxError)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    print(f'error: {message}', file=sys.stderr)
    raise SystemExit(code)


def run_cli(main: Callable[[], Optional[int]]) -> NoReturn:
    """Run ``main`` with one-line error reporting; exits with its return code."""
    debug = '--debug' in sys.argv or os.environ.get('VITAMIN_DENSE_DEBUG') == '1'
    if '--debug' in sys.argv:
        sys.argv.remove('--debug')
    try:
        code = main()
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        raise SystemExit(130)
    except SystemExit:
        raise
    except VitaminDenseError as exc:
        if debug:
            raise
        fail(_one_line(exc))
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        if debug:
            raise
        fail(f'{_one_line(exc)} (run with --debug for the traceback)')
    except Exception as exc:
        if debug or not _is_config_error(exc):
            raise
        fail(f'configuration error: {_one_line(exc)} (check the config or --cfg-options; '
             '--debug shows the traceback)')
    raise SystemExit(code or 0)


def quiet_third_party_logs() -> None:
    """Hide noisy warnings of dependencies that users cannot act on."""
    warnings.filterwarnings('ignore', category=DeprecationWarning, module='torch.jit')
    warnings.filterwarnings('ignore', message='.*torch.jit.*', category=DeprecationWarning)
    warnings.filterwarnings('ignore', message='No pretrained configuration specified')
    for name in ('timm', 'timm.models._builder', 'root'):
        logging.getLogger(name).setLevel(logging.ERROR)



class OneLineArgumentParser(argparse.ArgumentParser):
    """Usage errors as one line (``error: ...``), like every other failure of our CLIs."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f'error: {message} (see --help)\n')


IMAGE_OUTPUT_SUFFIXES = ('.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff')


def output_paths(images: Sequence[str], out: str, tag: str) -> List[str]:
    """Where each input image's picture goes: ``out`` itself when it names one
    image file, else ``out/<stem>_<tag>.png`` with repeated stems numbered."""
    from ..errors import ConfigError
    if out.lower().endswith(IMAGE_OUTPUT_SUFFIXES):
        if len(images) > 1:
            raise ConfigError(f'--out {out} names one file but {len(images)} images were '
                              'given: pass a directory')
        return [out]
    paths, used = [], set()
    for image in images:
        stem = osp.splitext(osp.basename(image))[0] or 'image'
        name, k = f'{stem}_{tag}.png', 2
        while name in used:
            name, k = f'{stem}_{k}_{tag}.png', k + 1
        used.add(name)
        paths.append(osp.join(out, name))
    return paths
