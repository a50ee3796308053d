"""demo/detect.py and the Detector API: the whole path offline, and one-line errors."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from vitamin_dense.apis import Detector, QueryError, check_query_box, parse_box

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, 'demo', 'detect.py')


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    from skimage import data
    folder = tmp_path_factory.mktemp('det_demo')
    cat = folder / 'cat.jpg'
    cv2.imwrite(str(cat), data.chelsea()[..., ::-1])  # 451 x 300, not square
    corrupt = folder / 'corrupt.jpg'
    corrupt.write_bytes(b'\xff\xd8\xff\xe0 this is not really a jpeg')
    return dict(cat=str(cat), corrupt=str(corrupt), folder=folder)


@pytest.fixture(scope='module')
def detector():
    return Detector(model='ViTamin-Tiny', random_init=True, device='cpu', input_size=128,
                    threshold=0.0, max_detections=5)


def _demo(*args, timeout=240, block_openmmlab=False):
    """Run demo/detect.py in a fresh interpreter (optionally where mmcv/mmdet/mmseg can't import)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    block = ("import sys\nfor m in ('mmcv', 'mmdet', 'mmseg'):\n    sys.modules[m] = None\n"
             if block_openmmlab else '')
    code = (block + 'import runpy, sys\n'
            f'sys.argv = [{DEMO!r}] + {list(args)!r}\n'
            f'runpy.run_path({DEMO!r}, run_name="__main__")\n')
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_demo_random_init_writes_boxes_picture_and_json_without_mmdet(images):
    """The whole CLI path where mmcv / mmdet / mmseg cannot import (inference is plain torch +
    open_clip): two images, pictures with a legend, JSON in original-image coordinates."""
    out = images['folder'] / 'out'
    proc = _demo(images['cat'], images['cat'], '--vocab', 'cat,dog', '--random-init', '--model',
                 'ViTamin-Tiny', '--input-size', '128', '--out', str(out), '--json',
                 '--device', 'cpu', block_openmmlab=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count('10 detections') == 2
    for name in ('cat_detect', 'cat_2_detect'):
        picture = cv2.imread(str(out / f'{name}.png'))
        assert picture is not None and picture.shape[1] >= 300  # legend below the photo
    import json
    with open(out / 'cat_detect.json') as f:
        saved = json.load(f)
    assert saved['class_names'] == ['cat', 'dog'] and len(saved['detections']) == 10
    for det in saved['detections']:
        x1, y1, x2, y2 = det['box']
        assert 0 <= x1 < x2 <= 451 and 0 <= y1 < y2 <= 300  # original-image coordinates


def _load_demo():
    import importlib.util
    spec = importlib.util.spec_from_file_location('det_demo_module', DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('args,message', [
    (['MISSING.jpg', '--vocab', 'cat'], 'not found'),
    (['{corrupt}', '--vocab', 'cat'], 'corrupt.jpg'),
    (['{cat}', '--vocab', ' '], 'empty'),
    (['{cat}', '--vocab', 'cat,Cat'], 'appears'),
    (['{cat}'], 'nothing to detect'),
    (['{cat}', '--query-image', '{cat}', '--query-box', '10,10,500,100'], 'outside'),
    (['{cat}', '--query-image', '{cat}', '--query-box', '10,10,5'], 'four numbers'),
    (['{cat}', '--query-image', '{cat}', '--query-box', '50,10,20,100'], 'inverted'),
    (['{cat}', '--query-image', 'MISSING.png', '--query-box', '1,2,3,4'], 'MISSING.png'),
    (['{cat}', '--query-box', '1,2,3,4'], 'needs --query-image'),
    (['{cat}', '--vocab', 'cat', '--query-image', '{cat}', '--query-box', '1,2,3,4'],
     'not both'),
    (['{cat}', '--vocab', 'cat'], '--checkpoint'),
    (['{cat}', '--vocab', 'cat', '--checkpoint', 'nope.pth'], 'not found'),
    (['{cat}', '--vocab', 'cat', '--threshold', '1.5', '--random-init'], 'threshold'),
])
def test_demo_bad_input_gets_one_line_error(images, args, message, capsys, monkeypatch):
    """run_cli turns each mistake into one 'error: ...' line and exit status 2."""
    from vitamin_dense.utils.cli import run_cli
    demo = _load_demo()
    args = [a.format(**images) for a in args]
    if '--checkpoint' not in args and message != '--checkpoint':
        args += ['--random-init', '--model', 'ViTamin-Tiny']
    monkeypatch.setattr(sys, 'argv', [DEMO] + args)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: demo.main(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    assert message in lines[0], lines[0]


def test_demo_usage_error_is_one_line_too(images, capsys):
    demo = _load_demo()
    with pytest.raises(SystemExit) as exit_info:
        demo.parse_args([images['cat'], '--vocab', 'cat', '--max-detections', 'many'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and len(err.splitlines()) == 1


def test_api_vocab_and_one_shot_in_original_coordinates(detector):
    from skimage import data
    image = data.chelsea()  # 300 x 451
    result = detector(image, 'cat, kitten; dog')
    assert result.class_names == ['cat', 'dog'] and len(result) == 5
    assert (result.boxes[:, [0, 2]] <= 451).all() and (result.boxes[:, [1, 3]] <= 300).all()
    assert result.draw().shape[2] == 3
    shot = detector(image, query_image=image, query_boxes=[(150, 50, 300, 200)])
    assert shot.class_names == ['exemplar 1'] and len(shot) == 5
    assert shot.meta['exemplar_tokens'][0]['iou'] > 0
    batch = detector.detect_batch([image, image[:100, :300]], 'cat')
    assert len(batch) == 2 and (batch[1].boxes[:, [1, 3]] <= 100).all()
    # the first image's result does not depend on the second one's presence
    np.testing.assert_allclose(batch[0].scores, detector(image, 'cat').scores, rtol=1e-4)


def test_query_box_checks():
    assert parse_box('1, 2, 30.5, 40') == (1.0, 2.0, 30.5, 40.0)
    for bad in ('1,2,3', 'a,b,c,d', '1,2,3,4,5', 'nan,1,2,3'):
        with pytest.raises(QueryError):
            parse_box(bad)
    check_query_box((0, 0, 100, 50), (50, 100))  # touching the edges is fine
    with pytest.raises(QueryError, match='outside'):
        check_query_box((0, 0, 101, 50), (50, 100))
    with pytest.raises(QueryError, match='inverted'):
        check_query_box(torch.tensor([5., 5., 5., 9.]), (50, 100))



def test_box_drawing_sizes_legend_and_stacked_tags():
    from vitamin_dense.visualization import detection_legend, draw_boxes, draw_detections
    image = np.full((60, 200, 3), 40, np.uint8)  # small and wide: drawn enlarged, legend below
    boxes = np.array([[10, 10, 50, 40], [10, 10, 52, 41], [120, 5, 190, 55]], float)
    drawn = draw_detections(image, boxes, [0, 1, 0], [0.9, 0.5, 0.7], ['cat', 'dog'])
    assert drawn.shape[1] >= 200 * 256 // 60 - 1 and drawn.shape[0] > 256  # enlarged + legend
    entries = detection_legend(['cat', 'dog'], [(255, 0, 0), (0, 255, 0)], [0, 1, 0],
                               [0.9, 0.5, 0.7])
    assert [e.label for e in entries] == ['cat', 'dog'] and '2 boxes' in entries[0].value
    assert 'no detection' in detection_legend(['cat'], [(1, 2, 3)], [])[0].label
    # two boxes sharing a corner: both tags stay readable (stacked, not drawn over each other)
    plain = draw_boxes(np.zeros((100, 100, 3), np.uint8), boxes[:2] + 30, [0, 1], [0.9, 0.5],
                       ['cat', 'dog'], [(255, 0, 0), (0, 255, 0)], line_height=14)
    # the lower box's outline alone leaves ~75 green pixels visible; with its tag ~220
    assert (plain == (0, 255, 0)).all(-1).sum() > 150 and (plain == (255, 0, 0)).all(-1).sum() > 150
    assert draw_detections(image, np.zeros((0, 4)), [], [], ['cat']).shape[2] == 3
    with pytest.raises(ValueError, match='index'):
        draw_detections(image, boxes[:1], [2], [0.5], ['cat', 'dog'])
