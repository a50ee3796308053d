"""Sliding F-ViT against the released reference's own modules (tests/data/fvit_reference/).

The fixtures were produced by running Beckschen/ViTamin's ``vitamin_fvit/F-ViT``
code (MMDetection 2.28, mmcv 1.7) on small random weights: its box head, RoI
head with the CLIP ensemble, RPN heads (stock and the normalised OV-LVIS one),
its sliding-window stitching and dense CLIP map (around a stand-in window
network) and its prompt recipe. Each test loads the reference's state dict
through our converter's key mapping into our module and compares outputs.
"""
import hashlib
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitamin_dense.models.fvit.convert import convert_state_dict, split_embeddings

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'fvit_reference')
C, E = 16, 32
ATOL = 1e-5


def _load(name):
    return torch.load(os.path.join(DATA, name), map_location='cpu', weights_only=True)


def _classes():
    with open(os.path.join(DATA, 'classes.json')) as f:
        info = json.load(f)
    return info['all_classes'], info['seen_classes']


def _bbox_head_cfg(**overrides):
    cfg = dict(
        type='FViTBBoxHead', embed_dim=E, in_channels=C, conv_out_channels=C,
        fc_out_channels=E, roi_feat_size=7, num_shared_convs=4, num_shared_fcs=2,
        num_cls_fcs=1, num_reg_fcs=1, norm_cfg=dict(type='BN', requires_grad=True),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0), temperature=50.0,
        background_weight=0.6, clip_temperature=75.0, alpha=0.1, beta=0.8)
    cfg.update(overrides)
    return cfg


def _build(cfg):
    """Build an mmdet module in mmdet's scope (whatever scope earlier tests left current)."""
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg)


def _converted(state, prefix):
    """Our state dict of one reference module (keys given without the detector prefix)."""
    mapped, embeddings = convert_state_dict({prefix + k: v for k, v in state.items()})
    return {k[len(prefix):]: v for k, v in mapped.items()}, embeddings


def _our_bbox_head(state):
    names, seen = _classes()
    head = _build(_bbox_head_cfg())
    ours, embeddings = _converted(state, 'roi_head.bbox_head.')
    table, background = split_embeddings(embeddings, names)
    ours['background_embedding'] = background
    head.load_state_dict(ours, strict=True)
    novel = torch.tensor([n not in seen for n in names])
    return head, table, novel


