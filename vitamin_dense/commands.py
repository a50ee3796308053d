"""The ``vitamin-dense`` command: one entry point for the demos and tools, from any directory.

    vitamin-dense segment photo.jpg --vocab "cat,dog" --model ViTamin-Tiny --random-init
    vitamin-dense train ov_seg/vitamin_tiny_synthetic --work-dir runs/seg
    vitamin-dense configs tiny

Each subcommand runs the same script as ``python demo/<x>.py`` / ``python
tools/<x>.py`` would, with the same flags: the scripts of this installation
(the checkout's, or the copies a wheel ships in ``vitamin_dense/.mim/``, see
:mod:`vitamin_dense.utils.packaged`), executed in this process as
``__main__``. Nothing of their logic is repeated here, so a change to a
script is a change to its subcommand. Config arguments accept a packaged
config's name (``ov_seg/vitamin_tiny_synthetic``) as well as a path.

The console script and ``python -m vitamin_dense`` import the package with its
registration deferred (see :mod:`vitamin_dense`): ``--help`` and argument
errors of the demos, ``train`` and ``test`` answer before torch is imported,
as the scripts do when run directly.
"""
from __future__ import annotations

import difflib
import os.path as osp
import sys
import types
from typing import List, Optional, Sequence

from .utils.cli import EXIT_USAGE, fail
from .version import __version__

#: subcommand -> (script under the resource root, one-line help)
COMMANDS = {
    'segment': ('demo/segment.py', 'segment images, folders or videos (training-free by '
                'default, or a trained FC-CLIP checkpoint)'),
    'detect': ('demo/detect.py', 'detect objects with a trained OWL or Sliding F-ViT '
               'checkpoint (text or image-exemplar queries)'),
    'app': ('demo/app.py', 'the web demo (a local page: upload, classes, task)'),
    'train': ('tools/train.py', 'train a model from a config (MMDetection conventions)'),
    'test': ('tools/test.py', 'evaluate a checkpoint with a config'),
    'benchmark': ('tools/benchmark.py', 'speed and memory figures (backbone, segmentation, '
                  'detection, finetune, startup)'),
    'convert': ('tools/convert_checkpoint.py', 'convert a released reference checkpoint '
                '(fcclip, fvit) into ours'),
    'export': ('tools/export_onnx.py', 'export a model to ONNX graphs checked against PyTorch'),
    'make-synthetic': ('tools/make_synthetic.py', 'generate the synthetic shapes data set'),
}
BUILTIN = {'configs': 'list the packaged configs (those whose name contains every WORD given)'}


def usage() -> str:
    width = max(map(len, [*COMMANDS, *BUILTIN]))
    lines = [f'usage: vitamin-dense COMMAND [ARGS ...]   (vitamin-dense {__version__})', '',
             'Open-vocabulary detection and segmentation on the ViTamin CLIP image tower.', '',
             'commands:']
    lines += [f'  {name:<{width}}  {text}' for name, (_, text) in COMMANDS.items()]
    lines += [f'  {name:<{width}}  {text}' for name, text in BUILTIN.items()]
    lines += ['', '`vitamin-dense COMMAND --help` lists the options of a command. A CONFIG (train,',
              'test, --config) is a file, or a packaged config by name, e.g.',
              '`vitamin-dense train ov_seg/vitamin_tiny_synthetic`.']
    return '\n'.join(lines)


def list_configs_command(words: Sequence[str]) -> int:
    """``vitamin-dense configs [WORD ...]``: packaged config names, one a line."""
    from .utils.packaged import config_root, list_configs
    if any(w.startswith('-') and w not in ('-h', '--help') for w in words):
        fail(f"configs takes words to filter by, not options: {' '.join(words)}")
    if any(w in ('-h', '--help') for w in words):
        print(f'usage: vitamin-dense configs [WORD ...]\n\n{BUILTIN["configs"]}.')
        return 0
    names = [n for n in list_configs() if all(w.lower() in n.lower() for w in words)]
    print('\n'.join(names))
    print(f'{len(names)} configs in {config_root()}', file=sys.stderr)
    return 0 if names else 1


def run_script(command: str, args: Sequence[str]) -> int:
    """Run the script behind ``command`` as ``__main__`` with ``args`` (its own exit)."""
    from .utils.packaged import script_path
    path = script_path(COMMANDS[command][0])
    with open(path, encoding='utf-8') as f:
        source = f.read()
    if 'VITAMIN_DENSE_LAZY_IMPORT' not in source:  # the script expects `import vitamin_dense` to register everything
        from .registry import register_all_modules
        register_all_modules(init_default_scope=False)
    # As `python SCRIPT ARGS` would, but with argparse's prog "vitamin-dense COMMAND"
    # (runpy.run_path would set sys.argv[0] to the script's path).
    sys.argv = [f'vitamin-dense {command}', *args]
    module = types.ModuleType('__main__')
    module.__file__ = path
    code = compile(source, path, 'exec')
    saved = sys.modules.get('__main__')
    sys.modules['__main__'] = module
    try:
        exec(code, module.__dict__)
    finally:
        if saved is not None:
            sys.modules['__main__'] = saved
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(usage(), file=sys.stderr)
        return EXIT_USAGE
    command, rest = args[0], args[1:]
    if command in ('-h', '--help', 'help'):
        print(usage())
        return 0
    if command in ('-V', '--version'):
        print(f'vitamin-dense {__version__} ({osp.dirname(osp.abspath(__file__))})')
        return 0
    if command in BUILTIN:
        return list_configs_command(rest)
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, [*COMMANDS, *BUILTIN], n=2, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ''
        fail(f"unknown command '{command}': {hint}commands: {', '.join([*COMMANDS, *BUILTIN])}")
    return run_script(command, rest)


def console_main() -> None:
    """The ``vitamin-dense`` console script (and ``python -m vitamin_dense``)."""
    import os
    from .utils.cli import run_cli
    if '--debug' in sys.argv:  # run_cli drops the flag: let the script's own run_cli see it too
        os.environ['VITAMIN_DENSE_DEBUG'] = '1'
    run_cli(main)


__all__ = ['COMMANDS', 'main', 'console_main', 'run_script', 'usage']
