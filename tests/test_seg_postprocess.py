"""FC-CLIP post-processing in one pass equals the three outputs computed one by one.

References, on the same upsampled logits: semantic by Mask2Former's formula
(``einsum`` over every query at full size, then ``argmax``), panoptic and
instance by mmdet's ``MaskFormerFusionHead``. The one pass upsamples in
chunks of queries, holds them in groups and consumes each group in bands of
rows; the tests shrink all three so that several chunks, groups and bands
(with a ragged last one) occur, and cover cropping to ``img_shape`` and
resizing to ``ori_shape``.
"""
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict

from tests.helpers.instances import assert_same_instances
from vitamin_dense.models.fcclip import postprocess
from vitamin_dense.models.fcclip.postprocess import (INSTANCE_OFFSET, MaskResizer,
                                                     mask_inference, semantic_inference)

NUM_THINGS, NUM_STUFF = 4, 3
K = NUM_THINGS + NUM_STUFF
IS_THING = torch.tensor([True] * NUM_THINGS + [False] * NUM_STUFF)


def _upsampled(low, padded, image, out):
    """Mask2Former's resizing of every query at once."""
    up = F.interpolate(low[None], size=padded, mode='bilinear', align_corners=False)
    up = up[..., :image[0], :image[1]]
    if tuple(up.shape[-2:]) != tuple(out):
        up = F.interpolate(up, size=out, mode='bilinear', align_corners=False)
    return up[0]


def _inputs(seed, q, low):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(q, K + 1, generator=gen) * 3
    # each query claims a Voronoi cell (plus noise), so that panoptic segments survive
    centres = torch.rand(q, 2, generator=gen) * torch.tensor(low)
    ys, xs = torch.meshgrid(torch.arange(low[0]), torch.arange(low[1]), indexing='ij')
    grid = torch.stack([ys, xs], -1).float()
    cell = (grid[None] - centres[:, None, None]).norm(dim=-1).argmin(0)
    masks = torch.where(cell[None] == torch.arange(q)[:, None, None], 4.0, -4.0)
    return logits, masks + torch.randn(q, *low, generator=gen) * 2


def _fusion(object_mask_thr, overlap_thr, max_per_image):
    from mmdet.models.seg_heads.panoptic_fusion_heads import MaskFormerFusionHead
    cfg = ConfigDict(panoptic_on=True, semantic_on=False, instance_on=True,
                     max_per_image=max_per_image, object_mask_thr=object_mask_thr,
                     iou_thr=overlap_thr, filter_low_score=True)
    return MaskFormerFusionHead(num_things_classes=NUM_THINGS, num_stuff_classes=NUM_STUFF,
                                test_cfg=cfg)


def _segments(panoptic):
    """{(label, is-thing, pixel set)}: the segments whatever their instance ids."""
    out = set()
    for seg_id in torch.unique(panoptic).tolist():
        if seg_id == K:
            continue
        out.add((seg_id % INSTANCE_OFFSET, seg_id >= INSTANCE_OFFSET,
                 tuple(torch.nonzero(panoptic == seg_id).flatten().tolist())))
    return out


CASES = [  # queries, low-res size, padded, image, out, object_mask_thr, overlap_thr, groups
    (12, (16, 20), (64, 80), (64, 80), (64, 80), 0.0, 0.8, 1),
    (15, (16, 20), (64, 80), (60, 77), (60, 77), 0.2, 0.5, 3),   # crop, non-contiguous
    (10, (12, 16), (48, 64), (45, 61), (70, 90), 0.0, 0.3, 2),   # crop and resize
]