def test_box_head_matches_reference():
    """Point 1: 4 convs + 2 shared FCs, cosine on relu(cls_fc), own reg FC; and the loss."""
    fix = _load('bbox_head.pt')
    names, seen = _classes()
    head, table, novel = _our_bbox_head(fix['state_dict'])
    inputs, out = fix['inputs'], fix['outputs']
    assert isinstance(head.fc_cls, torch.nn.Identity) and len(head.cls_fcs) == 1 \
        and len(head.reg_fcs) == 1
    head.eval()
    head.set_class_embeddings(table, novel)
    with torch.no_grad():
        probs, deltas = head(inputs['x'])
        ens, deltas_ens = head(inputs['x'], inputs['vlm_box_feats'])
    torch.testing.assert_close(probs, out['logits_eval'].softmax(-1), atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(deltas, out['deltas_eval'], atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(ens, out['probs_ensemble'], atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(deltas_ens, out['deltas_eval'], atol=ATOL, rtol=1e-4)

    # Training: the reference scores all classes and masks novel ones with -inf in its
    # loss; we score base classes + background only. Same logits, same loss.
    base = [i for i, n in enumerate(names) if n in seen]
    head.train()
    head.set_class_embeddings(table[base])
    logits, deltas = head(inputs['x'])
    keep = base + [len(names)]
    torch.testing.assert_close(logits, out['logits_train'][:, keep], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(deltas, out['deltas_train'], atol=ATOL, rtol=1e-4)
    to_base = {old: new for new, old in enumerate(keep)}
    labels = torch.tensor([to_base[int(v)] for v in inputs['labels']])
    rois = torch.cat([torch.zeros(len(labels), 1),
                      torch.tensor([[4., 6., 60., 70.]]).expand(len(labels), 4)], 1)
    losses = head.loss(logits, deltas, rois, labels, inputs['label_weights'],
                       inputs['bbox_targets'], inputs['bbox_weights'])
    for key in ('loss_cls', 'loss_bbox', 'acc'):
        torch.testing.assert_close(losses[key].detach(), out[key], atol=1e-4, rtol=1e-4)


def test_roi_head_and_clip_ensemble_match_reference():
    """The CLIP RoI ensemble: RoIAlign(1x1) on the dense CLIP map, geometric ensemble, NMS."""
    from mmdet.structures import DetDataSample
    from mmengine.config import ConfigDict
    from mmengine.structures import InstanceData
    fix = _load('roi_head.pt')
    names, seen = _classes()
    inputs, out, tcfg = fix['inputs'], fix['outputs'], fix['test_cfg']
    roi_head = _build(dict(
        type='FViTRoIHead',
        bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                                out_channels=C, featmap_strides=[4, 8, 16, 32]),
        bbox_head=_bbox_head_cfg(),
        clip_roi_extractor=dict(type='SingleRoIExtractor',
                                roi_layer=dict(type='RoIAlign', output_size=1, sampling_ratio=0),
                                out_channels=E, featmap_strides=[16]),
        test_cfg=ConfigDict(score_thr=tcfg['score_thr'],
                            nms=dict(type='nms', iou_threshold=tcfg['iou_threshold']),
                            max_per_img=tcfg['max_per_img'])))
    state = {k[len('bbox_head.'):]: v for k, v in fix['state_dict'].items()
             if k.startswith('bbox_head.')}
    assert all(k.startswith('bbox_head.') for k in fix['state_dict'])  # extractors: no weights
    head, table, novel = _our_bbox_head(state)
    roi_head.bbox_head.load_state_dict(head.state_dict())
    roi_head.eval()
    roi_head.bbox_head.set_class_embeddings(table, novel)

    from mmdet.structures.bbox import bbox2roi
    feats = tuple(inputs['feats'])
    rois = bbox2roi([inputs['proposals'][:, :4]])
    roi_head._clip_map = inputs['clip_map']   # what predict() sets from the detector
    with torch.no_grad():
        res = roi_head._bbox_forward(feats, rois)
    roi_head._clip_map = None
    torch.testing.assert_close(res['cls_score'], out['cls_score'], atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(res['bbox_pred'], out['bbox_pred'], atol=ATOL, rtol=1e-4)

    h, w = inputs['img_shape'].tolist()
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(2 * h, int(1.25 * w)),
                                         scale_factor=tuple(inputs['scale_factor'].tolist())))
    proposals = InstanceData(bboxes=inputs['proposals'][:, :4])
    with torch.no_grad():
        result = roi_head.predict(feats, [proposals], [sample], rescale=True,
                                  clip_map=inputs['clip_map'])[0]
    order = torch.argsort(result.scores, descending=True)
    ours = torch.cat([result.bboxes[order], result.scores[order, None],
                      result.labels[order, None].float()], 1)
    assert ours.shape == out['dets'].shape and len(ours) > 10
    torch.testing.assert_close(ours, out['dets'], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('which', ['ovcoco', 'ovlvis'])
def test_rpn_heads_match_reference(which):
    """Point 3: OV-LVIS's RPN normalises its two convs (FViTRPNHead); OV-COCO's is stock."""
    from mmengine.config import ConfigDict
    fix = _load(f'rpn_head_{which}.pt')
    cfg = dict(
        type='FViTRPNHead' if which == 'ovlvis' else 'RPNHead', in_channels=C, feat_channels=C,
        num_convs=2,
        anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                              strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                        target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0))
    if which == 'ovlvis':
        cfg['norm_cfg'] = dict(type='BN', requires_grad=True)
    rpn = _build(cfg)
    ours, _ = _converted(fix['state_dict'], 'rpn_head.')
    rpn.load_state_dict(ours, strict=True)
    rpn.eval()
    feats = tuple(fix['inputs']['feats'])
    with torch.no_grad():
        cls_scores, bbox_preds = rpn(feats)
    for a, b in zip(cls_scores + bbox_preds,
                    fix['outputs']['cls_scores'] + fix['outputs']['bbox_preds']):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-4)
    test_cfg = ConfigDict(nms_pre=2000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7),
                          min_bbox_size=0)
    with torch.no_grad():
        props = rpn.predict_by_feat(cls_scores, bbox_preds,
                                    batch_img_metas=[dict(img_shape=(128, 128),
                                                          scale_factor=(1.0, 1.0))],
                                    cfg=test_cfg, rescale=False)[0]
    ours = torch.cat([props.bboxes, props.scores[:, None]], 1)
    ref = fix['outputs']['proposals']
    assert len(ours) == len(ref) > 100
    # equal scores (anchors with the same logit) may come in either order
    torch.testing.assert_close(_canonical(ours), _canonical(ref), atol=1e-4, rtol=1e-4)


