"""ONNX export: onnxruntime reproduces PyTorch on sizes and vocabularies not seen at export."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

pytest.importorskip('onnx', reason='ONNX export needs onnx (requirements/tests.txt)')
pytest.importorskip('onnxruntime', reason='running the export needs onnxruntime')

from vitamin_dense.errors import ConfigError, WeightsError  # noqa: E402
from vitamin_dense.export import OnnxImagePath, export_onnx, image_path  # noqa: E402
from vitamin_dense.export.onnx_export import example_images  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def check_close(got, want, atol=1e-4):
    assert set(got) == set(want)
    for k in want:
        assert got[k].shape == tuple(want[k].shape), k
        np.testing.assert_allclose(got[k], want[k].float().numpy(), atol=atol, rtol=1e-4,
                                   err_msg=k)


@pytest.fixture(scope='module')
def training_free(tiny_model_name, tmp_path_factory):
    from vitamin_dense.models.training_free import TrainingFreeSegmentor
    torch.manual_seed(0)
    model = TrainingFreeSegmentor(tiny_model_name, None, stride=32, text_disk_cache=False).eval()
    out = str(tmp_path_factory.mktemp('tf_onnx'))
    manifest = export_onnx(model, out, 'cat,dog,sky')  # traced on a 96 x 80 example
    return model, out, manifest


def test_training_free_matches_pytorch_on_new_size_and_vocabulary(training_free):
    model, out, manifest = training_free
    assert manifest['kind'] == 'training-free' and 'fixed_size' not in manifest
    assert max(manifest['verified_max_abs_diff'].values()) < 1e-4
    runtime = OnnxImagePath(out)
    path = image_path(model)
    for size, vocab in (((150, 70), 'a,b,c,d,e,f,g'), ((64, 200), 'one')):  # non-square, K 7 / 1
        images = example_images(size, seed=3)
        text = path.text(vocab)
        got, want = runtime(images, text), path(images, text)
        assert got['logits'].shape[1] == len(vocab.split(','))
        check_close(got, want)
    # the vocabulary saved beside the graphs is the default
    images = example_images((80, 80), seed=1)
    check_close(runtime(images), path(images, path.text('cat,dog,sky')))
    assert runtime.vocabulary()['names'] == ['cat', 'dog', 'sky']


def test_labels_from_exported_logits_equal_the_segmenter(training_free):
    """Post-processing outside the graph: the Segmenter's labels from onnxruntime logits."""
    from vitamin_dense.apis import Segmenter, TrainingFreePredictor
    from vitamin_dense.models.training_free import label_map, stride_region
    model, out, _ = training_free
    seg = Segmenter(predictor=TrainingFreePredictor(model, torch.device('cpu')), device='cpu')
    rgb = (np.random.default_rng(0).random((90, 130, 3)) * 255).astype(np.uint8)
    want = seg(rgb, 'cat,dog,sky')
    runtime = OnnxImagePath(out)
    logits = torch.from_numpy(runtime(runtime.preprocess(rgb))['logits'][0])
    labels, _ = label_map(logits, rgb.shape[:2], stride_region(rgb.shape[:2], logits.shape[-2:]))
    assert (labels == want.labels).mean() > 0.999


def test_owl_matches_pytorch(tiny_model_name, tmp_path):
    from vitamin_dense.apis.detector import build_detector
    torch.manual_seed(0)
    model, _ = build_detector(model=tiny_model_name, random_init=True)
    export_onnx(model, str(tmp_path), 'cat,dog')
    runtime = OnnxImagePath(str(tmp_path))
    assert 'box_bias' in runtime.manifest['extra_inputs']
    path = image_path(model)
    images = example_images((112, 176), seed=5)  # 7 x 11 token grid, unlike the export's
    text = path.text('a,b,c,d,e')
    got, want = runtime(images, text), path(images, text)
    assert set(got) == {'boxes', 'logits', 'objectness'}
    assert got['logits'].shape == (1, 7 * 11, 5)
    check_close(got, want)


@pytest.fixture(scope='module')
def framed_owl():
    """A tiny OWL detector with a 128 px square box frame (as every OWL config has) and a
    non-zero box MLP (a zero one decodes every token to its cell in any frame)."""
    from tests.helpers.det import build_tiny_detector
    det = build_tiny_detector(vocabulary='circle', frame_size=128).eval()
    torch.manual_seed(3)
    with torch.no_grad():
        det.head.box_head.dense2.weight.normal_(0, 0.3)
        det.head.box_head.dense2.bias.copy_(torch.tensor([0.4, -0.6, 1.2, 0.8]))
    return det


def _path_detections(model, out, hw):
    """``detect``'s post-processing (no threshold, no top-k) on raw outputs of one image."""
    from vitamin_dense.models.owl import boxes_to_pixels, valid_token_mask
    from vitamin_dense.models.owl.detector import frame_side_tokens
    from vitamin_dense.models.owl.postprocess import (OwlTestConfig, rescale_boxes,
                                                      select_detections, token_scores)
    frame = frame_side_tokens(*hw, model.frame_size)
    boxes, logits = (torch.as_tensor(np.asarray(out[k][0])) for k in ('boxes', 'logits'))
    assert boxes.shape[0] == frame * frame  # one token per cell of the square canvas
    scores = token_scores(logits, None, 'class')
    inside = valid_token_mask([hw], (frame, frame))[0].reshape(-1)
    scores = scores.masked_fill(~inside[:, None], float('-inf'))
    cfg = OwlTestConfig(score_thr=-1.0, max_per_img=10 ** 6, nms_pre=10 ** 6)
    px, kept, _ = select_detections(scores, boxes_to_pixels(boxes, frame), cfg)
    return rescale_boxes(px, None, hw), kept


