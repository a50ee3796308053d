"""The FC-CLIP segmentor: losses and post-processing against mmdet, modes, vocabularies.

* criterion: our deep-supervised set loss against mmdet's ``Mask2FormerHead``
  loss on the same predictions and the same random points (same seed);
* post-processing: panoptic and instance outputs against mmdet's
  ``MaskFormerFusionHead``; semantic against Mask2Former's formula;
* the model in ``loss`` / ``predict`` / ``tensor`` modes, output contracts
  (shapes, dtypes, mmdet's panoptic id convention), chunked upsampling,
  vocabulary handling and its errors, and the training vocabulary riding in
  the state dict.
"""
import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData, PixelData

from tests.helpers.instances import assert_same_instances
from vitamin_dense.errors import ConfigError, VocabularyError
from vitamin_dense.models import (INSTANCE_OFFSET, FCCLIPSegmentor, MaskFormerCriterion,
                                  SegVocabulary, instance_inference, panoptic_inference,
                                  segment_targets, semantic_inference)
from vitamin_dense.models.fcclip.postprocess import MaskResizer, masks_to_boxes

NUM_THINGS, NUM_STUFF = 3, 2
K = NUM_THINGS + NUM_STUFF


@pytest.fixture(scope='module')
def shared_model():
    """One tiny segmentor for the tests that only read it (building one costs ~1 s)."""
    return tiny_segmentor()


def tiny_segmentor(**kwargs):
    cfg = dict(
        backbone=dict(type='ViTaminBackbone', model_name='ViTamin-Tiny', weights=None),
        head=dict(hidden_dim=32, num_queries=8, num_decoder_layers=2, num_heads=4,
                  pixel_decoder=dict(num_layers=1, num_groups=8, ffn_channels=64),
                  transformer_decoder=dict(ffn_channels=64)),
        criterion=dict(type='MaskFormerCriterion', num_points=64),
        train_vocabulary='circle,square,triangle,sky,grass',
        thing_classes=['circle', 'square', 'triangle', 'star'],
        test_cfg=dict(object_mask_thr=0.0))
    cfg.update(kwargs)
    return FCCLIPSegmentor(**cfg)


# ------------------------------------------------------------------ criterion
def _mmdet_head_for_loss(num_points):
    from mmdet.models.dense_heads import Mask2FormerHead
    from mmdet.models.utils import multi_apply  # noqa: F401
    from mmengine.registry import DefaultScope
    feat = 32
    layer = dict(embed_dims=feat, num_heads=4, dropout=0.0, batch_first=True)
    with DefaultScope.overwrite_default_scope('mmdet'):  # mmdet builds from the current scope
        return _mask2former_head(Mask2FormerHead, feat, layer, num_points)


def _mask2former_head(Mask2FormerHead, feat, layer, num_points):
    return Mask2FormerHead(
        in_channels=[8, 8, 8, 8], strides=[4, 8, 16, 32], feat_channels=feat, out_channels=feat,
        num_things_classes=NUM_THINGS, num_stuff_classes=NUM_STUFF, num_queries=6,
        num_transformer_feat_level=3,
        pixel_decoder=ConfigDict(
            type='MSDeformAttnPixelDecoder', num_outs=3, norm_cfg=dict(type='GN', num_groups=8),
            act_cfg=dict(type='ReLU'),
            encoder=dict(num_layers=1, layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=feat, num_heads=4, num_levels=3, num_points=4,
                                   dropout=0.0, batch_first=True),
                ffn_cfg=dict(embed_dims=feat, feedforward_channels=64, num_fcs=2, ffn_drop=0.0,
                             act_cfg=dict(type='ReLU', inplace=True)))),
            positional_encoding=dict(num_feats=feat // 2, normalize=True)),
        transformer_decoder=ConfigDict(
            return_intermediate=True, num_layers=1,
            layer_cfg=dict(self_attn_cfg=layer, cross_attn_cfg=layer,
                           ffn_cfg=dict(embed_dims=feat, feedforward_channels=64, num_fcs=2,
                                        ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True))),
            init_cfg=None),
        loss_cls=ConfigDict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
                            reduction='mean', class_weight=[1.0] * K + [0.1]),
        train_cfg=ConfigDict(
            num_points=num_points, oversample_ratio=3.0, importance_sample_ratio=0.75,
            assigner=dict(type='HungarianAssigner', match_costs=[
                dict(type='ClassificationCost', weight=2.0),
                dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
                dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)]),
            sampler=dict(type='MaskPseudoSampler')))


