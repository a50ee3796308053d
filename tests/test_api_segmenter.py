"""The Python inference API: Segmenter, SegmentationResult, predictors, feature cache."""
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

import cv2
from vitamin_dense.apis import (FeatureCache, Predictor, SegmentationResult, Segmenter,
                                available_predictors, register_predictor)
from vitamin_dense.errors import ConfigError, ImageReadError, VocabularyError
from vitamin_dense.models.training_free import label_map, stride_region
from vitamin_dense.utils.image_io import read_image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, 'vitamin_dense', 'assets', 'sample.jpg')


@pytest.fixture(scope='module')
def segmenter():
    torch.manual_seed(0)
    return Segmenter('ViTamin-Tiny', weights=None, device='cpu', templates='single',
                     text_disk_cache=False)


def _count_backbone_calls(segmenter, monkeypatch):
    backbone = segmenter.predictor.model.backbone
    calls = []
    original = backbone.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(backbone, 'forward', counting)
    return calls


def test_sample_asset_is_bundled():
    image = read_image(SAMPLE)
    assert image.shape == (300, 451, 3)
    assert os.path.getsize(SAMPLE) < 100_000


def test_segment_path_numpy_and_pil_agree(segmenter):
    rgb = read_image(SAMPLE)
    by_path = segmenter(SAMPLE, 'cat,grass,sky')
    by_array = segmenter(rgb, 'cat,grass,sky')
    by_pil = segmenter(Image.open(SAMPLE), 'cat,grass,sky')
    assert isinstance(by_path, SegmentationResult)
    assert by_path.size == (300, 451) and by_path.labels.dtype == np.int16
    assert by_path.class_names == ['cat', 'grass', 'sky']
    np.testing.assert_array_equal(by_path.labels, by_array.labels)
    np.testing.assert_array_equal(by_path.labels, by_pil.labels)
    assert sum(by_path.shares.values()) == pytest.approx(1.0)
    assert by_path.no_class_share == 0
    assert by_path.source == SAMPLE and by_array.source.startswith('array')
    assert by_path.meta['windows'] > 1 and by_path.meta['stride'] == 32
    assert set(np.unique(by_path.labels)) <= {0, 1, 2}


def test_changing_the_vocabulary_reuses_image_features(segmenter, monkeypatch):
    segmenter.clear_cache()
    calls = _count_backbone_calls(segmenter, monkeypatch)
    first = segmenter(SAMPLE, 'cat,grass')
    second = segmenter(SAMPLE, 'kitten, cat; dog; sofa')
    third = segmenter(read_image(SAMPLE).copy(), 'sky,tree')   # same content, new array
    assert len(calls) == 1
    assert not first.meta['features_cached'] and second.meta['features_cached']
    assert third.meta['features_cached']
    assert second.class_names == ['kitten', 'dog', 'sofa']
    changed = read_image(SAMPLE).copy()
    changed[0, 0] ^= 1
    segmenter(changed, 'cat,grass')
    assert len(calls) == 2                                       # content changed
    model = segmenter.predictor.model
    model.stride = 64
    try:
        segmenter(SAMPLE, 'cat,grass')
    finally:
        model.stride = 32
    assert len(calls) == 3                                       # stride is part of the key


def test_cached_and_fresh_results_are_identical(segmenter):
    segmenter.clear_cache()
    fresh = segmenter(SAMPLE, 'cat,grass,sky')
    cached = segmenter(SAMPLE, 'cat,grass,sky')
    assert cached.meta['features_cached']
    np.testing.assert_array_equal(fresh.labels, cached.labels)
    torch.testing.assert_close(fresh.scores, cached.scores)


def test_threshold_and_relabel(segmenter):
    result = segmenter(SAMPLE, 'cat,grass,sky')
    none = segmenter(SAMPLE, 'cat,grass,sky', threshold=1.0)
    assert none.no_class_share > 0.99 and (none.labels == -1).mean() > 0.99
    relabelled = none.relabel(None)
    np.testing.assert_array_equal(relabelled.labels, result.labels)
    assert relabelled.no_class_share == 0
    with pytest.raises(ConfigError, match='probability'):
        segmenter(SAMPLE, 'cat,grass', threshold=2)


