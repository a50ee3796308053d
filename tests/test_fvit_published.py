"""The published Sliding F-ViT configs equal the released reference on each fidelity point.

1. box head: 4 convs + 2 shared FCs, one FC + ReLU per branch, cosine on the
   (non-negative) class branch output;
2. class embeddings: F-ViT's 63-template recipe on the category name, plus a
   "background" embedding;
3. OV-LVIS RPN with normalised convs;
4. test images padded to a square (896 x 896) after normalisation;
5. the released window placement (stride 168, floor onto the token grid) and
   the dense CLIP map projected after averaging the windows' tokens.

The models are the published configs with ViTamin-Tiny in place of ViTamin-L
(what changes is only the trunk and the widths that follow from it).
"""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS, DefaultScope

import vitamin_dense  # noqa: F401
from vitamin_dense.engine.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {
    'model.backbone.model_name': 'ViTamin-Tiny', 'model.backbone.weights': None,
    'model.backbone.out_block_indices': (0, ), 'model.backbone.memory_budget_mb': 256,
    'model.window_stride': 24,   # not a multiple of 16: the released placement floors it
    'model.text_encoder.disk_cache': False, 'model.text_encoder.progress': False,
    'model.roi_head.bbox_head.embed_dim': 64, 'model.roi_head.bbox_head.fc_out_channels': 64,
    'model.roi_head.clip_roi_extractor.out_channels': 64,
    'model.test_cfg.rpn.max_per_img': 50,
}


def _config(which, tiny=True):
    return load_config(os.path.join(ROOT, f'configs/ov_det/fvit_vitamin_l_{which}.py'),
                       TINY if tiny else None)


@pytest.fixture(scope='module', params=['ovcoco', 'ovlvis'])
def published(request):
    from mmengine.model import revert_sync_batchnorm
    cfg = _config(request.param)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    return request.param, cfg, model.eval()


def test_configs_name_the_published_recipe():
    for which in ('ovcoco', 'ovlvis'):
        model = _config(which, tiny=False).model
        assert model.window_stride == 168 and model.window_placement == 'published'
        assert model.text_encoder.type == 'FViTTextEncoder'
        assert model.data_preprocessor.type == 'FViTDataPreprocessor'
        assert model.data_preprocessor.pad_to_square
        head = model.roi_head.bbox_head
        assert (head.num_shared_convs, head.num_shared_fcs, head.num_cls_fcs,
                head.num_reg_fcs) == (4, 2, 1, 1)
        assert head.fc_out_channels == head.embed_dim == 768
        assert model.rpn_head.type == ('FViTRPNHead' if which == 'ovlvis' else 'RPNHead')


def test_box_head_layout(published):
    """Point 1: the embedding is relu(cls_fc(.)), regression has its own FC + ReLU."""
    from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
    _, _, model = published
    head = model.roi_head.bbox_head
    assert len(head.shared_convs) == 4 and len(head.shared_fcs) == 2
    assert len(head.cls_fcs) == 1 and len(head.reg_fcs) == 1
    assert isinstance(head.fc_cls, torch.nn.Identity)
    assert head.fc_reg.in_features == head.reg_fcs[0].out_features
    x = torch.randn(5, 256, 7, 7)
    with torch.no_grad():
        embedding, deltas = ConvFCBBoxHead.forward(head, x)
    assert embedding.shape == (5, 64) and (embedding >= 0).all() and (embedding > 0).any()
    assert deltas.shape == (5, 4)


def test_text_embeddings_follow_the_recipe(published):
    """Point 2: F-ViT's templates, category name only, a recipe-made background."""
    from vitamin_dense.models.fvit.text import FVIT_TEMPLATES, FViTTextEncoder
    _, _, model = published
    text = model.text_encoder
    assert isinstance(text, FViTTextEncoder) and text.templates == FVIT_TEMPLATES
    torch.testing.assert_close(model.roi_head.bbox_head.background_embedding,
                               text.encode(['background'])[0])
    synonyms = text.encode('aerosol_can, spray_can; zebra')
    torch.testing.assert_close(synonyms, text.encode(['aerosol_can', 'zebra']))


