"""demo/segment.py end to end, in sub-processes (started together to save time)."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import cv2

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, 'demo', 'segment.py')
TINY = ['--random-init', '--model', 'ViTamin-Tiny', '--templates', 'single']


def _write_inputs(folder):
    """Images of every awkward kind; returns {name: expected (H, W) after reading}."""
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    cv2.imwrite(os.path.join(folder, 'gray.png'), rng.integers(0, 256, (60, 80), np.uint8))
    rgba = rng.integers(0, 256, (50, 70, 4), np.uint8)
    rgba[:10, :, 3] = 0
    cv2.imwrite(os.path.join(folder, 'rgba.png'), rgba)
    cv2.imwrite(os.path.join(folder, 'deep16.png'),
                rng.integers(0, 65536, (40, 90, 3)).astype(np.uint16))
    rotated = Image.fromarray(rng.integers(0, 256, (20, 40, 3), np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(os.path.join(folder, 'exif.jpg'), exif=exif.tobytes())
    cv2.imwrite(os.path.join(folder, 'one.png'), np.full((1, 1, 3), 50, np.uint8))
    cv2.imwrite(os.path.join(folder, 'thin.png'), rng.integers(0, 256, (17, 1000, 3), np.uint8))
    return {'gray': (60, 80), 'rgba': (50, 70), 'deep16': (40, 90), 'exif': (40, 20),
            'one': (1, 1), 'thin': (17, 1000)}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Start every demo run at once, then collect them."""
    tmp = tmp_path_factory.mktemp('demo')
    expected = _write_inputs(str(tmp / 'inputs'))
    env = dict(os.environ, HF_HUB_OFFLINE='1', HF_HOME=str(tmp / 'hf'),
               VITAMIN_DENSE_HOME=str(tmp / 'home'))
    env.pop('PYTHONPATH', None)  # the demo must find the package by itself
    commands = {
        'sample': [*TINY, '--vocab', 'cat,grass,sky', '--out', str(tmp / 'sample.png')],
        'folder': [str(tmp / 'inputs'), *TINY, '--vocab', 'kitten, cat; dog', '--out',
                   str(tmp / 'folder_out'), '--save-labels'],
        'offline_weights': ['--vocab', 'cat,dog'],
    }
    procs = {name: subprocess.Popen([sys.executable, DEMO, *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp))
             for name, args in commands.items()}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        results[name] = (proc.returncode, out, err)
    return tmp, expected, results


def _assert_clean(err):
    # the one expected warning: how a ';' vocabulary with synonyms was read
    err = '\n'.join(ln for ln in err.splitlines() if 'has a \';\', so its commas' not in ln)
    assert 'Traceback' not in err and 'Warning' not in err and 'WARNING' not in err, err


def test_sample_run_writes_overlay_and_prints_shares(runs):
    tmp, _, results = runs
    code, out, err = results['sample']
    assert code == 0, err
    _assert_clean(err)
    overlay = cv2.imread(str(tmp / 'sample.png'))
    assert overlay is not None and overlay.shape[1] == 451 and overlay.shape[0] > 300
    shares, absent = {}, 0
    for line in out.splitlines()[1:]:
        if line.strip().startswith('('):  # '(N other class(es) cover(s) no pixel)'
            absent = int(line.split()[0].lstrip('('))
            continue
        name, value = line.split()
        shares[name] = float(value.rstrip('%'))
    # the classes present are listed, the others counted (random weights: which is arbitrary)
    assert set(shares) <= {'cat', 'grass', 'sky'} and len(shares) + absent == 3
    assert sum(shares.values()) == pytest.approx(100, abs=0.05)
    assert 'sample.jpg (451x300' in out
    assert 'random weights' in err


