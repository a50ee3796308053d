"""pip install: a wheel built from the source distribution ships the package with its data,
configs, tools and demos, its requirements are ranges this environment satisfies, and the
installed `vitamin-dense` command works from another directory with the installed copy.

Nothing is downloaded: the sdist and the wheel are built without build isolation
(this environment's setuptools), and the wheel goes into a fresh virtual environment
that sees this environment's packages (torch, OpenMMLab) through a ``.pth`` file, but
not the checkout (no PYTHONPATH, no editable finder).
"""
import glob
import os
import os.path as osp
import subprocess
import sys
import sysconfig
import zipfile

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHIPPED = ('configs', 'tools', 'demo')


def _run(cmd, cwd, timeout=300, check=True, env=None):
    proc = subprocess.run([str(c) for c in cmd], cwd=str(cwd), capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check:
        assert proc.returncode == 0, f'{cmd}: {proc.stdout[-2000:]}\n{proc.stderr[-4000:]}'
    return proc


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """(wheel path, fresh venv's python, a directory outside the checkout)."""
    work = tmp_path_factory.mktemp('package')
    # the source distribution, by setuptools' PEP 517 hook (what `python -m build` calls)
    _run([sys.executable, '-c', 'import sys; from setuptools import build_meta; '
          'build_meta.build_sdist(sys.argv[1])', work], cwd=REPO)
    sdist, = glob.glob(str(work / '*.tar.gz'))
    # the wheel, built from the sdist (so MANIFEST.in must carry everything it needs)
    _run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
          '--no-index', '-w', work, sdist], cwd=work)
    wheel, = glob.glob(str(work / '*.whl'))
    venv = work / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', venv], cwd=work)
    python = venv / 'bin' / 'python'
    site = _run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                cwd=work).stdout.strip()
    ours = {sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']}
    with open(osp.join(site, '_project_environment.pth'), 'w') as f:
        f.write('\n'.join(sorted(ours)) + '\n')
    _run([sys.executable, '-m', 'pip', '--python', python, 'install', '-q', '--no-deps',
          '--no-index', '--ignore-installed', wheel], cwd=work)
    elsewhere = work / 'elsewhere'
    elsewhere.mkdir()
    return wheel, python, elsewhere


def _env():
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'VITAMIN_DENSE_LAZY_IMPORT', 'VITAMIN_DENSE_DEBUG')}
    env['OMP_NUM_THREADS'] = '1'
    return env


def _command(built, *args, check=True, timeout=300):
    _, python, elsewhere = built
    return _run([python.parent / 'vitamin-dense', *args], cwd=elsewhere, check=check,
                timeout=timeout, env=_env())


def test_wheel_ships_the_package_data_configs_tools_and_demos(built):
    wheel = built[0]
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = []
    for folder, dirs, files in os.walk(osp.join(REPO, 'vitamin_dense')):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        expected += [osp.relpath(osp.join(folder, f), REPO) for f in files
                     if not f.endswith('.pyc')]
    for top in SHIPPED:
        for folder, dirs, files in os.walk(osp.join(REPO, top)):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            expected += ['vitamin_dense/.mim/' + osp.relpath(osp.join(folder, f), REPO)
                         for f in files if f.endswith('.py')]
    missing = sorted(n.replace(os.sep, '/') for n in expected
                     if n.replace(os.sep, '/') not in names)
    assert not missing, missing
    assert 'vitamin_dense/.mim/configs/ov_seg/vitamin_tiny_synthetic.py' in names
    assert not any('__pycache__' in n or n.startswith('tests/') for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith('/METADATA')))
    requires = [line for line in meta.decode().splitlines() if line.startswith('Requires-Dist')]
    assert any(line.startswith('Requires-Dist: torch>=') for line in requires), requires
    pinned = [r for r in requires if '==' in r.split(';')[0]]
    assert not pinned, pinned   # ranges, not this machine's pins


def test_requirements_are_satisfied_by_this_environment(built):
    """pip resolves the wheel with its OpenMMLab extra offline: every range holds for the
    environment's installed versions (torch 2.13, mmengine 0.10.7, mmdet 3.3, ...)."""
    wheel, python, elsewhere = built
    proc = _run([sys.executable, '-m', 'pip', '--python', python, 'install', '--dry-run',
                 '--no-index', f'{wheel}[openmmlab]'], cwd=elsewhere, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    would = [ln for ln in proc.stdout.splitlines() if ln.startswith('Would install')]
    assert all(p.startswith('vitamin') for w in would for p in w.split()[2:]), would


def test_command_runs_from_another_directory_with_the_installed_copy(built):
    _, python, elsewhere = built
    venv = str(python.parent.parent)
    out = _command(built, '--help').stdout
    assert 'usage: vitamin-dense COMMAND' in out
    for command in ('segment', 'detect', 'train', 'test', 'benchmark', 'convert', 'export'):
        assert f'\n  {command} ' in out, command
    help_text = _command(built, 'train', '--help').stdout
    assert help_text.startswith('usage: vitamin-dense train') and '--work-dir' in help_text
    version = _command(built, '--version').stdout
    assert venv in version and REPO not in version, version
    listing = _command(built, 'configs', 'tiny')
    assert 'ov_seg/vitamin_tiny_synthetic' in listing.stdout.split()
    assert osp.join('vitamin_dense', '.mim', 'configs') in listing.stderr
    assert venv in listing.stderr, listing.stderr
    # a packaged config by its name: resolved (the checkpoint is checked next)
    proc = _command(built, 'test', 'ov_seg/vitamin_tiny_synthetic', 'missing.pth', check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == 'error: checkpoint not found: missing.pth'
    # an unknown name: one line with the close matches
    proc = _command(built, 'train', 'ov_seg/vitamin_tiny_synthetc', check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert 'close matches: ov_seg/vitamin_tiny_synthetic' in lines[0]
    proc = _command(built, 'tarin', check=False)
    assert proc.returncode == 2 and 'did you mean train?' in proc.stderr


def test_installed_package_loads_its_packaged_configs(built):
    """A packaged config and its _base_ chain load from the installed .mim/configs."""
    _, python, elsewhere = built
    code = ('import os\n'
            'os.environ["VITAMIN_DENSE_LAZY_IMPORT"] = "1"  # mmengine only, no torch\n'
            'import vitamin_dense\n'
            'from mmengine.config import Config\n'
            'from vitamin_dense.utils.packaged import resolve_config\n'
            'cfg = Config.fromfile(resolve_config("ov_seg/vitamin_tiny_synthetic"))\n'
            'print(vitamin_dense.__file__)\n'
            'print(cfg.filename)\n'
            'print(cfg.model.type, cfg.train_dataloader.dataset.type)\n')
    package, config, types = _run([python, '-c', code], cwd=elsewhere,
                                  env=_env()).stdout.strip().splitlines()[-3:]
    venv = str(python.parent.parent)
    assert package.startswith(venv) and config.startswith(venv), (package, config)
    assert config.endswith(osp.join('.mim', 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py'))
    assert types.split()[0] == 'FCCLIPSegmentor' and 'Synthetic' in types, types


def test_installed_segment_demo_runs_from_another_directory(built):
    _, _, elsewhere = built
    proc = _command(built, 'segment', '--random-init', '--model', 'ViTamin-Tiny',
                    '--vocab', 'cat,grass,sky', '--out', 'seg.png', '--device', 'cpu')
    assert (elsewhere / 'seg.png').stat().st_size > 0
    assert any(name in proc.stdout for name in ('cat', 'grass', 'sky')), proc.stdout + proc.stderr
