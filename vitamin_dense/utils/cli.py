"""Shared behaviour of the command-line tools: one-line errors, quiet logs, demo flags.

``run_cli(main)`` runs a tool's ``main`` and turns expected failures (bad
input, missing weights, config typos) into a single ``error: ...`` line and
exit status 2. ``--debug`` (or ``VITAMIN_DENSE_DEBUG=1``) shows the traceback.

The demos (``demo/segment.py``, ``demo/detect.py``) share one set of flags with
one meaning each, documented once (:data:`DEMO_FLAGS_HELP`):
:func:`add_demo_arguments` adds them to a parser and :func:`check_demo_arguments`
checks them (files, ranges, combinations) before any model is built.

This module imports only the standard library and :mod:`vitamin_dense.errors`,
so that ``--help`` and argument / file errors answer before torch, open_clip
or OpenMMLab are imported (entry points set ``VITAMIN_DENSE_LAZY_IMPORT=1``
before their first ``vitamin_dense`` import, see :mod:`vitamin_dense`, and call
:func:`load_toolkit` once the arguments are checked).
"""
from __future__ import annotations

import argparse
import logging
import os
import os.path as osp
import sys
import warnings
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence

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


def _component_built_from_config(exc: BaseException) -> Optional[str]:
    """The class whose constructor raised ``exc`` while MMEngine built it from a config.

    A value error in a config (``lr='abc'``, a negative size) surfaces as a
    ``TypeError`` / ``ValueError`` inside the constructor that MMEngine's
    ``build_from_cfg`` called; the frame right below ``build_from_cfg`` names it.
    """
    if not isinstance(exc, (TypeError, ValueError, AssertionError, KeyError)):
        return None
    tb = exc.__traceback__
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        where = code.co_filename.replace(os.sep, '/')
        if code.co_name == 'build_from_cfg' and \
                where.endswith('mmengine/registry/build_functions.py'):
            callee = tb.tb_next
            if callee is not None:
                frame = callee.tb_frame
                owner = frame.f_locals.get('self', frame.f_locals.get('cls'))
                if owner is not None:
                    found = owner.__name__ if isinstance(owner, type) else type(owner).__name__
                else:
                    found = frame.f_code.co_name
        tb = tb.tb_next
    return found


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
        if debug:
            raise
        if _is_config_error(exc):
            fail(f'configuration error: {_one_line(exc)} (check the config or --cfg-options; '
                 '--debug shows the traceback)')
        component = _component_built_from_config(exc)
        if component is None:
            raise
        fail(f'configuration error: building {component}: {_one_line(exc)} (check its '
             'values in the config or --cfg-options; --debug shows the traceback)')
    raise SystemExit(code or 0)


def quiet_third_party_logs() -> None:
    """Hide noisy warnings of dependencies that users cannot act on."""
    warnings.filterwarnings('ignore', category=DeprecationWarning, module='torch.jit')
    warnings.filterwarnings('ignore', message='.*torch.jit.*', category=DeprecationWarning)
    warnings.filterwarnings('ignore', message='No pretrained configuration specified')
    for name in ('timm', 'timm.models._builder', 'root'):
        logging.getLogger(name).setLevel(logging.ERROR)
    # our own warnings (a dropped synonym, a truncated class name) must not inherit the
    # root logger's ERROR: the demos also run in-process (Inferencer, tests, the command)
    ours = logging.getLogger('vitamin_dense')
    if ours.level == logging.NOTSET:
        ours.setLevel(logging.WARNING)



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


# ----------------------------------------------------------------- demo flags
SAMPLE_IMAGE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'assets', 'sample.jpg')
DEFAULT_MODEL = 'ViTamin-L-336'
DEFAULT_WEIGHTS = 'datacomp1b'

