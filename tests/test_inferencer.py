"""``DenseInferencer``: one MMDetection-style call for the four model kinds.

Tiny random-weight models of each kind (training-free, FC-CLIP, OWL, Sliding
F-ViT) are chosen from the config or the checkpoint's stored config; a call on
a directory, a path and an array returns mmdet's ``predictions`` /
``visualization`` and writes ``vis/`` and ``preds/`` (per-image JSON and the
COCO files, read back by pycocotools and panopticapi).
"""
import contextlib
import io
import json
import os

import cv2
import numpy as np
import pytest
from panopticapi.utils import rgb2id
from pycocotools.coco import COCO
from skimage import data as skdata

from tests.helpers.checkpoints import tiny_checkpoint
from tests.helpers.demos import load_demo
from vitamin_dense.apis import DenseInferencer, DetectionResult, MaskSegmentationResult
from vitamin_dense.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEG_TINY = os.path.join(ROOT, 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py')
FVIT_TINY = os.path.join(ROOT, 'configs', 'ov_det', 'fvit_vitamin_tiny_synthetic.py')
VOCAB = 'circle; square; table'


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('images')
    cv2.imwrite(str(folder / '000000000139.png'), skdata.coffee()[::5, ::5, ::-1])
    cv2.imwrite(str(folder / '000000000285.jpg'), skdata.chelsea()[::4, ::4, ::-1])
    return folder


@pytest.fixture(scope='module')
def seg_checkpoint(tmp_path_factory):
    return tiny_checkpoint(SEG_TINY, tmp_path_factory.mktemp('seg') / 'seg.pth')


def _load_results(info_file, results_file):
    gt = COCO()
    with open(info_file) as f:
        gt.dataset = dict(json.load(f), annotations=[])
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        return gt, gt.loadRes(results_file)


def test_training_free_from_a_variant_name(folder, tmp_path):
    inferencer = DenseInferencer('ViTamin-Tiny', random_init=True, device='cpu')
    assert inferencer.kind == 'training-free'
    array = skdata.astronaut()[::8, ::8]
    out = inferencer([str(folder), array], texts=VOCAB, out_dir=str(tmp_path))
    preds, pictures = out['predictions'], out['visualization']
    assert len(preds) == len(pictures) == 3
    assert sorted(os.listdir(tmp_path / 'vis')) == ['000000000139.png', '000000000285.jpg',
                                                    '00000002.png']
    first = preds[0]
    assert first['task'] == 'semantic' and first['classes'] == ['circle', 'square', 'table']
    assert abs(sum(first['shares'].values()) - 1) < 1e-4
    labels = cv2.imread(first['sem_seg_path'], cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint16 and labels.shape == (80, 120) and labels.max() <= 3
    with open(tmp_path / 'preds' / '000000000139.json') as f:
        assert json.load(f)['shares'] == first['shares']
    with open(tmp_path / 'preds' / 'coco.panoptic.json') as f:
        panoptic = json.load(f)
    ann = panoptic['annotations'][0]
    assert [im['id'] for im in panoptic['images']] == [1, 2, 3]  # an array: no numeric names
    ids = rgb2id(cv2.imread(str(tmp_path / 'preds' / 'panoptic' / '000000000139.png'))[..., ::-1])
    by_class = {s['category_id']: s['id'] for s in ann['segments_info']}
    for k in range(3):  # one segment per class present, where the label map has it
        assert ((labels == k + 1) == (ids == by_class.get(k + 1, -1))).all()
    # nothing written without out_dir; visualization only on request
    plain = inferencer(array, texts=VOCAB)
    assert plain['visualization'] is None and plain['predictions'][0]['sem_seg'].shape == \
        array.shape[:2]
    results = inferencer(array, texts=VOCAB, return_datasamples=True, return_vis=True,
                         out_dir=str(tmp_path / 'samples'), no_save_vis=True)
    assert type(results['predictions'][0]).__name__ == 'SegmentationResult'
    assert results['visualization'][0].ndim == 3
    assert (tmp_path / 'samples' / 'preds' / '00000000.json').is_file()
    assert not (tmp_path / 'samples' / 'vis').exists()


def test_a_training_free_config_names_model_stride_and_vocabulary():
    config = os.path.join(ROOT, 'configs', 'ov_seg', 'training-free_vitamin-l336_ade20k-150.py')
    options = DenseInferencer._training_free_options(config, None, None, random_init=True)
    assert options == dict(model='ViTamin-L-336', weights=None, templates='vild', stride=112,
                           vocabulary='dataset:ade150')
    assert DenseInferencer._choose_kind(config, None, None, ('training-free', 'fcclip')) == \
        'training-free'


def test_fcclip_from_the_checkpoint_alone(seg_checkpoint, folder, tmp_path):
    inferencer = DenseInferencer(weights=seg_checkpoint, task='instance', device='cpu',
                                 max_side=128)
    assert inferencer.kind == 'fcclip'
    out = inferencer(str(folder), texts=VOCAB, out_dir=str(tmp_path), pred_score_thr=0.0)
    pred = out['predictions'][0]
    assert pred['task'] == 'instance' and len(pred['masks']) == len(pred['scores']) > 0
    assert all(isinstance(m['counts'], str) for m in pred['masks'])
    gt, dt = _load_results(tmp_path / 'preds' / 'coco.info.json',
                           str(tmp_path / 'preds' / 'coco.segm.json'))
    assert sorted(gt.getImgIds()) == [139, 285]  # COCO file names give the image ids
    assert len(dt.getAnnIds(imgIds=[139])) == len(pred['scores'])
    mask = dt.annToMask(dt.loadAnns(dt.getAnnIds(imgIds=[139]))[0])
    assert mask.shape == (80, 120)

    panoptic = DenseInferencer(SEG_TINY, weights=seg_checkpoint, task='panoptic', device='cpu',
                               max_side=128)
    res = panoptic(str(folder / '000000000139.png'), texts=VOCAB, out_dir=str(tmp_path / 'p'),
                   return_datasamples=True)['predictions'][0]
    assert isinstance(res, MaskSegmentationResult) and res.task == 'panoptic'
    written = cv2.imread(str(tmp_path / 'p' / 'preds' / 'panoptic' / '000000000139.png'))
    assert (rgb2id(written[..., ::-1]) == res.panoptic + 1).all()
    with open(tmp_path / 'p' / 'preds' / 'coco.panoptic.json') as f:
        data = json.load(f)
    areas = sorted(s['area'] for s in data['annotations'][0]['segments_info'])
    assert areas == sorted(s['area'] for s in res.segments)
    # 'circle' and 'square' are training things, 'table' an unseen thing
    assert [c['isthing'] for c in data['categories']] == [1, 1, 1]


def test_owl_from_a_config_name(folder, tmp_path):
    inferencer = DenseInferencer('ov_det/owl_vitamin_tiny_synthetic', random_init=True,
                                 device='cpu', input_size=64, threshold=0.0, max_detections=5)
    assert inferencer.kind == 'owl'
    out = inferencer(str(folder), batch_size=2, texts=VOCAB, out_dir=str(tmp_path))
    pred = out['predictions'][1]
    assert pred['task'] == 'detection' and 0 < len(pred['bboxes']) <= 5
    assert set(pred) >= {'labels', 'scores', 'bboxes', 'classes'}
    gt, dt = _load_results(tmp_path / 'preds' / 'coco.info.json',
                           str(tmp_path / 'preds' / 'coco.bbox.json'))
    ann = dt.loadAnns(dt.getAnnIds(imgIds=[285]))[0]
    x1, y1, x2, y2 = pred['bboxes'][0]
    assert ann['bbox'] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.02)
    assert ann['category_id'] == pred['labels'][0] + 1
    assert os.path.isfile(tmp_path / 'vis' / '000000000285.jpg')
    # one-shot queries pass through
    queries = inferencer(str(folder / '000000000285.jpg'), query_image=skdata.chelsea(),
                         query_boxes=[(10, 10, 200, 200)], return_datasamples=True)
    assert queries['predictions'][0].class_names == ['exemplar 1']


def test_fvit_from_its_checkpoint_and_kind_checks(seg_checkpoint, folder, tmp_path):
    fvit = tiny_checkpoint(FVIT_TINY, tmp_path / 'fvit.pth')
    inferencer = DenseInferencer(weights=fvit, device='cpu', threshold=0.0, max_detections=3)
    assert inferencer.kind == 'fvit'
    out = inferencer(str(folder / '000000000139.png'), texts='circle,square',
                     return_datasamples=True)
    result = out['predictions'][0]
    assert isinstance(result, DetectionResult) and 0 < len(result) <= 3
    with pytest.raises(ConfigError, match='FCCLIPSegmentor'):
        DenseInferencer(weights=seg_checkpoint, kind='detector', device='cpu')
    with pytest.raises(ConfigError, match='not an FCCLIPSegmentor'):
        DenseInferencer(FVIT_TINY, weights=fvit, kind='segmenter', device='cpu')
    with pytest.raises(ConfigError, match="unknown kind 'mask'"):
        DenseInferencer('ViTamin-Tiny', kind='mask')


def test_demos_write_coco_files(folder, tmp_path, capsys):
    """--pred-format coco: the COCO files instead of the per-image ones; both: the two."""
    out = tmp_path / 'seg'
    assert load_demo('segment', 'inferencer').main([str(folder), '--vocab', VOCAB, '--random-init', '--model',
                                  'ViTamin-Tiny', '--pred-format', 'coco', '--out', str(out),
                                  '--device', 'cpu']) == 0
    assert 'COCO results ->' in capsys.readouterr().out
    assert not list(out.glob('*_labels.*'))
    with open(out / 'coco.panoptic.json') as f:
        data = json.load(f)
    assert [a['image_id'] for a in data['annotations']] == [139, 285]
    for ann in data['annotations']:
        ids = rgb2id(cv2.imread(str(out / 'coco.panoptic' / ann['file_name']))[..., ::-1])
        assert sorted(s['id'] for s in ann['segments_info']) == sorted(set(ids.ravel()) - {0})

    out = tmp_path / 'det'
    assert load_demo('detect', 'inferencer').main([str(folder), '--vocab', VOCAB, '--random-init', '--model',
                                 'ViTamin-Tiny', '--input-size', '64', '--pred-format', 'both',
                                 '--out', str(out), '--device', 'cpu']) == 0
    assert (out / '000000000139_detect.json').is_file()  # 'both': the per-image files too
    gt, dt = _load_results(out / 'coco.info.json', str(out / 'coco.bbox.json'))
    with open(out / '000000000285_detect.json') as f:
        listed = json.load(f)['detections']
    assert len(dt.getAnnIds(imgIds=[285])) == len(listed) > 0
