"""--help and argument / vocabulary / file errors answer before the heavy imports.

Each command runs in a fresh interpreter; after it exits (help or one-line
error) the test looks at which modules were imported: none of torch,
open_clip, timm or OpenMMLab may be (speed itself is measured by
``tools/benchmark.py startup``, not here).
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ('torch', 'open_clip', 'timm', 'mmcv', 'mmdet', 'mmseg')


def _run(script, *args, cwd=ROOT):
    code = (
        'import runpy, sys\n'
        f'sys.argv = [{script!r}] + {list(args)!r}\n'
        'try:\n'
        f'    runpy.run_path({os.path.join(ROOT, script)!r}, run_name="__main__")\n'
        'except SystemExit as exc:\n'
        '    status = exc.code\n'
        'else:\n'
        '    status = 0\n'
        f'loaded = [m for m in {HEAVY!r} if m in sys.modules]\n'
        'print("HEAVY:" + ",".join(loaded), file=sys.stderr)\n'
        'sys.exit(status)\n')
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def _heavy(proc):
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith('HEAVY:')][-1]
    return [m for m in line[len('HEAVY:'):].split(',') if m]


@pytest.mark.parametrize('script', ['demo/segment.py', 'demo/detect.py', 'tools/train.py',
                                    'tools/test.py'])
def test_help_imports_nothing_heavy(script):
    proc = _run(script, '--help')
    assert proc.returncode == 0, proc.stderr
    assert 'usage:' in proc.stdout
    assert _heavy(proc) == [], proc.stderr


@pytest.mark.parametrize('script,args,message', [
    ('demo/segment.py', ['--vocab', 'cat,,dog'], 'empty class name'),
    ('demo/segment.py', ['--vocab', 'cat, Cat'], "'Cat' appears"),
    ('demo/segment.py', ['--vocab', 'dataset:ade151'], "unknown data set vocabulary 'ade151'"),
    ('demo/segment.py', ['missing.jpg', '--vocab', 'cat'], 'image not found: missing.jpg'),
    ('demo/segment.py', ['--vocab', 'cat', '--threshold', '2'], '--threshold 2.0'),
    ('demo/detect.py', ['--vocab', 'cat', '--checkpoint', 'README.md'],
     'README.md is not a PyTorch checkpoint'),
    ('demo/detect.py', ['--vocab', 'cat'], 'needs trained weights'),
    ('demo/detect.py', ['--max-detections', 'many'], 'invalid int value'),
    ('tools/test.py', ['missing.py', 'x.pth'], 'config file not found'),
    ('tools/test.py', ['configs/ov_seg/vitamin_tiny_synthetic.py', 'README.md'],
     'not a PyTorch checkpoint'),
    ('tools/train.py', ['missing.py'], 'config file not found'),
])
def test_input_errors_answer_before_heavy_imports(script, args, message):
    proc = _run(script, *args)
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error:')]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert _heavy(proc) == [], proc.stderr


def test_deferred_import_still_registers_everything_for_the_work():
    """After the checks the entry points load the toolkit: the registries are complete, and
    a child process importing vitamin_dense registers everything as usual."""
    code = ('import os, sys\n'
            'os.environ["VITAMIN_DENSE_LAZY_IMPORT"] = "1"\n'
            'import vitamin_dense\n'
            'assert "VITAMIN_DENSE_LAZY_IMPORT" not in os.environ\n'
            'assert "torch" not in sys.modules\n'
            'from vitamin_dense.utils.cli import load_toolkit\n'
            'load_toolkit()\n'
            'from vitamin_dense.registry import DATASETS, HOOKS, MODELS\n'
            'for reg, name in ((MODELS, "TextClassifier"), (MODELS, "OwlDetector"),\n'
            '                  (HOOKS, "DenseVisualizationHook"),\n'
            '                  (DATASETS, "SyntheticPanopticDataset")):\n'
            '    assert name in reg.module_dict, name\n'
            'print("ok")\n')
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == 'ok', proc.stderr