DEMO_FLAGS_HELP = """\
flags shared by demo/segment.py and demo/detect.py (same names, same meanings):
  IMAGE|DIR ...        images, or directories of images (--recursive: also their
                       sub-directories), or one video (--frame-stride N: every N-th
                       frame; an annotated video and per-frame JSON are written);
                       default: the bundled sample photo
  --vocab CLASSES      what to find: "cat,dog", "kitten, cat; dog" (with a ';',
                       commas join synonyms: 2 classes), dataset:NAME, or a file
                       with one class per line (alias: --texts)
  --checkpoint CKPT    a model trained with tools/train.py (holds every weight, so
                       nothing is downloaded); its config is read from it
  --config CFG         the config it was trained with, when the checkpoint does
                       not carry one (or to override it)
  --model NAME         ViTamin variant of a model without checkpoint (default
                       ViTamin-L-336; ViTamin-Tiny for smoke tests)
  --weights W          its CLIP weights: open_clip tag (datacomp1b), hf-hub:ORG/REPO
                       or a local .safetensors/.pt/.bin file
  --random-init        random weights everywhere (offline smoke run; outputs
                       mean nothing)
  --threshold T        predictions scoring below T are not shown nor saved: boxes,
                       instances and panoptic segments by their score, pixels by
                       their best class probability ("none of these")
                       (alias: --pred-score-thr; default: per demo, see above)
  --out PATH           output directory, or one .png/.jpg file for one image
  --save-pred          also write the predictions next to each picture: JSON
                       (boxes, or shares, segments and instances) and, for
                       segmentation, the label map as a 16-bit PNG
                       (aliases: --json, --save-labels)
  --pred-format F      json (the files above, default), coco (COCO files for all the
                       images in --out's folder: coco.bbox.json boxes, coco.segm.json
                       RLE instances, coco.panoptic.json + coco.panoptic/ PNGs for
                       panoptic and semantic labels, coco.info.json images and
                       categories; implies --save-pred) or both
  --device D           cpu, cuda, cuda:N or auto
  --verbose / --debug  model set-up logs / tracebacks instead of one-line errors
"""


PRED_FORMATS = ('json', 'coco', 'both')


def add_demo_arguments(parser: argparse.ArgumentParser, tag: str) -> Dict[str, Any]:
    """Add the shared demo flags (:data:`DEMO_FLAGS_HELP`) to ``parser``.

    ``tag`` names the demo's outputs (``<stem>_<tag>.png``) and default folder
    (``outputs/<tag>``). Returns the argument groups (``'what'``, ``'model'``,
    ``'output'``) so that a demo adds its own flags beside the shared ones.
    """
    parser.add_argument('inputs', nargs='*', metavar='IMAGE|DIR',
                        help='images or directories of images (default: the bundled sample '
                             'photo); JPEG, PNG, TIFF, WebP..., grayscale, RGBA, 16-bit and '
                             'EXIF-rotated images are handled')
    parser.add_argument('--recursive', action='store_true',
                        help='also look for images in sub-directories of directory arguments')
    parser.add_argument('--frame-stride', type=int, default=1, metavar='N',
                        help='a video as IMAGE: every N-th frame (default: every frame)')
    what = parser.add_argument_group('what to find')
    what.add_argument('--vocab', '--texts', dest='vocab', metavar='CLASSES',
                      help='class names: "cat,dog", "kitten, cat; dog", dataset:NAME or a file')
    model = parser.add_argument_group('model')
    model.add_argument('--checkpoint', metavar='CKPT',
                       help='trained model (tools/train.py output; read weights-only)')
    model.add_argument('--config', metavar='CFG',
                       help='its training config (default: the one stored in the checkpoint)')
    model.add_argument('--model', default=None, metavar='NAME',
                       help=f'ViTamin variant without a checkpoint (default: {DEFAULT_MODEL})')
    model.add_argument('--weights', default=None, metavar='W',
                       help=f'CLIP weights without a checkpoint (default: {DEFAULT_WEIGHTS}): '
                            "an open_clip tag, 'hf-hub:ORG/REPO' or a local file")
    model.add_argument('--random-init', action='store_true',
                       help='random weights everywhere (smoke runs; outputs mean nothing)')
    model.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto')
    output = parser.add_argument_group('output')
    output.add_argument('--threshold', '--pred-score-thr', dest='threshold', type=float,
                        default=None, metavar='T',
                        help='predictions scoring below T are not shown nor saved')
    output.add_argument('--out', default=osp.join('outputs', tag), metavar='PATH',
                        help='output directory, or a .png/.jpg file for a single image '
                             '(default: %(default)s)')
    output.add_argument('--save-pred', '--json', '--save-labels', dest='save_pred',
                        action='store_true',
                        help='also write the predictions (JSON; label map PNG for segmentation)')
    output.add_argument('--pred-format', choices=PRED_FORMATS, default='json',
                        help='json: per-image files; coco: COCO result files of all images '
                             '(implies --save-pred); both (default: %(default)s)')
    parser.add_argument('--verbose', action='store_true', help='log model set-up details')
    parser.add_argument('--debug', action='store_true',
                        help='show tracebacks instead of one-line errors')
    return dict(what=what, model=model, output=output)


