"""The `vitamin-dense` command in the checkout: config names, dispatch to the scripts, fast help.

The installed wheel's command is tested in test_package_install.py.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest

from vitamin_dense.errors import ConfigError
from vitamin_dense.utils.packaged import (config_root, list_configs, packaged_config,
                                          resolve_config, resource_root)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
HEAVY = ('torch', 'open_clip', 'timm', 'mmcv', 'mmdet', 'mmseg', 'mmengine')
TINY = osp.join(ROOT, 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py')


def test_the_checkout_is_the_resource_root():
    assert resource_root() == ROOT and config_root() == osp.join(ROOT, 'configs')
    names = list_configs()
    assert 'ov_seg/vitamin_tiny_synthetic' in names and 'ov_seg/eval/vitamin_l_ade20k_150' in names
    assert not any(n.startswith('_base_') for n in names)


@pytest.mark.parametrize('name', ['ov_seg/vitamin_tiny_synthetic', 'ov_seg/vitamin_tiny_synthetic.py',
                                  'configs/ov_seg/vitamin_tiny_synthetic.py',
                                  'vitamin_tiny_synthetic'])
def test_packaged_config_names(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from any directory
    assert resolve_config(name) == TINY
    assert packaged_config(name) == TINY


def test_a_file_that_exists_is_used_as_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    own = tmp_path / 'configs' / 'ov_seg' / 'vitamin_tiny_synthetic.py'
    own.parent.mkdir(parents=True)
    own.write_text('x = 1\n')
    assert resolve_config('configs/ov_seg/vitamin_tiny_synthetic.py') == \
        'configs/ov_seg/vitamin_tiny_synthetic.py'
    assert packaged_config('configs/ov_seg/vitamin_tiny_synthetic.py') == TINY


def test_unknown_names_list_close_matches():
    with pytest.raises(ConfigError) as info:
        resolve_config('ov_seg/vitamin_tiny_synthetc')
    text = str(info.value)
    assert text.startswith('config file not found:') and '\n' not in text
    assert 'close matches: ov_seg/vitamin_tiny_synthetic' in text
    with pytest.raises(ConfigError, match='close matches: ov_det/owl_vitamin_l_ovcoco'):
        resolve_config('owl_vitamin_l_ovcooc')       # a typo in the name alone
    with pytest.raises(ConfigError, match='none close'):
        resolve_config('nothing/like/this')
    with pytest.raises(ConfigError, match='neither a file'):
        resolve_config('../configs/ov_seg/vitamin_tiny_synthetic')


def test_load_config_takes_a_packaged_name(tmp_path, monkeypatch):
    from vitamin_dense.engine.config import load_config
    monkeypatch.chdir(tmp_path)
    cfg = load_config('ov_seg/vitamin_tiny_synthetic', {'train_cfg.max_iters': 3})
    assert cfg.filename == TINY and cfg.train_cfg.max_iters == 3


def _command(*args, cwd):
    """`vitamin-dense ARGS` from the checkout, then which heavy modules it imported."""
    code = ('import sys\n'
            f'sys.argv = ["vitamin-dense"] + {list(args)!r}\n'
            'from vitamin_dense.commands import console_main\n'
            'try:\n'
            '    console_main()\n'
            'except SystemExit as exc:\n'
            '    status = exc.code\n'
            f'print("HEAVY:" + ",".join(m for m in {HEAVY!r} if m in sys.modules), '
            'file=sys.stderr)\n'
            'sys.exit(status)\n')
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop('VITAMIN_DENSE_LAZY_IMPORT', None)
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)
    heavy = [ln for ln in proc.stderr.splitlines() if ln.startswith('HEAVY:')][-1][6:]
    return proc, [m for m in heavy.split(',') if m]


@pytest.mark.parametrize('args,out', [
    (['--help'], 'usage: vitamin-dense COMMAND'),
    (['train', '--help'], 'usage: vitamin-dense train'),
    (['test', '--help'], 'usage: vitamin-dense test'),
    (['segment', '--help'], 'usage: vitamin-dense segment'),
    (['detect', '--help'], 'usage: vitamin-dense detect'),
])
def test_help_answers_without_heavy_imports(args, out, tmp_path):
    proc, heavy = _command(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(out) and heavy == [], (proc.stdout[:200], heavy)


@pytest.mark.parametrize('args,message', [
    (['tarin'], "unknown command 'tarin': did you mean train?"),
    (['train', 'ov_seg/vitamin_tiny_synthetc'], 'close matches: ov_seg/vitamin_tiny_synthetic'),
    (['test', 'ov_seg/vitamin_tiny_synthetic', 'missing.pth'], 'checkpoint not found: missing.pth'),
    (['segment', '--vocab', 'cat,,dog'], 'empty class name'),
    (['configs', '--all'], 'configs takes words'),
])
def test_errors_are_one_line_before_heavy_imports(args, message, tmp_path):
    proc, heavy = _command(*args, cwd=tmp_path)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error:')]
    assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], proc.stderr
    assert heavy == [], heavy


def test_configs_lists_names(tmp_path):
    proc, _ = _command('configs', 'ov_det', 'tiny', cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.split() == ['ov_det/fvit_vitamin_tiny_synthetic',
                                   'ov_det/owl_vitamin_tiny_synthetic']
    assert f'2 configs in {osp.join(ROOT, "configs")}' in proc.stderr


def test_python_dash_m_is_the_same_command(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, '-m', 'vitamin_dense', 'train', '--help'],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith('usage: vitamin-dense train')


@pytest.mark.slow  # an end-to-end run in fresh processes (bash tools/run_tests.sh --all)
def test_plain_import_still_registers_everything():
    """Only the command defers registration: `import vitamin_dense` elsewhere registers."""
    code = ('import sys\n'
            'sys.argv = ["some_script.py", "-m", "vitamin_dense"]\n'
            'import vitamin_dense\n'
            'assert not vitamin_dense._DEFERRED\n'
            'assert "torch" in sys.modules\n')
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop('VITAMIN_DENSE_LAZY_IMPORT', None)
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