def _random_targets(b, size, gen):
    targets = []
    for n in (3, 2)[:b]:
        labels = torch.randint(0, K, (n,), generator=gen)
        masks = torch.rand(n, *size, generator=gen) > 0.6
        targets.append(InstanceData(labels=labels, masks=masks))
    return targets


def test_criterion_matches_mmdet_mask2former_loss():
    # Images with ground truth only: for an image without any, mmdet averages
    # the mask losses over max(1, #masks) per image, Mask2Former / FC-CLIP
    # (and we) over the true number of masks.
    gen = torch.Generator().manual_seed(0)
    b, q = 2, 6
    logits = torch.randn(b, q, K + 1, generator=gen)
    masks = torch.randn(b, q, 12, 16, generator=gen)
    targets = _random_targets(b, (48, 64), gen)
    ref_head = _mmdet_head_for_loss(num_points=50)
    ours = MaskFormerCriterion(num_points=50)
    metas = [dict(img_shape=(48, 64))] * b
    torch.manual_seed(7)
    ref = ref_head._loss_by_feat_single(logits, masks, targets, metas)
    torch.manual_seed(7)
    got = ours.step_losses(logits, masks, targets)
    for name, value in zip(('loss_cls', 'loss_mask', 'loss_dice'), ref):
        torch.testing.assert_close(got[name].reshape(()), value.reshape(()), rtol=1e-5, atol=1e-6)


def test_criterion_deep_supervision_names_and_empty_targets():
    crit = MaskFormerCriterion(num_points=20)
    logits = [torch.randn(1, 4, K + 1, requires_grad=True) for _ in range(3)]
    masks = [torch.randn(1, 4, 8, 8, requires_grad=True) for _ in range(3)]
    empty = [InstanceData(labels=torch.zeros(0, dtype=torch.long),
                          masks=torch.zeros(0, 32, 32, dtype=torch.bool))]
    losses = crit(logits, masks, empty)
    assert sorted(losses) == sorted(['loss_cls', 'loss_mask', 'loss_dice'] +
                                    [f'd{i}.loss_{n}' for i in (0, 1) for n in ('cls', 'mask', 'dice')])
    # no ground truth: everything is void, mask losses are zero but still in the graph
    assert losses['loss_mask'].item() == 0 and losses['loss_cls'].item() > 0
    sum(losses.values()).backward()
    assert logits[0].grad is not None and masks[2].grad is not None
    with pytest.raises(ValueError, match='classify every decoder step'):
        crit(logits[:1], masks, empty)


# -------------------------------------------------------------- post-processing
def _mmdet_fusion(**test_cfg):
    from mmdet.models.seg_heads.panoptic_fusion_heads import MaskFormerFusionHead
    cfg = dict(panoptic_on=True, semantic_on=False, instance_on=True, max_per_image=12,
               object_mask_thr=0.3, iou_thr=0.6, filter_low_score=True)
    cfg.update(test_cfg)
    return MaskFormerFusionHead(num_things_classes=NUM_THINGS, num_stuff_classes=NUM_STUFF,
                                test_cfg=ConfigDict(cfg))


def _segments(panoptic: torch.Tensor):
    """{(label, is-thing, pixel set)} of a panoptic map, whatever the ids."""
    out = set()
    for seg_id in torch.unique(panoptic).tolist():
        if seg_id == K:
            continue
        label = seg_id % INSTANCE_OFFSET
        out.add((label, seg_id >= INSTANCE_OFFSET,
                 tuple(torch.nonzero(panoptic == seg_id).flatten().tolist())))
    return out