def check_demo_arguments(args: argparse.Namespace, allow_config_only: bool = False) -> bool:
    """One-line errors for inconsistent or missing shared flags, before any model loads.

    Returns whether a trained model (``--checkpoint``) is used. ``allow_config_only``:
    ``--config`` without ``--checkpoint`` is allowed with ``--random-init``
    (the config's architecture on random weights).
    """
    from ..errors import ConfigError, WeightsError
    if getattr(args, 'pred_format', 'json') != 'json':
        args.save_pred = True
    if args.frame_stride < 1:
        raise ConfigError(f'--frame-stride {args.frame_stride} must be at least 1')
    if args.threshold is not None and not 0.0 <= args.threshold < 1.0:
        raise ConfigError(f'--threshold {args.threshold} is not a score in [0, 1): predictions '
                          'scoring below it are not shown')
    if args.config:
        from .packaged import resolve_config
        args.config = resolve_config(args.config)  # a file, or a packaged config's name
    if args.checkpoint and not osp.isfile(args.checkpoint):
        raise WeightsError(f'checkpoint not found: {args.checkpoint}')
    if args.checkpoint:
        from .file_kind import describe_non_checkpoint
        kind = describe_non_checkpoint(args.checkpoint)
        if kind is not None:
            raise WeightsError(f'{args.checkpoint} is not a PyTorch checkpoint ({kind}); pass '
                               'the .pth file tools/train.py wrote')
        given = [flag for flag, used in (('--random-init', args.random_init),
                                         ('--model', args.model), ('--weights', args.weights))
                 if used]
        if given:
            raise ConfigError(f"{', '.join(given)} do(es) not apply with --checkpoint: the "
                              'checkpoint holds every weight and its config names the model')
        return True
    if args.config and not (allow_config_only and args.random_init):
        raise ConfigError('--config needs --checkpoint (the weights trained with it)' +
                          (', or --random-init' if allow_config_only else '') +
                          '; leave --config out for a model without checkpoint')
    if args.random_init and args.weights:
        raise ConfigError('--weights and --random-init exclude each other')
    return False


def collect_images(paths: Sequence[str], recursive: bool = False,
                   default: Optional[str] = SAMPLE_IMAGE) -> List[str]:
    """Expand directories into their image files; keep files (decoded later) in order.

    No path: ``[default]`` (the bundled sample photo). A missing path or a
    directory without images is a one-line error.
    """
    from ..errors import ImageReadError
    if not paths:
        if default is None:
            raise ImageReadError('no image given')
        return [default]
    images: List[str] = []
    for path in paths:
        if osp.isdir(path):
            found = _list_images(path, recursive)
            if not found:
                raise ImageReadError(f'directory {path} holds no image files (JPEG, PNG, '
                                     f'TIFF, ...){"" if recursive else "; try --recursive"}')
            images += found
        elif not osp.exists(path):
            raise ImageReadError(f'image not found: {path}')
        else:
            images.append(path)
    return images


def _list_images(directory: str, recursive: bool) -> List[str]:
    from .image_io import list_images
    return list_images(directory, recursive=recursive)


def check_vocabulary_spec(spec: Optional[str]) -> None:
    """Check a ``--vocab`` value without loading any model or data set package.

    Strings and files are parsed in full (every grammar error); for
    ``dataset:NAME`` only the name is checked (its class list is read later).
    """
    from ..errors import VocabularyError
    if spec is None:
        return
    text = spec.strip()
    if text.lower().startswith('dataset:'):
        from ..text.vocabulary import builtin_vocabularies
        from .. import datasets  # noqa: F401  (registers the dataset:NAME vocabularies)
        key = text.split(':', 1)[1].strip().lower()
        known = builtin_vocabularies()
        if key not in known:
            raise VocabularyError(f"unknown data set vocabulary '{key}'; known: "
                                  f"{', '.join(known) or 'none'}")
        return
    from ..text.vocabulary import parse_vocabulary
    parse_vocabulary(spec)


def load_toolkit() -> None:
    """Import and register every part of vitamin-dense (after the arguments are checked)."""
    from ..registry import register_all_modules
    register_all_modules(init_default_scope=False)