def _canonical(rows):
    """Rows ``(x1, y1, x2, y2, score)`` sorted by score, ties broken by the box."""
    r = rows.double().numpy().round(4)
    return rows[np.lexsort((r[:, 3], r[:, 2], r[:, 1], r[:, 0], -r[:, 4]))]


# ------------------------------------------------------------ window placement (point 5)
def _test_image(h, w):
    """The fixture's deterministic input pattern (no image file is needed)."""
    yy = torch.arange(h, dtype=torch.float64)[:, None]
    xx = torch.arange(w, dtype=torch.float64)[None, :]
    chans = [torch.sin(0.05 * xx * (c + 1) + 0.3 * c) + torch.cos(0.031 * yy * (c + 2))
             + 0.002 * ((xx * 7 + yy * 13 + c * 5) % 17) for c in range(3)]
    return torch.stack(chans).float()[None]


@pytest.fixture(scope='module')
def placement():
    return _load('placement.pt')


def _standin_backbone(placement_fixture, window_placement):
    """ViTaminBackbone whose window network is the fixture's stand-in (window 336)."""
    from vitamin_dense.backbones import ViTaminBackbone
    sw = placement_fixture['standin']
    bb = ViTaminBackbone('ViTamin-Tiny', weights=None, out_levels=('s4', 's8', 's16', 's32'),
                         out_block_indices=(0,), with_clip_map=True,
                         window_placement=window_placement)
    bb.eval()
    bb.window_size = 336

    def window(crop):
        g = crop.mean(1, keepdim=True)
        p16 = F.avg_pool2d(crop, 16)
        mid = torch.einsum('oc,bchw->bohw', sw['A'], p16) + sw['a0'][None, :, None, None]
        last = torch.tanh(torch.einsum('oc,bchw->bohw', sw['B'], p16))
        out = {'s4': F.avg_pool2d(g, 4), 's8': F.avg_pool2d(g, 8), 'block0': mid, 's16': last}
        if window_placement == 'aligned':  # per-window projection (what 'aligned' averages)
            out['clip'] = bb.clip_project(last.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return out

    bb.forward_window = window
    fc_norm = torch.nn.LayerNorm(sw['ln_w'].numel())
    fc_norm.load_state_dict({'weight': sw['ln_w'], 'bias': sw['ln_b']})
    proj = torch.nn.Linear(sw['proj'].shape[1], sw['proj'].shape[0], bias=False)
    proj.weight.data.copy_(sw['proj'])
    bb.visual.trunk.fc_norm = fc_norm
    bb.visual.head = proj
    return bb


@pytest.mark.parametrize('size', ['896x896', '640x896'])
def test_published_placement_matches_reference(placement, size):
    """Stride 168 on a 336 px window: the reference's crops, floor placement per output
    stride, overlap averaging and the dense CLIP map (tokens averaged, then fc_norm + proj)."""
    h, w = map(int, size.split('x'))
    ref = placement['cases'][size]
    bb = _standin_backbone(placement, 'published')
    with torch.no_grad():
        maps = bb(_test_image(h, w), stride=168)
    torch.testing.assert_close(maps['s4'], ref['s4'], atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(maps['s8'], ref['s8'], atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(maps['block0'][:, :4], ref['mid'], atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(maps['s32'][:, :4], ref['s32'], atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(F.normalize(maps['clip'], dim=1), ref['clip'], atol=ATOL,
                               rtol=1e-5)


def test_aligned_placement_differs_from_the_published_one(placement):
    """The default ('aligned', stride 160) is not the released placement (so the mode matters)."""
    ref = placement['cases']['896x896']
    bb = _standin_backbone(placement, 'aligned')
    with torch.no_grad():
        maps = bb(_test_image(896, 896), stride=160)
    assert maps['s16'].shape[-2:] == ref['clip'].shape[-2:]
    assert (F.normalize(maps['clip'], dim=1) - ref['clip']).abs().max() > 1e-3
    assert (maps['block0'][:, :4] - ref['mid']).abs().max() > 1e-3


# ------------------------------------------------------------------ text recipe (point 2)
def test_prompts_match_reference():
    from vitamin_dense.models.fvit.text import FVIT_TEMPLATES, fvit_prompts
    with open(os.path.join(DATA, 'text_prompts.json')) as f:
        ref = json.load(f)
    assert len(FVIT_TEMPLATES) == 63
    for name, prompts in zip(ref['names'], ref['prompts']):
        assert fvit_prompts(name) == prompts, name


def _prompt_vector(prompt):
    digest = hashlib.sha256(prompt.encode('utf-8')).digest()
    return torch.tensor([b / 255.0 - 0.5 for b in digest[:8]], dtype=torch.float32)


def test_class_embeddings_match_reference_recipe(monkeypatch):
    """Per prompt normalised, mean over the 63 templates, normalised; category name only."""
    from vitamin_dense.models.fvit.text import FViTTextEncoder
    from vitamin_dense.text import Vocabulary
    with open(os.path.join(DATA, 'text_prompts.json')) as f:
        names = json.load(f)['names']
    ref = _load('text_embeddings.pt')['embeddings']
    encoder = FViTTextEncoder('ViTamin-Tiny', weights=None, disk_cache=False, progress=False)
    monkeypatch.setattr(encoder, 'encode_prompts', lambda prompts: F.normalize(
        torch.stack([_prompt_vector(p) for p in prompts]), dim=-1))
    ours = encoder._encode_uncached(Vocabulary(tuple((n,) for n in names)))
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    # Synonyms are ignored, as published: only the category name is embedded.
    with_synonyms = encoder._encode_uncached(Vocabulary((('aerosol_can', 'spray_can'),)))
    torch.testing.assert_close(with_synonyms[0], ref[names.index('aerosol_can')], atol=1e-6,
                               rtol=1e-5)


def test_reference_class_lists_match_our_data_sets():
    """The converter names the released embeddings with our OV-COCO / LVIS class orders."""
    from vitamin_dense.datasets.ov_splits import OV_COCO_BASE_CLASSES, ov_coco_classes
    from vitamin_dense.models.fvit.convert import default_class_names, default_seen_classes
    with open(os.path.join(DATA, 'classes', 'mscoco_65_classes.json')) as f:
        assert list(ov_coco_classes()) == default_class_names(65) == json.load(f)
    with open(os.path.join(DATA, 'classes', 'mscoco_seen_classes.json')) as f:
        assert sorted(OV_COCO_BASE_CLASSES) == sorted(json.load(f))
        assert sorted(default_seen_classes(default_class_names(65))) == sorted(
            OV_COCO_BASE_CLASSES)
    with open(os.path.join(DATA, 'classes', 'lvis_v1_all_classes.json')) as f:
        assert default_class_names(1203) == json.load(f)   # LVIS v1's own spelling