def test_probabilities_and_masks(segmenter):
    result = segmenter(SAMPLE, 'cat,grass,sky')
    probs = result.probabilities()
    assert probs.shape == (3, 300, 451)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probs.argmax(0), result.labels)
    np.testing.assert_allclose(result.probability_map('grass'), probs[1], atol=1e-6)
    assert result.probabilities(size=(30, 45)).shape == (3, 30, 45)
    assert result.mask('sky').sum() == result.pixel_counts[3]
    with pytest.raises(KeyError, match='no class named'):
        result.mask('dog')
    present = [name for name, share in result.shares.items() if share > 0]
    assert all(name in result.summary() for name in present) and '%' in result.summary()
    assert 'cat' in result.summary(absent=True)
    assert result.to_dict()['shares'] == result.shares


def test_overlay_and_saved_files(segmenter, tmp_path):
    result = segmenter(SAMPLE, 'cat,grass,sky')
    overlay = result.overlay()
    assert overlay.dtype == np.uint8 and overlay.shape[1] == 451 and overlay.shape[0] > 300
    path = result.save_overlay(str(tmp_path / 'o.png'))
    assert read_image(path).shape == overlay.shape
    labels_path = result.save_labels(str(tmp_path / 'labels.png'))
    stored = cv2.imread(labels_path, cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(stored.astype(np.int32) - 1, result.labels)
    import json
    with open(str(tmp_path / 'labels.json')) as f:
        meta = json.load(f)
    assert meta['labels'] == {'0': 'none', '1': 'cat', '2': 'grass', '3': 'sky'}
    bare = SegmentationResult(result.labels, result.class_names, result.scores)
    with pytest.raises(ValueError, match='holds no image'):
        bare.overlay()


def test_large_images_are_processed_shrunk_and_mapped_back(caplog, tmp_path):
    seg = Segmenter('ViTamin-Tiny', None, device='cpu', templates='single', max_side=160,
                    text_disk_cache=False)
    image = cv2.resize(read_image(SAMPLE), (902, 600), interpolation=cv2.INTER_LINEAR)
    with caplog.at_level(logging.INFO, logger='vitamin_dense'):
        result = seg(image, 'cat,grass,sky')
    assert result.size == (600, 902)
    assert result.meta['downscaled_from'] == [600, 902]
    assert result.meta['processed_size'] == [106, 160]
    assert any('larger than max_side=160' in r.getMessage() for r in caplog.records)
    # Same as segmenting the shrunk copy and resampling its scores to the full size.
    small = cv2.resize(image, (160, 106), interpolation=cv2.INTER_AREA)
    direct = seg(small, 'cat,grass,sky')
    labels, _ = label_map(direct.scores, (600, 902), stride_region((106, 160),
                                                                    direct.scores.shape[-2:]))
    np.testing.assert_array_equal(result.labels, labels)
    # An extreme aspect ratio (20000 x 40) stays cheap.
    strip = np.zeros((40, 20000, 3), np.uint8)
    strip[:, 10000:] = 255
    wide = Segmenter('ViTamin-Tiny', None, device='cpu', templates='single',
                     text_disk_cache=False)(strip, 'a,b')
    assert wide.size == (40, 20000) and wide.meta['processed_size'] == [4, 2048]


@pytest.mark.parametrize('shape', [(1, 1), (17, 1000), (1000, 17)])
def test_tiny_and_thin_images(segmenter, shape):
    result = segmenter(np.full(shape + (3,), 90, np.uint8), 'a,b')
    assert result.size == shape
    assert result.overlay().shape[0] >= 1


def test_batches_are_independent_and_report_errors(segmenter, tmp_path):
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n broken')
    gray = np.full((50, 70), 200, np.uint8)
    items = [SAMPLE, str(bad), gray]
    results = segmenter.segment_batch(items, 'cat,grass', on_error='return')
    assert isinstance(results[1], ImageReadError) and 'bad.png' in str(results[1])
    single = segmenter(gray, 'cat,grass')
    np.testing.assert_array_equal(results[2].labels, single.labels)
    np.testing.assert_array_equal(results[0].labels, segmenter(SAMPLE, 'cat,grass').labels)
    with pytest.raises(ImageReadError, match='truncated or corrupt'):
        segmenter.segment_batch(items, 'cat,grass')
    with pytest.raises(ConfigError, match='on_error'):
        segmenter.segment_batch(items, 'cat,grass', on_error='skip')


def test_bad_arguments_are_clear(segmenter):
    with pytest.raises(VocabularyError, match='appears'):
        segmenter(SAMPLE, 'cat,Cat')
    with pytest.raises(VocabularyError, match='empty'):
        segmenter(SAMPLE, ' ')
    with pytest.raises(ImageReadError, match='not found'):
        segmenter('missing.jpg', 'cat')
    with pytest.raises(ConfigError, match='unknown device'):
        Segmenter('ViTamin-Tiny', None, device='tpu')
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match='CUDA is not available'):
            Segmenter('ViTamin-Tiny', None, device='cuda')
    with pytest.raises(ConfigError, match='max_side'):
        Segmenter('ViTamin-Tiny', None, max_side=8)
    with pytest.raises(ConfigError, match="unknown predictor 'no-such-head'"):
        Segmenter('ViTamin-Tiny', None, predictor='no-such-head')
    with pytest.raises(ConfigError, match='does not take checkpoint'):
        Segmenter('ViTamin-Tiny', None, checkpoint='x.pth')