@pytest.mark.parametrize('seed', range(len(CASES)))
def test_one_pass_equals_the_reference_outputs(seed, monkeypatch):
    q, low, padded, image, out, thr, overlap, groups = CASES[seed]
    monkeypatch.setattr(postprocess, 'BAND_ELEMENTS', 3000)  # bands of a few rows
    monkeypatch.setattr(postprocess, 'GROUP_ELEMENTS', -(-q // groups) * out[0] * out[1])
    logits, masks = _inputs(seed, q, low)
    probs = logits.softmax(-1)
    largest = max(padded[0] * padded[1], out[0] * out[1])
    resizer = MaskResizer(masks, padded, image, out, max_elements=4 * largest)
    assert resizer.chunk == 4  # several chunks of queries
    res = mask_inference(probs, resizer, IS_THING, object_mask_thr=thr, overlap_thr=overlap,
                         max_per_image=20, semantic_scores=True)
    up = _upsampled(masks, padded, image, out)

    # semantic: Mask2Former's formula; labels agree wherever the top two classes differ
    scores = torch.einsum('qc,qhw->chw', probs[:, :-1], up.sigmoid())
    torch.testing.assert_close(res['sem_scores'], scores, rtol=1e-5, atol=1e-6)
    top2 = scores.topk(2, 0).values
    clear = top2[0] - top2[1] > 1e-5
    assert clear.float().mean() > 0.99
    assert torch.equal(res['sem_seg'][clear], scores.argmax(0)[clear])

    # panoptic and instance: mmdet's fusion head on the same logits
    ref = _fusion(thr, overlap, 20)
    expected = ref.panoptic_postprocess(logits, up).sem_seg[0].long()
    assert res['panoptic'].shape == tuple(out) and res['panoptic'].dtype == torch.long
    segments = _segments(res['panoptic'])
    assert segments == _segments(expected) and len(segments) >= 3
    assert sorted(s['id'] for s in res['segments']) == sorted(
        i for i in torch.unique(res['panoptic']).tolist() if i != K)
    inst = res['instances']
    exp = ref.instance_postprocess(logits, up)
    assert_same_instances(inst, exp)


def test_outputs_do_not_depend_on_chunks_or_bands(monkeypatch):
    logits, masks = _inputs(3, 9, (8, 8))
    probs = logits.softmax(-1)
    runs = []
    for chunk_queries, band, group in ((9, 2 ** 20, 9), (2, 500, 4), (1, 100, 1)):
        monkeypatch.setattr(postprocess, 'BAND_ELEMENTS', band)
        monkeypatch.setattr(postprocess, 'GROUP_ELEMENTS', group * 32 * 32)
        resizer = MaskResizer(masks, (32, 32), (32, 32), (32, 32),
                              max_elements=chunk_queries * 32 * 32)
        runs.append(mask_inference(probs, resizer, IS_THING, object_mask_thr=0.0,
                                   semantic_scores=True))
    for other in runs[1:]:
        assert torch.equal(other['sem_seg'], runs[0]['sem_seg'])
        assert torch.equal(other['panoptic'], runs[0]['panoptic'])
        assert other['segments'] == runs[0]['segments']
        torch.testing.assert_close(other['sem_scores'], runs[0]['sem_scores'])
        for key in ('masks', 'labels', 'bboxes', 'queries'):
            assert torch.equal(other['instances'][key], runs[0]['instances'][key])
        torch.testing.assert_close(other['instances']['scores'], runs[0]['instances']['scores'])


def test_requested_outputs_only_and_the_single_output_helpers():
    logits, masks = _inputs(4, 6, (8, 8))
    probs = logits.softmax(-1)
    resizer = MaskResizer(masks, (32, 32), (32, 32), (32, 32))
    res = mask_inference(probs, resizer, IS_THING, panoptic=False, instance=False)
    assert set(res) == {'sem_seg'} and res['sem_seg'].shape == (32, 32)
    torch.testing.assert_close(semantic_inference(probs, resizer).argmax(0), res['sem_seg'])
    with pytest.raises(ValueError, match='is_thing'):
        mask_inference(probs, resizer, None, semantic=False, instance=False)
    # no thing classes: no instances, and an empty panoptic competition paints nothing
    res = mask_inference(probs, resizer, torch.zeros(K, dtype=torch.bool), semantic=False,
                         object_mask_thr=1.0)
    assert res['instances']['masks'].shape == (0, 32, 32)
    assert res['instances']['bboxes'].shape == (0, 4)
    assert (res['panoptic'] == K).all() and res['segments'] == []