def test_owl_path_equals_predict_in_the_square_frame(framed_owl):
    """The exported path is the model's ``detect``: padded to the 128 px frame, context over
    the image's tokens only, boxes decoded in the frame, tokens outside the image dropped."""
    from vitamin_dense.models.owl.postprocess import OwlTestConfig
    path = image_path(framed_owl)
    text = path.text('a,b')
    for hw in ((80, 112), (48, 160)):  # inside the frame (8 x 8 tokens); longer (10 x 10)
        images = example_images(hw, seed=7)
        boxes, scores = _path_detections(framed_owl, path(images, text), hw)
        cfg = OwlTestConfig(score_thr=-1.0, max_per_img=10 ** 6, nms_pre=10 ** 6)
        want = framed_owl.detect(images, [dict(img_shape=hw)], queries=text['class_embeddings'],
                                 rescale=False, test_cfg=cfg.__dict__)[0]
        assert len(scores) == 2 * (-(-hw[0] // 16)) * (-(-hw[1] // 16))
        torch.testing.assert_close(scores, want.scores, rtol=0, atol=1e-6)
        torch.testing.assert_close(boxes, want.bboxes, rtol=0, atol=1e-4)


def test_framed_owl_runtime_pads_to_the_frame(framed_owl, tmp_path):
    """onnxruntime reproduces the frame model's raw outputs on non-square sizes unlike the
    export's (96 x 80 -> a 128 px canvas), including one longer than the frame."""
    manifest = export_onnx(framed_owl, str(tmp_path), 'cat,dog')
    assert manifest['frame_size'] == 128
    assert set(manifest['extra_inputs']) == {'box_bias', 'valid_tokens'}
    runtime = OnnxImagePath(str(tmp_path))
    path = image_path(framed_owl)
    text = path.text('a,b,c')
    for hw, frame in (((80, 112), 8), ((64, 200), 13)):
        assert runtime.frame_tokens(*hw) == frame
        images = example_images(hw, seed=5)
        got, want = runtime(images, text), path(images, text)
        assert got['logits'].shape == (1, frame * frame, 3)
        check_close(got, want)
        # the model's own canvas run, as detect() calls it
        with torch.no_grad():
            own = framed_owl._run_canvas(images, [hw], text['class_embeddings'])
        check_close(got, {k: own[k] for k in got})


def test_fcclip_matches_pytorch_at_its_size(tmp_path):
    from vitamin_dense.engine.config import load_config
    from vitamin_dense.registry import MODELS, register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = load_config(osp.join(ROOT, 'configs', 'ov_seg', 'vitamin_tiny_synthetic.py'))
    cfg.model.ensemble = dict(use_out_vocab=True)  # the out-of-vocabulary branch exports too
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    model.set_vocabulary('cat,dog,grass', 'train')
    manifest = export_onnx(model, str(tmp_path), 'cat,dog', example_size=(96, 80))
    assert manifest['fixed_size'] == [96, 80]
    runtime = OnnxImagePath(str(tmp_path))
    path = image_path(model)
    text = path.text('grass, lawn; cat; bird; tree')  # 4 classes, two of them seen
    assert text['seen_classes'].tolist() == [True, True, False, False]
    images = example_images((96, 80), seed=2)
    got, want = runtime(images, text), path(images, text)
    assert got['class_probs'].shape[-1] == 5  # 4 classes + void
    check_close(got, want)
    with pytest.raises(ConfigError, match='exported for 96x80'):
        runtime(example_images((64, 64)), text)


def test_cli_exports_and_rewrites_the_vocabulary(tmp_path, tiny_model_name):
    import importlib.util
    spec = importlib.util.spec_from_file_location('export_onnx_cli',
                                                  osp.join(ROOT, 'tools', 'export_onnx.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = str(tmp_path / 'tf')
    base = ['training-free', out, '--random-init', '--model', tiny_model_name]
    assert cli.main(base + ['--vocab', 'cat,dog']) == 0
    for name in ('window.onnx', 'head.onnx', 'manifest.json', 'class_embeddings.npy',
                 'vocabulary.json'):
        assert osp.isfile(osp.join(out, name)), name
    graphs = {n: osp.getmtime(osp.join(out, n)) for n in ('window.onnx', 'head.onnx')}
    assert cli.main(base + ['--vocab', 'kitten, cat; dog; bird', '--vocab-only']) == 0
    assert {n: osp.getmtime(osp.join(out, n)) for n in graphs} == graphs  # no re-export
    with open(osp.join(out, 'vocabulary.json')) as f:
        assert json.load(f)['names'] == ['kitten', 'dog', 'bird']
    assert np.load(osp.join(out, 'class_embeddings.npy')).shape[0] == 3
    assert OnnxImagePath(out)(example_images((70, 90)))['logits'].shape[1] == 3


def test_runtime_errors(tmp_path):
    with pytest.raises(WeightsError, match='manifest.json'):
        OnnxImagePath(str(tmp_path))