def test_rpn_head(published):
    """Point 3: OV-LVIS's RPN convs are conv - BN - ReLU (no conv bias); OV-COCO's are stock."""
    which, _, model = published
    convs = model.rpn_head.rpn_conv
    assert len(convs) == 2
    for conv in convs:
        if which == 'ovlvis':
            assert isinstance(conv.bn, torch.nn.modules.batchnorm._BatchNorm)
            assert conv.conv.bias is None
        else:
            assert not conv.with_norm and conv.conv.bias is not None


def test_test_images_are_padded_to_a_square(published, tmp_path):
    """Point 4: the test pipeline + preprocessor give a 896 x 896 input, the image top-left,
    zeros (the mean colour after normalisation) elsewhere."""
    import cv2
    from mmengine.dataset import Compose, pseudo_collate
    _, cfg, model = published
    image = np.random.default_rng(0).integers(0, 255, (300, 450, 3), dtype=np.uint8)
    path = str(tmp_path / 'image.png')
    cv2.imwrite(path, image)
    steps = [s for s in cfg.test_dataloader.dataset.pipeline
             if 'LoadAnnotations' not in s['type']]
    with DefaultScope.overwrite_default_scope('mmdet'):
        pipeline = Compose(steps)
    data = pseudo_collate([pipeline(dict(img_path=path, img_id=0))])
    with torch.no_grad():
        batch = model.data_preprocessor(data, False)
    inputs, sample = batch['inputs'], batch['data_samples'][0]
    assert inputs.shape == (1, 3, 896, 896)
    assert sample.img_shape == (597, 896)
    assert sample.batch_input_shape == (896, 896) and sample.pad_shape == (896, 896)
    assert inputs[..., 597:, :].abs().max() == 0 and inputs[..., :597, :].abs().max() > 0
    mean = model.data_preprocessor.mean.view(3, 1, 1)
    std = model.data_preprocessor.std.view(3, 1, 1)
    resized = cv2.resize(image, (896, 597), interpolation=cv2.INTER_LINEAR)
    expected = (torch.from_numpy(resized[..., ::-1].copy()).permute(2, 0, 1).float() - mean) / std
    torch.testing.assert_close(inputs[0, :, :597], expected, atol=1e-4, rtol=1e-4)


def test_released_window_placement(published):
    """Point 5: stride kept (not snapped), outputs at floor(offset / stride), and the CLIP
    map = proj(fc_norm(window-averaged tokens))."""
    from vitamin_dense.backbones import plan_windows
    _, _, model = published
    bb = model.backbone
    assert bb.window_placement == 'published' and bb.train_stride == bb.test_stride == 24
    assert plan_windows(896, 896, 336, 168, placement='published').ys == (0, 168, 336, 504, 560)
    images = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        maps = bb(images)
        clip_from_tokens = bb.clip_project(maps['s16'].permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(maps['clip'], clip_from_tokens)
    # 96 x 128 px, window 64, stride 24: windows start at y in (0, 24, 32), x in (0, 24, 48,
    # 64), i.e. on stride-16 tokens floor(offset / 16) = (0, 1, 2) and (0, 1, 3, 4), 4 tokens
    # each. Token (1, 1) is covered by the windows at y, x in {0, 24}: their mean.
    cover = []
    with torch.no_grad():
        for y in (0, 24):
            for x in (0, 24):
                out = bb.forward_window(images[..., y:y + 64, x:x + 64])['s16']
                cover.append(out[0, :, 1 - y // 16, 1 - x // 16])
    torch.testing.assert_close(maps['s16'][0, :, 1, 1], torch.stack(cover).mean(0),
                               atol=1e-5, rtol=1e-5)


def test_published_model_predicts_on_padded_inputs(published):
    which, _, model = published
    from mmdet.structures import DetDataSample
    model.set_dataset_meta(dict(classes=('cat', 'dog', 'car'), base_classes=('cat', 'car')))
    model.test_cfg.rcnn.score_thr = 0.0
    size = (128, 128)
    sample = DetDataSample(metainfo=dict(img_shape=(96, 128), ori_shape=(96, 128),
                                         pad_shape=size, batch_input_shape=size,
                                         scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        pred = model.predict(torch.randn(1, 3, *size), [sample])[0].pred_instances
    assert len(pred) > 0 and int(pred.labels.max()) < 3
    assert float(pred.bboxes[:, 3].max()) <= 96.0  # clipped to the image, not the padding
