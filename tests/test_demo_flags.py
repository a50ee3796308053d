"""The two demos share one set of flags with one meaning each, and take any trained
checkpoint the same way (its config read from it): FC-CLIP in segment.py, OWL and
Sliding F-ViT in detect.py and the Detector API."""
import argparse
import importlib.util
import json
import os

import cv2
import pytest
from skimage import data as skdata

from tests.helpers.checkpoints import tiny_checkpoint
from vitamin_dense.utils.cli import add_demo_arguments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEG_TINY = os.path.join(ROOT, 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py')
FVIT_TINY = os.path.join(ROOT, 'configs', 'ov_det', 'fvit_vitamin_tiny_synthetic.py')


def _demo(name):
    spec = importlib.util.spec_from_file_location(f'{name}_demo_flags',
                                                  os.path.join(ROOT, 'demo', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_demos_define_the_shared_flags_identically():
    reference = argparse.ArgumentParser()
    add_demo_arguments(reference, 'x')
    shared = {a.dest: a for a in reference._actions if a.dest != 'help'}
    for name in ('segment', 'detect'):
        actions = {a.dest: a for a in _demo(name).build_parser()._actions}
        for dest, ref in shared.items():
            got = actions[dest]
            assert got.option_strings == ref.option_strings, (name, dest)
            assert type(got) is type(ref) and got.type == ref.type, (name, dest)
            if dest != 'out':  # outputs/<demo>
                assert got.help == ref.help and got.default == ref.default, (name, dest)
    for flag in ('--json', '--save-labels', '--save-pred'):  # the old per-demo names
        for name in ('segment', 'detect'):
            assert _demo(name).parse_args(['--vocab', 'a', flag]).save_pred is True


@pytest.fixture(scope='module')
def seg_checkpoint(tmp_path_factory):
    return tiny_checkpoint(SEG_TINY, tmp_path_factory.mktemp('seg') / 'seg.pth')


@pytest.fixture(scope='module')
def fvit_checkpoint(tmp_path_factory):
    return tiny_checkpoint(FVIT_TINY, tmp_path_factory.mktemp('fvit') / 'fvit.pth')


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('images')
    cv2.imwrite(str(folder / 'a.png'), skdata.coffee()[::4, ::4, ::-1])
    cv2.imwrite(str(folder / 'b.jpg'), skdata.chelsea()[::3, ::3, ::-1])
    return folder


def test_segment_reads_the_config_from_the_checkpoint(seg_checkpoint, folder, tmp_path, capsys):
    """--config is optional in both demos (required in segment.py before); the threshold
    cuts the instance listing and the picture alike."""
    out = tmp_path / 'out'
    code = _demo('segment').main([str(folder / 'a.png'), '--vocab', 'circle; cup; table',
                                  '--checkpoint', seg_checkpoint, '--task', 'instance',
                                  '--threshold', '0.01', '--out', str(out), '--save-pred',
                                  '--device', 'cpu'])
    assert code == 0
    printed = capsys.readouterr().out
    assert 'instances (the overlay)' in printed
    with open(out / 'a_labels.json') as f:
        listed = json.load(f)['instances']
    assert all(inst['score'] >= 0.01 for inst in listed)
    assert (out / 'a_segment.png').is_file()


def test_detect_takes_directories(folder, tmp_path, capsys):
    out = tmp_path / 'det'
    code = _demo('detect').main([str(folder), '--vocab', 'cup,cat', '--random-init', '--model',
                                 'ViTamin-Tiny', '--input-size', '64', '--out', str(out),
                                 '--save-pred', '--device', 'cpu'])
    assert code == 0
    for stem in ('a', 'b'):
        assert (out / f'{stem}_detect.png').is_file() and (out / f'{stem}_detect.json').is_file()


def test_fvit_checkpoint_in_the_detector_api_and_the_demo(fvit_checkpoint, folder, tmp_path,
                                                          capsys):
    from vitamin_dense.apis import Detector, QueryError
    detector = Detector(checkpoint=fvit_checkpoint, device='cpu', threshold=0.0,
                        max_detections=5)
    assert 'F-ViT' in repr(detector) and detector.input_size == 128  # the config's test size
    image = skdata.chelsea()
    result = detector(image, 'circle,square,star')
    assert result.class_names == ['circle', 'square', 'star'] and 0 < len(result) <= 5
    assert (result.boxes[:, [0, 2]] <= image.shape[1]).all()
    assert (result.boxes[:, [1, 3]] <= image.shape[0]).all()
    with pytest.raises(QueryError, match='named classes only'):
        detector(image, query_image=image, query_boxes=[(10, 10, 100, 100)])
    out = tmp_path / 'fvit.png'
    code = _demo('detect').main([str(folder / 'b.jpg'), '--vocab', 'circle,square',
                                 '--checkpoint', fvit_checkpoint, '--threshold', '0',
                                 '--out', str(out), '--device', 'cpu'])
    assert code == 0 and out.is_file()
    assert 'detection' in capsys.readouterr().out


def test_a_segmentor_checkpoint_given_to_detect_says_so(seg_checkpoint, capsys, monkeypatch):
    import sys
    from vitamin_dense.utils.cli import run_cli
    monkeypatch.setattr(sys, 'argv', ['detect.py', '--vocab', 'cat', '--checkpoint',
                                      seg_checkpoint])
    with pytest.raises(SystemExit):
        run_cli(_demo('detect').main)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith('error: ') and 'FCCLIPSegmentor' in err and 'demo/segment.py' in err
