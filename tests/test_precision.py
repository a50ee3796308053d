"""bf16 autocast inference for every model: it runs, and stays close to float32.

(bf16 is for GPUs; on a CPU autocast runs the same code path, only slower,
which is what these tests need.) Closeness is loose: bf16 keeps 8 bits of
mantissa, and random weights give small logit margins.
"""
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample

from tests.helpers.det import build_tiny_detector
from vitamin_dense.apis import Detector, Segmenter
from vitamin_dense.errors import ConfigError
from vitamin_dense.utils.precision import check_precision, inference_autocast


def _relative(a, b):
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-6))


def test_precision_names_are_checked():
    assert check_precision('bf16') == 'bf16'
    with pytest.raises(ConfigError, match='precision must be one of fp32, bf16'):
        check_precision('fp16')
    with pytest.raises(ConfigError, match='precision'):
        Segmenter('ViTamin-Tiny', None, device='cpu', precision='half')
    assert not torch.is_autocast_enabled('cpu')
    with inference_autocast('cpu', 'bf16'):
        assert torch.is_autocast_enabled('cpu')
        assert torch.get_autocast_dtype('cpu') == torch.bfloat16
    with inference_autocast('cpu', 'fp32'):
        assert not torch.is_autocast_enabled('cpu')


def test_training_free_in_bf16():
    seg = Segmenter('ViTamin-Tiny', None, device='cpu', templates='single', precision='bf16')
    image = (np.random.default_rng(0).random((80, 100, 3)) * 255).astype(np.uint8)
    result = seg(image, 'cat,dog,grass')
    reference = Segmenter('ViTamin-Tiny', None, device='cpu', templates='single')
    reference.predictor.model.load_state_dict(seg.predictor.model.state_dict())
    expected = reference(image, 'cat,dog,grass')
    assert result.labels.shape == (80, 100)
    assert _relative(result.scores, expected.scores) < 0.05


def test_fcclip_in_bf16():
    from tests.test_seg_model import tiny_segmentor
    model = tiny_segmentor().eval()
    model.set_vocabulary('circle,square,triangle,sky,grass', 'test',
                         thing_classes=['circle', 'square', 'triangle'])
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model._forward(x)
        with inference_autocast('cpu', 'bf16'):
            out = model._forward(x)
            samples = model.predict(x)
    assert _relative(out['mask_logits'], expected['mask_logits']) < 0.05
    # CLIP's logit scale (100) multiplies bf16's rounding of the cosines: probabilities
    # move by a few hundredths at most, far less on average
    diff = (out['class_probs'].float() - expected['class_probs']).abs()
    assert diff.max() < 0.15 and diff.mean() < 0.01
    sample = samples[0]
    assert sample.pred_sem_seg.sem_seg.shape == (1, 96, 96)
    assert sample.pred_panoptic_seg.sem_seg.dtype == torch.long


def test_owl_detector_in_bf16():
    det = build_tiny_detector(test_stride=32).eval()
    image = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    meta = dict(img_shape=(96, 128), ori_shape=(96, 128))
    cfg = dict(score_thr=-1.0, nms_iou=None, max_per_img=10 ** 6)
    with torch.no_grad():
        expected = det.detect(image, [meta], test_cfg=cfg)[0]
        with inference_autocast('cpu', 'bf16'):
            out = det.detect(image, [meta], test_cfg=cfg)[0]
    assert out.bboxes.shape == expected.bboxes.shape
    # (the order follows the scores, which bf16 may swap): the same boxes, within 2 px
    got, want = out.bboxes.float().flatten().sort().values, expected.bboxes.flatten().sort().values
    assert (got - want).abs().max() < 2.0
    # and through the API
    api = Detector(model='ViTamin-Tiny', random_init=True, device='cpu', input_size=128,
                   precision='bf16')
    result = api((np.random.default_rng(1).random((90, 120, 3)) * 255).astype(np.uint8),
                 'circle,square', threshold=0.0)
    assert result.boxes.dtype == np.float32 and len(result) > 0


def test_fvit_in_bf16():
    from tests.test_fvit_model import _build
    model = _build().eval()
    model.set_dataset_meta(dict(classes=('cat', 'dog', 'car'), base_classes=('cat', 'car'),
                                novel_classes=('dog',)))
    model.test_cfg.rcnn.score_thr = 0.0
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))

    def samples():
        size = (96, 128)
        return [DetDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size,
                                            batch_input_shape=size, scale_factor=(1.0, 1.0)))]

    with torch.no_grad():
        expected = model.predict(x, samples())[0].pred_instances
        with inference_autocast('cpu', 'bf16'):
            out = model.predict(x, samples())[0].pred_instances
    assert len(out) > 0 and out.bboxes.shape[1] == 4
    assert torch.isfinite(out.scores.float()).all() and torch.isfinite(out.bboxes.float()).all()
    assert abs(float(out.scores.float().max()) - float(expected.scores.max())) < 0.1