def test_a_custom_predictor_plugs_in():
    """The extension point trained heads use: any object with name, tasks and predict()."""

    class HalfPredictor:
        name = 'halves'
        tasks = ('semantic',)

        def predict(self, images, vocabulary, threshold=None):
            out = []
            for image in images:
                h, w = image.size
                labels = np.zeros((h, w), np.int16)
                labels[:, w // 2:] = 1
                scores = torch.zeros(len(vocabulary), 1, 2)
                out.append(SegmentationResult(labels, vocabulary.names, scores,
                                              image=image.original, source=image.source))
            return out

    assert isinstance(HalfPredictor(), Predictor)

    @register_predictor('halves-test')
    def build(device=None, **options):
        return HalfPredictor()

    assert 'halves-test' in available_predictors() and 'training-free' in available_predictors()
    seg = Segmenter(predictor='halves-test', device='cpu')
    result = seg(SAMPLE, 'left,right')
    assert result.shares['right'] == pytest.approx(226 / 451)
    direct = Segmenter(predictor=HalfPredictor(), device='cpu')
    assert direct(np.zeros((2, 4, 3), np.uint8), 'a,b').labels.tolist() == [[0, 0, 1, 1]] * 2
    with pytest.raises(ConfigError, match='not a predictor'):
        Segmenter(predictor=object(), device='cpu')


def test_feature_cache_bounds():
    cache = FeatureCache(max_items=2, max_bytes=100)
    cache.put('a', 1, 10)
    cache.put('b', 2, 10)
    assert cache.get('a') == 1
    cache.put('c', 3, 10)               # evicts the least recently used: b
    assert cache.get('b') is None and cache.get('a') == 1 and len(cache) == 2
    cache.put('big', 4, 1000)           # larger than the budget: not kept
    assert cache.get('big') is None
    cache.put('d', 5, 95)
    assert cache.nbytes <= 100


BLOCK_OPENMMLAB = textwrap.dedent('''
    import importlib.abc, importlib.machinery, sys

    class _Blocked(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """Every mmcv / mmdet / mmseg import raises ImportError."""
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('mmcv', 'mmdet', 'mmseg'):
                return importlib.machinery.ModuleSpec(name, self)
            return None
        def create_module(self, spec):
            raise ImportError(f'{spec.name} is blocked in this test')
        def exec_module(self, module):
            raise ImportError('blocked')

    sys.meta_path.insert(0, _Blocked())
    import vitamin_dense
    from vitamin_dense.apis import Segmenter
    assert not vitamin_dense.openmmlab_available()
    seg = Segmenter('ViTamin-Tiny', None, device='cpu', templates='single',
                    text_disk_cache=False)
    result = seg(sys.argv[1], 'cat,grass,sky')
    result.overlay()
    loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('mmcv', 'mmdet', 'mmseg'))
    assert not loaded, loaded
    print('OK', sorted(result.shares))
''')


def test_inference_works_with_openmmlab_blocked():
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''),
               HF_HUB_OFFLINE='1')
    proc = subprocess.run([sys.executable, '-c', BLOCK_OPENMMLAB, SAMPLE], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OK ['cat', 'grass', 'sky']" in proc.stdout