def test_panoptic_and_instance_match_mmdet_fusion_head():
    gen = torch.Generator().manual_seed(5)
    q, h, w = 10, 20, 24
    logits = torch.randn(q, K + 1, generator=gen) * 3
    masks = torch.randn(q, h, w, generator=gen) * 4
    probs = logits.softmax(-1)
    is_thing = torch.tensor([True] * NUM_THINGS + [False] * NUM_STUFF)
    ref = _mmdet_fusion()
    # one small chunk at a time exercises the chunked argmax
    resizer = MaskResizer(masks, (h, w), (h, w), (h, w), max_elements=3 * h * w)
    assert resizer.chunk == 3
    panoptic, segments = panoptic_inference(probs, resizer, is_thing, 0.3, 0.6)
    expected = ref.panoptic_postprocess(logits, masks).sem_seg[0]
    assert panoptic.dtype == torch.long and panoptic.shape == (h, w)
    assert _segments(panoptic) == _segments(expected.long())
    assert len(segments) == len({s['id'] for s in segments}) > 0
    inst = instance_inference(probs, resizer, is_thing, max_per_image=12)
    exp = ref.instance_postprocess(logits, masks)
    assert_same_instances(inst, exp)


def test_semantic_is_mask2former_formula_and_resizes_in_order():
    gen = torch.Generator().manual_seed(2)
    q = 7
    probs = torch.randn(q, K + 1, generator=gen).softmax(-1)
    low = torch.randn(q, 8, 10, generator=gen)
    resizer = MaskResizer(low, padded_size=(32, 40), image_size=(30, 37), out_size=(45, 55),
                          max_elements=2 * 45 * 55)
    up = F.interpolate(low[None], size=(32, 40), mode='bilinear', align_corners=False)
    up = F.interpolate(up[..., :30, :37], size=(45, 55), mode='bilinear', align_corners=False)[0]
    expected = torch.einsum('qc,qhw->chw', probs[:, :-1], up.sigmoid())
    torch.testing.assert_close(semantic_inference(probs, resizer), expected, rtol=1e-5, atol=1e-6)


def test_masks_to_boxes_matches_mmdet():
    from mmdet.structures.mask import mask2bbox
    masks = torch.rand(5, 13, 17) > 0.9
    masks[2] = False
    torch.testing.assert_close(masks_to_boxes(masks), mask2bbox(masks))


# --------------------------------------------------------------------- targets
def test_segment_targets_from_mmdet_panoptic_sample():
    vocab = SegVocabulary.from_metainfo(dict(
        classes=('circle', 'square', 'triangle', 'sky', 'grass'),
        thing_classes=('circle', 'square', 'triangle'), stuff_classes=('sky', 'grass')))
    h, w = 16, 20
    things = torch.zeros(2, h, w, dtype=torch.uint8)
    things[0, 2:6, 2:6] = 1
    things[1, 8:12, 10:15] = 1
    seg = torch.full((1, h, w), 3, dtype=torch.long)  # sky
    seg[0, 12:, :] = 4  # grass
    seg[0, 0, 0] = 255
    seg[0, 2:6, 2:6] = 0
    seg[0, 8:12, 10:15] = 1
    seg[0, 14, 0:3] = 2  # a crowd triangle: in the semantic map, no instance
    sample = DetDataSample()
    sample.gt_instances = InstanceData(labels=torch.tensor([0, 1]),
                                       masks=BitmapMasks(things.numpy(), h, w))
    sample.gt_sem_seg = PixelData(sem_seg=seg)
    targets = segment_targets(sample, vocab, (h, w))
    assert targets.labels.tolist() == [0, 1, 3, 4]
    assert targets.masks.dtype == torch.bool and targets.masks.shape == (4, h, w)
    assert torch.equal(targets.masks[2], seg[0] == 3)
    # semantic-only data: one segment per class present, things included
    sem = DetDataSample()
    sem.gt_sem_seg = PixelData(data=seg)
    assert segment_targets(sem, vocab, (h, w)).labels.tolist() == [0, 1, 2, 3, 4]


