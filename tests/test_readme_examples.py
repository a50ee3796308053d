"""The README's commands: each one is run here, or says why it cannot run offline.

A README command that no test runs is a promise nobody checks. Every command
line of the README's ```bash blocks is classified: those that need what this
machine cannot have (published weights, real data sets, several GPUs, the
reader's own files) match a reason in ``CANNOT_RUN_HERE``; all the others run
as written, from a scratch folder that sees the repository's ``configs``,
``demo`` and ``tools``. Training commands get a two-iteration schedule
appended (``SHORT_SCHEDULE``), and the commands after them name the
checkpoint that schedule writes instead of the final one.
"""
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, 'README.md')

CANNOT_RUN_HERE = [
    (r'ViTamin-L|vitamin_l_|vitamin-l336|owl_l_|iter_368750', 'published ViTamin-L weights, a '
     'trained ViTamin-L model or a real data set'),
    (r'photo\.jpg|other\.jpg|clip\.mp4|\b(owl|seg)\.pth|\bCKPT\b|\bCONFIG\b|/data/',
     "placeholders for the reader's files"),
    (r'demo/app\.py', 'a server that runs until stopped (tests/test_webapp.py drives it)'),
    (r'tools/export_onnx\.py training-free', 'ViTamin-L-336 by default: its weights '
     '(tests/test_export_onnx.py exports tiny models)'),
    (r'^torchrun', 'several processes on GPUs'),
    (r'tools/run_tests\.sh', 'the test suite itself'),
    (r'tools/quickstart\.sh', 'the main job: test_quickstart_runs_offline below'),
    (r'tools/benchmark\.py', 'minutes of measurements (tools/benchmarks/, run by hand)'),
    (r'tools/convert_checkpoint\.py', 'the released reference checkpoints (the converters run '
     'on tiny ones in tests/test_fvit_convert.py and tests/test_fcclip_reference.py)'),
    (r'tools/benchmark_gpu\.sh', 'a GPU (tests/test_benchmark_smoke.py runs it on a CPU, '
     '--tiny)'),
    (r'^pip (install|wheel)', 'installs into the environment (tests/test_package_install.py '
     'builds, installs and runs the wheel in a fresh one)'),
]
SHORT_SCHEDULE = ['train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2',
                  'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']


def readme_commands():
    """Command lines of the README's bash blocks (continuations joined, comments dropped)."""
    with open(README, encoding='utf-8') as f:
        text = f.read()
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', text, re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            line = re.sub(r'\s+#.*$', '', line).strip()
            if line and not line.startswith('#'):
                commands.append(' '.join(line.split()))
    return commands


def _reason(command):
    for pattern, reason in CANNOT_RUN_HERE:
        if re.search(pattern, command):
            return reason
    return None


def runnable():
    return [c for c in readme_commands() if _reason(c) is None]


def test_every_readme_command_is_run_or_explained():
    commands = readme_commands()
    assert len(commands) >= 10
    offline = runnable()
    assert all(c.startswith(('python ', 'vitamin-dense ')) for c in offline), offline
    # what the README promises for the first hour is among what runs here
    assert any('demo/segment.py' in c and '--random-init' in c for c in offline)
    assert any('demo/detect.py' in c and '--random-init' in c for c in offline)
    assert any(c.startswith('python tools/train.py') for c in offline)
    assert any('--show-dir' in c for c in offline)


@pytest.fixture(scope='module')
def scratch(tmp_path_factory):
    folder = tmp_path_factory.mktemp('readme')
    for name in ('configs', 'demo', 'tools'):
        os.symlink(os.path.join(ROOT, name), folder / name)
    return folder


def _trains(command):
    return command.startswith(('python tools/train.py', 'vitamin-dense train'))


def _run(command, cwd):
    argv = shlex.split(command)
    if argv[0] == 'vitamin-dense':  # the installed command is `python -m vitamin_dense`
        argv = ['python', '-m', 'vitamin_dense', *argv[1:]]
    assert argv[0] == 'python'
    if _trains(command):
        argv += ['--cfg-options', *SHORT_SCHEDULE] if '--cfg-options' not in argv else \
            SHORT_SCHEDULE
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True,
                          timeout=900, env=env, cwd=str(cwd))


@pytest.mark.slow
def test_offline_readme_commands_run_as_written(scratch):
    """In README order: the smoke demos, then train -> test -> demo of a tiny config."""
    trained = {}
    for command in runnable():
        for final, short in trained.items():
            command = command.replace(final, short)
        proc = _run(command, scratch)
        assert proc.returncode == 0, f'{command}\n{proc.stderr[-3000:]}'
        assert 'Traceback' not in proc.stderr, command
        if _trains(command):
            config = os.path.splitext(os.path.basename(shlex.split(command)[2]))[0]
            match = re.search(rf'work_dirs/{config}/iter_\d+\.pth', ' '.join(readme_commands()))
            if match:
                trained[match.group(0)] = f'work_dirs/{config}/iter_2.pth'
                assert (scratch / trained[match.group(0)]).is_file()


@pytest.mark.slow
def test_quickstart_runs_offline(tmp_path):
    """tools/quickstart.sh end to end, with a short schedule (the README's own knob)."""
    venv = os.path.dirname(os.path.dirname(sys.executable))  # this test run's environment
    env = dict(os.environ, VITAMIN_DENSE_QUICKSTART_ITERS='4', OMP_NUM_THREADS='1',
               VITAMIN_DENSE_VENV=venv, VITAMIN_DENSE_HOME=os.path.dirname(venv))
    proc = subprocess.run(['bash', os.path.join(ROOT, 'tools', 'quickstart.sh'),
                           str(tmp_path / 'out')], capture_output=True, text=True, timeout=1200,
                          env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'panoptic/PQ=' in proc.stdout
    assert (tmp_path / 'out' / 'synthetic_panoptic.png').is_file()