def test_folder_of_awkward_images(runs):
    tmp, expected, results = runs
    code, out, err = results['folder']
    assert code == 0, err
    _assert_clean(err)
    assert 'images' in err                                   # the progress bar
    for name, (h, w) in expected.items():
        assert f'{name}.' in out
        assert os.path.isfile(tmp / 'folder_out' / f'{name}_segment.png'), name
        labels = cv2.imread(str(tmp / 'folder_out' / f'{name}_labels.png'), cv2.IMREAD_UNCHANGED)
        assert labels.shape == (h, w), name                 # EXIF applied, nothing resized
        assert labels.dtype == np.uint16 and labels.min() >= 1
    # each image lists both classes, or counts the one that covers no pixel
    absent = out.count('(1 other class covers no pixel)')
    assert out.count('kitten') + out.count('dog') + absent == 2 * len(expected)


def test_offline_weights_give_one_line(runs):
    _, _, results = runs
    code, out, err = results['offline_weights']
    assert code == 2 and out == ''
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err                              # fails before any model loads
    assert lines[0].startswith("error: could not get pretrained weights 'datacomp1b' for "
                               'ViTamin-L-336'), err
    assert '--weights' in lines[0]


@pytest.mark.parametrize('args,message', [
    (['nope.jpg', '--vocab', 'cat,dog'], 'error: image not found: nope.jpg'),
    (['--vocab', ' '], 'error: the vocabulary is empty'),
    (['--vocab', 'cat, dog, Cat'], "error: 'Cat' appears in classes 1 and 3 of the vocabulary"),
    (['--vocab', 'cat;;dog,cat'], "error: 'cat' appears in classes 1 and 2"),
    ([], 'error: the following arguments are required: --vocab'),
    (['--vocab', 'a,b', '--stride', '40', *TINY], 'error: window stride 40 is not a positive'),
    (['corrupt.jpg', '--vocab', 'a,b', *TINY], 'error: cannot decode JPEG image corrupt.jpg'),
])
def test_input_errors_fail_fast_in_one_line(args, message, monkeypatch, capfd, tmp_path):
    """Same entry point as the command line (run_cli(main)), in-process to save start-up time."""
    from vitamin_dense.utils.cli import run_cli
    demo = _load_demo()
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'corrupt.jpg').write_bytes(b'\xff\xd8\xff\xe0' + b'\x00' * 50)
    monkeypatch.setattr(sys, 'argv', ['segment.py', *args])
    with pytest.raises(SystemExit) as info:
        run_cli(demo.main)
    assert info.value.code == 2
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith(message), err
    assert not any('Traceback' in line for line in lines)
    if '--random-init' not in args:
        assert len(lines) == 1, err                          # nothing printed before the error
    assert not (tmp_path / 'outputs').exists()


def _load_demo():
    spec = importlib.util.spec_from_file_location('demo_segment', DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_documents_the_vocabulary_grammar(capsys):
    demo = _load_demo()
    with pytest.raises(SystemExit):
        demo.parse_args(['--help'])
    text = capsys.readouterr().out
    for needle in ('"kitten, cat; dog"', 'dataset:NAME', 'one class per line', '--random-init',
                   '--weights', '--threshold', '--stride', '--templates'):
        assert needle in text, needle


def test_output_naming_and_templates_file(tmp_path):
    from vitamin_dense.errors import ConfigError
    demo = _load_demo()
    assert demo.output_paths(['a/x.jpg', 'b/x.png', 'y.tif'], 'out') == [
        os.path.join('out', 'x_segment.png'), os.path.join('out', 'x_2_segment.png'),
        os.path.join('out', 'y_segment.png')]
    assert demo.output_paths(['a.jpg'], 'o.png') == ['o.png']
    with pytest.raises(ConfigError, match='names one file'):
        demo.output_paths(['a.jpg', 'b.jpg'], 'o.png')
    templates = tmp_path / 't.txt'
    templates.write_text('a photo of {}.\n# comment\nart of {}\n')
    assert demo.read_templates(str(templates)) == ['a photo of {}.', 'art of {}']
    templates.write_text('no placeholder\n')
    with pytest.raises(ConfigError, match="exactly one '{}'"):
        demo.read_templates(str(templates))
    with pytest.raises(ConfigError, match='unknown templates'):
        demo.read_templates('fancy')
    assert demo.collect_images([])[0].endswith('sample.jpg')