# ----------------------------------------------------------------- the model
def _batch(model, n=2, size=(70, 90), with_gt=True):
    samples, images = [], []
    gen = torch.Generator().manual_seed(n)
    for i in range(n):
        h, w = size
        img = torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h + 10, w + 20)))
        if with_gt:
            m = torch.zeros(1, h, w, dtype=torch.uint8)
            m[0, 10:30, 20:50] = 1
            sample.gt_instances = InstanceData(labels=torch.tensor([1]),
                                               masks=BitmapMasks(m.numpy(), h, w))
            seg = torch.full((1, h, w), 3, dtype=torch.long)
            seg[0, 10:30, 20:50] = 1
            sample.gt_sem_seg = PixelData(sem_seg=seg)
        images.append(img)
        samples.append(sample)
    return model.data_preprocessor(dict(inputs=images, data_samples=samples), training=with_gt)


def test_model_modes_and_output_contracts():
    model = tiny_segmentor()
    data = _batch(model)
    assert data['inputs'].shape == (2, 3, 96, 96)  # padded to a multiple of 32
    assert data['data_samples'][0].gt_sem_seg.sem_seg.shape[-2:] == (96, 96)
    model.train()
    losses = model(**data, mode='loss')
    assert {'loss_cls', 'loss_mask', 'loss_dice', 'd0.loss_cls'} <= set(losses)
    sum(losses.values()).backward()
    assert model.head.logit_scale.grad is not None
    assert all(p.grad is None for p in model.backbone.parameters())  # frozen
    assert all(not p.requires_grad for p in model.text_encoder.parameters())

    model.eval()
    model.set_vocabulary('circle,square,triangle,sky,grass,star', 'test',
                         thing_classes=['circle', 'square', 'triangle', 'star'])
    assert model.seen_classes().tolist() == [True] * 5 + [False]
    data = _batch(model, with_gt=False)
    tensors = model(**data, mode='tensor')
    assert tensors['class_probs'].shape == (2, 8, 7)
    torch.testing.assert_close(tensors['class_probs'].sum(-1), torch.ones(2, 8))
    assert tensors['mask_logits'].shape == (2, 8, 24, 24)
    out = model(**data, mode='predict')
    sample = out[0]
    assert sample.pred_sem_seg.sem_seg.shape == (1, 80, 110)  # ori_shape
    assert torch.equal(sample.pred_sem_seg.data, sample.pred_sem_seg.sem_seg)
    assert sample.pred_sem_seg.sem_seg.max() < 6
    pan = sample.pred_panoptic_seg.sem_seg
    assert pan.shape == (1, 80, 110) and pan.dtype == torch.long
    labels = pan % INSTANCE_OFFSET
    assert ((labels < 6) | (pan == 6)).all()
    stuff = pan < INSTANCE_OFFSET
    assert not torch.isin(pan[stuff], torch.tensor([0, 1, 2, 5])).any()  # things carry an id
    inst = sample.pred_instances
    assert inst.masks.shape[1:] == (80, 110) and inst.masks.dtype == torch.bool
    assert inst.bboxes.shape == (len(inst), 4) and len(inst) <= 100
    assert set(inst.labels.tolist()) <= {0, 1, 2, 5}  # things only


