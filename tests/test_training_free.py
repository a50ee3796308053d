"""Training-free open-vocabulary segmentation: functional core and the MMEngine model."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitamin_dense.errors import ConfigError
from vitamin_dense.models.training_free import (NO_CLASS, TrainingFreeSegmentor,
                                                dense_class_logits, label_dtype, label_map,
                                                labels_from_scores, normalize_clip_map,
                                                resample_scores, stride_region,
                                                training_free_segment)
from vitamin_dense.registry import MODELS


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------- functional core
def test_dense_class_logits_are_scaled_cosines():
    clip = _randn(2, 8, 3, 5)
    text = F.normalize(_randn(4, 8, seed=1), dim=-1)
    logits = dense_class_logits(clip, text, 100.0)
    assert logits.shape == (2, 4, 3, 5)
    for b, k, y, x in [(0, 0, 0, 0), (1, 3, 2, 4), (0, 2, 1, 3)]:
        cos = F.cosine_similarity(clip[b, :, y, x], text[k], dim=0)
        assert logits[b, k, y, x].item() == pytest.approx(100 * cos.item(), abs=1e-4)
    # Invariant to the per-pixel norm of the CLIP features.
    torch.testing.assert_close(dense_class_logits(clip * 7.5, text, 100.0), logits)
    torch.testing.assert_close(dense_class_logits(normalize_clip_map(clip), text, 100.0,
                                                  normalized=True), logits)
    with pytest.raises(ValueError, match='do not match'):
        dense_class_logits(clip, _randn(4, 7), 1.0)


@pytest.mark.parametrize('out_size', [(12, 20), (7, 9), (3, 5), (31, 13), (1, 1)])
def test_resample_equals_bilinear_interpolate(out_size):
    scores = _randn(3, 6, 10)
    expected = F.interpolate(scores[None], size=out_size, mode='bilinear',
                             align_corners=False)[0]
    torch.testing.assert_close(resample_scores(scores, out_size), expected, atol=1e-5,
                               rtol=1e-5)


def test_resample_of_a_region_equals_upsample_then_crop():
    """The image covers part of the stride-16 grid: one step = upsample x16, then crop."""
    scores = _randn(2, 4, 7)          # a 4x7 token grid from a 50x100 image
    image_size = (50, 100)
    region = stride_region(image_size, (4, 7))
    full = F.interpolate(scores[None], size=(64, 112), mode='bilinear', align_corners=False)[0]
    torch.testing.assert_close(resample_scores(scores, image_size, region),
                               full[:, :50, :100], atol=1e-5, rtol=1e-5)
    # A 2x larger "original" size: the same region of a 2x denser (x32) upsample.
    big = resample_scores(scores, (100, 200), region)
    denser = F.interpolate(scores[None], size=(128, 224), mode='bilinear',
                           align_corners=False)[0]
    torch.testing.assert_close(big, denser[:, :100, :200], atol=1e-5, rtol=1e-5)


def test_label_map_in_bands_equals_the_whole_argmax():
    scores = _randn(5, 9, 11) * 3
    out_size = (70, 83)
    full = F.interpolate(scores[None], size=out_size, mode='bilinear', align_corners=False)[0]
    labels, counts = label_map(scores, out_size, max_band_bytes=1)   # one row per band
    assert labels.dtype == np.int16 and labels.shape == out_size
    np.testing.assert_array_equal(labels, full.argmax(0).numpy())
    assert counts.tolist() == [0] + np.bincount(labels.ravel(), minlength=5).tolist()
    probs = full.softmax(0)
    thr_labels, thr_counts = label_map(scores, out_size, threshold=0.6, max_band_bytes=4096)
    expected = torch.where(probs.max(0).values < 0.6, NO_CLASS, probs.argmax(0)).numpy()
    np.testing.assert_array_equal(thr_labels, expected)
    assert thr_counts[0] == (expected == NO_CLASS).sum() > 0
    assert thr_counts.sum() == 70 * 83


def test_thresholds_are_validated_and_dtypes_sized():
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ConfigError, match='probability'):
            label_map(_randn(2, 2, 2), (4, 4), threshold=bad)
    assert label_dtype(150) == np.int16 and label_dtype(40000) == np.int32
    probs = torch.tensor([[0.7, 0.2], [0.3, 0.8]])[:, None]      # already probabilities
    assert labels_from_scores(probs, 0.75, are_logits=False).tolist() == [[NO_CLASS, 1]]


def test_training_free_segment_shapes_and_probabilities():
    clip = _randn(2, 16, 4, 6)
    text = F.normalize(_randn(3, 16, seed=1), dim=-1)
    labels, probs = training_free_segment(clip, text, 50.0, (60, 90))
    assert labels.shape == (2, 60, 90) and probs.shape == (2, 3, 60, 90)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 60, 90))
    assert torch.equal(labels, probs.argmax(1))
    labels, _ = training_free_segment(clip, text, 1.0, (60, 90), threshold=1.0)
    assert (labels == NO_CLASS).all()


# ---------------------------------------------------------------------- model
@pytest.fixture(scope='module')
def segmentor():
    torch.manual_seed(0)
    return MODELS.build(dict(type='TrainingFreeSegmentor', model_name='ViTamin-Tiny',
                             weights=None, vocabulary='cat,dog,grass', templates='single',
                             text_disk_cache=False))


def test_registered_and_built_from_config(segmentor):
    assert isinstance(segmentor, TrainingFreeSegmentor)
    assert segmentor.class_names == ['cat', 'dog', 'grass']
    assert segmentor.stride == 32                  # half the 64 px window
    assert segmentor.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)
    assert set(segmentor.backbone.output_shape()) == {'clip'}
    before = {k: v.clone() for k, v in segmentor.state_dict().items()}
    segmentor.init_weights()
    assert all(torch.equal(v, segmentor.state_dict()[k]) for k, v in before.items())


def test_tensor_mode_matches_the_functional_core(segmentor):
    x = _randn(1, 3, 70, 100)
    logits = segmentor(x)
    assert logits.shape == (1, 3, 5, 7)
    with torch.no_grad():
        clip = segmentor.backbone(x)['clip']
        text = segmentor.text_classifier.encode('cat,dog,grass')
    torch.testing.assert_close(logits, dense_class_logits(clip, text, segmentor.logit_scale),
                               atol=1e-5, rtol=1e-5)


def test_predict_undoes_padding_and_resizing(segmentor):
    from mmseg.structures import SegDataSample
    x = _randn(2, 3, 80, 112)
    samples = [SegDataSample(metainfo=dict(img_shape=(70, 100), ori_shape=(140, 200),
                                           padding_size=(0, 12, 0, 10))),
               SegDataSample(metainfo=dict(img_shape=(80, 112), ori_shape=(40, 56),
                                           flip=True, flip_direction='horizontal'))]
    results = segmentor(x, samples, mode='predict')
    logits = segmentor(x)
    first = results[0].pred_sem_seg.data
    assert first.shape == (1, 140, 200)
    # Reference: mmseg's order (upsample x16, crop the padding, resize to ori_shape).
    up = F.interpolate(logits[:1], size=(80, 112), mode='bilinear', align_corners=False)
    ref = F.interpolate(up[..., :70, :100], size=(140, 200), mode='bilinear',
                        align_corners=False)[0].argmax(0)
    agree = (first[0] == ref).float().mean().item()
    assert agree > 0.97, agree                     # one-step resampling: boundary pixels only
    second = results[1].pred_sem_seg.data[0]
    up = F.interpolate(logits[1:].flip(-1), size=(40, 56), mode='bilinear', align_corners=False)
    assert (second == up[0].argmax(0)).float().mean().item() > 0.97
    assert results[0].metainfo['classes'] == ('cat', 'dog', 'grass')


def test_predict_threshold_uses_ignore_index(segmentor):
    segmentor.threshold = 1.0
    try:
        out = segmentor.predict(_randn(1, 3, 64, 64))
    finally:
        segmentor.threshold = None
    assert (out[0].pred_sem_seg.data == 255).all()


def test_mode_and_vocabulary_errors(segmentor):
    with pytest.raises(ConfigError, match='nothing to train'):
        segmentor(_randn(1, 3, 64, 64), mode='loss')
    with pytest.raises(ConfigError, match='unknown forward mode'):
        segmentor(_randn(1, 3, 64, 64), mode='train')
    empty = TrainingFreeSegmentor('ViTamin-Tiny', None, templates='single',
                                  text_disk_cache=False)
    with pytest.raises(ConfigError, match='no vocabulary'):
        empty(_randn(1, 3, 64, 64))
    empty.set_vocabulary('kitten, cat; dog')
    assert empty.class_names == ['kitten', 'dog']
    with pytest.raises(ConfigError, match='multiple of 16'):
        empty.stride = 20
    with pytest.raises(ConfigError, match='multiple of 16'):
        TrainingFreeSegmentor('ViTamin-Tiny', None, stride=24, templates='single')


def test_regions_of_a_collage_are_told_apart(segmentor):
    """Prototypes from each half of a collage (a photo and its negative) label their own half.

    Random weights carry no semantics, but the pipeline (windows, CLIP head,
    cosine scoring, resampling back to pixels) must keep where things are:
    a transposed or shifted map fails this.
    """
    from skimage import data
    from vitamin_dense.utils.image_io import read_image
    left = read_image(data.chelsea())[:256, :192]
    right = 255 - left
    for axis in (1, 0):
        collage = np.concatenate([left, right], axis=axis)
        mean = torch.tensor(segmentor.backbone.pixel_mean).view(1, 3, 1, 1)
        std = torch.tensor(segmentor.backbone.pixel_std).view(1, 3, 1, 1)
        x = (torch.from_numpy(collage).permute(2, 0, 1)[None].float() - mean) / std
        clip = segmentor.extract_clip_map(x)
        half = clip.shape[-1 if axis == 1 else -2] // 2
        parts = (clip[..., :half], clip[..., half:]) if axis == 1 else \
            (clip[..., :half, :], clip[..., half:, :])
        protos = F.normalize(torch.stack([p.mean(dim=(0, 2, 3)) for p in parts]), dim=-1)
        labels, _ = training_free_segment(clip, protos, 100.0, collage.shape[:2])
        truth = torch.zeros(collage.shape[:2], dtype=torch.long)
        if axis == 1:
            truth[:, 192:] = 1
        else:
            truth[256:, :] = 1
        accuracy = (labels[0] == truth).float().mean().item()
        assert accuracy > 0.85, (axis, accuracy)


def test_config_evaluates_the_baseline_with_the_runner(tmp_path):
    """What `tools/test.py configs/ov_seg/training-free_... none` does, on a fake ADE20K."""
    import os
    from _mmlab_fake_data import write_ade20k_like
    from vitamin_dense.engine.config import build_runner, load_config
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = os.path.join(root, 'configs', 'ov_seg', 'training-free_vitamin-l336_ade20k-150.py')
    data = write_ade20k_like(str(tmp_path / 'ade'), num_images=2, size=(64, 80))
    cfg = load_config(config, {'model.model_name': 'ViTamin-Tiny', 'model.weights': None,
                               'model.templates': 'single', 'model.stride': 32,
                               'model.text_disk_cache': False})
    cfg.test_dataloader.dataset.data_root = data['root']
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    cfg.test_dataloader.dataset.pipeline[1].scale = (80, 64)
    cfg.work_dir = str(tmp_path / 'work')
    runner = build_runner(cfg)
    metrics = runner.test()     # IoUMetric checks prediction and ground-truth shapes agree
    assert 0.0 <= metrics['sem_seg/mIoU'] <= 100.0
    assert 'sem_seg/mIoU_unseen' in metrics
    model = runner.model
    assert isinstance(model, TrainingFreeSegmentor) and len(model.class_names) == 150
    batch = next(iter(runner.test_dataloader))
    sample = model.test_step(batch)[0]
    assert sample.pred_sem_seg.data.shape[-2:] == sample.gt_sem_seg.data.shape[-2:] == (64, 80)