def test_branch_switches_change_predictions(shared_model):
    model = shared_model.eval()
    data = _batch(model, n=1, with_gt=False)
    both = model(**data, mode='tensor')['class_probs']
    saved = dict(model.ensemble)
    try:
        model.ensemble['use_out_vocab'] = False
        in_only = model(**data, mode='tensor')['class_probs']
        model.ensemble.update(use_out_vocab=True, use_in_vocab=False)
        out_only = model(**data, mode='tensor')['class_probs']
    finally:
        model.ensemble.update(saved)
    assert not torch.allclose(both, in_only) and not torch.allclose(both, out_only)
    with pytest.raises(ConfigError, match='both be False'):
        tiny_segmentor(ensemble=dict(use_in_vocab=False, use_out_vocab=False))
    with pytest.raises(ConfigError, match='unknown ensemble option'):
        tiny_segmentor(ensemble=dict(alpa=0.3))
    with pytest.raises(ConfigError, match='unknown test_cfg option'):
        tiny_segmentor(test_cfg=dict(stirde=16))


def test_vocabulary_errors_and_state_dict_roundtrip(shared_model):
    model = tiny_segmentor(train_vocabulary=None, thing_classes=None)
    data = _batch(model, n=1, with_gt=False)
    with pytest.raises(VocabularyError, match='no test vocabulary'):
        model.eval()(**data, mode='predict')
    with pytest.raises(VocabularyError, match='empty'):
        model.set_vocabulary('', 'test')
    with pytest.raises(VocabularyError, match="no 'classes'"):
        SegVocabulary.from_metainfo({}, where='the training data set')
    trained = shared_model
    state = trained.state_dict()
    assert 'vocabularies._extra_state' in state
    model.set_vocabulary('circle,star', 'test')
    assert model.seen_classes().tolist() == [False, False]  # no training vocabulary yet
    before = model.class_embeddings('test')
    model.load_state_dict(state)
    assert model.train_vocabulary.names == ['circle', 'square', 'triangle', 'sky', 'grass']
    assert model.seen_classes().tolist() == [True, False]  # caches follow the checkpoint
    assert model.class_embeddings('test') is before  # the test vocabulary did not change
    assert model.train_vocabulary.is_thing == (True, True, True, False, False)
    # the training vocabulary survives the weights-only checkpoint format
    import io
    buf = io.BytesIO()
    torch.save({'state_dict': state}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)['state_dict']
    model.set_vocabulary('a,b', 'train')
    model.load_state_dict(loaded)
    assert model.train_vocabulary == trained.train_vocabulary


def test_vocabulary_from_metainfo_with_synonyms():
    vocab = SegVocabulary.from_metainfo(dict(
        classes=('person', 'sky'), synonyms=(('person', 'people', 'man'), 'sky, clouds'),
        thing_classes=('person',)))
    assert vocab.classes == (('person', 'people', 'man'), ('sky', 'clouds'))
    assert vocab.is_thing == (True, False)
    with pytest.raises(VocabularyError, match="'synonyms' entries"):
        SegVocabulary.from_metainfo(dict(classes=('a', 'b'), synonyms=(('a',),)))


def test_fine_tuning_last_blocks_gets_layer_decayed_lr():
    """frozen=False + trainable_blocks=1: only the last ViT block trains, at a decayed lr."""
    from vitamin_dense.engine.layer_decay import ViTaminLayerDecayOptimizerConstructor
    model = tiny_segmentor(backbone=dict(type='ViTaminBackbone', model_name='ViTamin-Tiny',
                                         weights=None, frozen=False, trainable_blocks=1))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith('backbone.visual.trunk.blocks.1.') for n in trainable)
    assert not any(n.startswith('backbone.visual.trunk.blocks.0.') for n in trainable)
    assert not any('fc_norm' in n or 'visual.head' in n for n in trainable)  # CLIP head frozen
    assert not any(n.startswith('text_encoder.') for n in trainable)
    wrapper = ViTaminLayerDecayOptimizerConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05)),
        dict(decay_rate=0.5))(model)
    lr_of = {n: g['lr'] for g in wrapper.optimizer.param_groups for n in g['param_names']}
    assert set(lr_of) == trainable
    head_lr = lr_of['head.logit_scale']
    block_lr = lr_of['backbone.visual.trunk.blocks.1.attn.qkv.weight']
    assert head_lr == 1e-4 and block_lr < head_lr
