"""Our metric glue against the references on the same predictions: panopticapi
(PQ), mmseg's IoUMetric (mIoU) and pycocotools (mask AP); the seen / unseen
splits against hand-filtered computations from the references' own statistics."""
import copy
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData
from mmseg.evaluation import IoUMetric
from panopticapi.evaluation import pq_compute, pq_compute_single_core
from panopticapi.utils import id2rgb, rgb2id
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vitamin_dense.datasets import SyntheticPanopticDataset
from vitamin_dense.datasets.synthetic import category_id
from vitamin_dense.evaluation import (OpenVocabCocoMetric, OpenVocabIoUMetric,
                                      OpenVocabPanopticMetric)
from vitamin_dense.registry import METRICS

OFFSET = 1000  # mmdet INSTANCE_OFFSET
GEN = dict(num_images=10, image_size=64, seed=11, void_prob=0.5)
UNSEEN = ('star', 'sand')


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    init_default_scope('vitamin_dense')
    root = str(tmp_path_factory.mktemp('metric_data'))
    return SyntheticPanopticDataset(
        data_root=root, split='val', generator=GEN, test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'), dict(type='mmdet.LoadPanopticAnnotations'),
                  dict(type='mmdet.PackDetInputs',
                       meta_keys=('img_id', 'img_path', 'seg_map_path', 'segments_info',
                                  'ori_shape', 'img_shape'))])


def train_vocabulary(dataset):
    return [c for c in dataset.metainfo['classes'] if c not in UNSEEN]


def seen_labels(dataset):
    return [i for i, c in enumerate(dataset.metainfo['classes']) if c not in UNSEEN]


def gt_panoptic(sample):
    """(H, W) mmdet panoptic encoding of the ground truth; void = num_classes."""
    ids = rgb2id(cv2.imread(sample.seg_map_path)[..., ::-1])
    num_classes = 11
    pan = np.full(ids.shape, num_classes, np.int64)
    for k, seg in enumerate(sample.segments_info):
        pan[ids == seg['id']] = seg['category'] + (k + 1) * OFFSET * int(seg['is_thing'])
    return pan


def perturb(pan, rng, num_classes=11):
    """A plausible wrong prediction: relabel, drop, shift, and add a spurious segment."""
    out = pan.copy()
    for value in np.unique(pan):
        if value % OFFSET == num_classes:
            continue
        r = rng.random()
        if r < 0.25:  # relabel (things stay things so the encoding stays valid)
            label = value % OFFSET
            new = rng.integers(0, 6) if label < 6 else rng.integers(6, num_classes)
            out[pan == value] = value - label + new
        elif r < 0.35:
            out[pan == value] = num_classes
    out = np.roll(out, shift=(int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(0, 1))
    y, x = rng.integers(0, 48, size=2)
    out[y:y + 12, x:x + 12] = int(rng.integers(0, 6)) + 9 * OFFSET
    return out


def predictions(dataset, mode, seed=0):
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        pan = gt_panoptic(sample)
        if mode == 'random':
            pan = perturb(pan, rng)
        sample.pred_panoptic_seg = PixelData(sem_seg=torch.from_numpy(pan)[None])
        sem = pan % OFFSET
        sem[sem == 11] = 255
        sample.pred_sem_seg = PixelData(sem_seg=torch.from_numpy(sem)[None])
        samples.append(sample)
    return samples


# -- panoptic ---------------------------------------------------------------
def reference_pq(dataset, samples, tmp_path):
    """panopticapi's pq_compute on JSON + PNG files written from the same predictions."""
    meta = dataset.metainfo
    pred_dir = tmp_path / 'pred'
    pred_dir.mkdir()
    cat_of_label = [category_id(c) for c in meta['classes']]
    annotations = []
    for sample in samples:
        pan = sample.pred_panoptic_seg.sem_seg[0].numpy()
        ids = np.zeros(pan.shape, np.uint32)
        segments = []
        for n, value in enumerate(np.unique(pan)):
            if value % OFFSET == 11:
                continue
            ids[pan == value] = n + 1
            segments.append(dict(id=n + 1, category_id=cat_of_label[value % OFFSET]))
        name = osp.basename(sample.seg_map_path)
        cv2.imwrite(str(pred_dir / name), id2rgb(ids)[..., ::-1])
        annotations.append(dict(image_id=sample.img_id, file_name=name, segments_info=segments))
    gt_json = osp.join(dataset.data_root, 'annotations/panoptic_val.json')
    pred_json = str(tmp_path / 'pred.json')
    with open(pred_json, 'w') as f:
        json.dump(dict(annotations=annotations), f)
    gt_dir = osp.join(dataset.data_root, 'annotations/panoptic_val')
    result = pq_compute(gt_json, pred_json, gt_folder=gt_dir, pred_folder=str(pred_dir))
    # per-class statistics from panopticapi itself, for the hand-filtered split
    with open(gt_json) as f:
        gt = json.load(f)
    pairs = [(g, p) for g, p in zip(sorted(gt['annotations'], key=lambda a: a['image_id']),
                                    sorted(annotations, key=lambda a: a['image_id']))]
    cats = {c['id']: c for c in gt['categories']}
    stat = pq_compute_single_core(0, pairs, gt_dir, str(pred_dir), cats)
    return result, stat, cat_of_label


def hand_split(stat, cat_ids):
    pqs, sqs, rqs = [], [], []
    for cid in cat_ids:
        s = stat.pq_per_cat[cid]
        if s.tp + s.fp + s.fn == 0:
            continue
        pqs.append(s.iou / (s.tp + 0.5 * s.fp + 0.5 * s.fn))
        sqs.append(s.iou / s.tp if s.tp else 0.0)
        rqs.append(s.tp / (s.tp + 0.5 * s.fp + 0.5 * s.fn))
    return 100 * np.mean(pqs), 100 * np.mean(sqs), 100 * np.mean(rqs)


@pytest.mark.parametrize('mode', ['perfect', 'random'])
def test_panoptic_matches_panopticapi(dataset, mode, tmp_path):
    samples = predictions(dataset, mode)
    metric = METRICS.build(dict(type='OpenVocabPanopticMetric',
                                train_vocabulary=train_vocabulary(dataset)))
    metric.dataset_meta = dataset.metainfo
    metric.process({}, [s.to_dict() for s in samples])
    ours = metric.evaluate(len(samples))
    ref, stat, cat_of_label = reference_pq(dataset, samples, tmp_path)
    for key, part in (('PQ', 'pq'), ('SQ', 'sq'), ('RQ', 'rq')):
        assert ours[f'panoptic/{key}'] == pytest.approx(100 * ref['All'][part], abs=1e-9)
        assert ours[f'panoptic/{key}_th'] == pytest.approx(100 * ref['Things'][part], abs=1e-9)
        assert ours[f'panoptic/{key}_st'] == pytest.approx(100 * ref['Stuff'][part], abs=1e-9)
    seen = [cat_of_label[i] for i in seen_labels(dataset)]
    unseen = [category_id(c) for c in UNSEEN]
    for split, ids in (('seen', seen), ('unseen', unseen)):
        pq, sq, rq = hand_split(stat, ids)
        assert ours[f'panoptic/PQ_{split}'] == pytest.approx(pq, abs=1e-9)
        assert ours[f'panoptic/SQ_{split}'] == pytest.approx(sq, abs=1e-9)
        assert ours[f'panoptic/RQ_{split}'] == pytest.approx(rq, abs=1e-9)
    if mode == 'perfect':
        assert ours['panoptic/PQ'] == pytest.approx(100.0)
    else:
        assert 20 < ours['panoptic/PQ'] < 95


def test_panoptic_from_ann_file_matches_sample_ground_truth(dataset):
    samples = predictions(dataset, 'random', seed=1)
    from_samples = OpenVocabPanopticMetric()
    from_file = OpenVocabPanopticMetric(
        ann_file=osp.join(dataset.data_root, 'annotations/panoptic_val.json'),
        seg_prefix=osp.join(dataset.data_root, 'annotations/panoptic_val'))
    results = []
    for metric, strip in ((from_samples, False), (from_file, True)):
        metric.dataset_meta = dataset.metainfo
        dicts = [s.to_dict() for s in samples]
        if strip:
            for d in dicts:
                d.pop('segments_info')
        metric.process({}, dicts)
        results.append(metric.evaluate(len(samples)))
    assert results[0] == pytest.approx(results[1])


def test_panoptic_ann_file_png_names_need_not_follow_image_names(dataset, tmp_path):
    """Cityscapes / Mapillary name ground-truth PNGs unlike their images
    (``x_leftImg8bit.png`` vs ``x_gtFine_panoptic.png``): the annotation's own file
    name is used, not one derived from the image's."""
    import shutil
    ann = json.load(open(osp.join(dataset.data_root, 'annotations/panoptic_val.json')))
    seg_dir = tmp_path / 'gt'
    seg_dir.mkdir()
    for entry in ann['annotations']:
        renamed = osp.splitext(entry['file_name'])[0] + '_gtFine_panoptic.png'
        shutil.copy(osp.join(dataset.data_root, 'annotations/panoptic_val', entry['file_name']),
                    seg_dir / renamed)
        entry['file_name'] = renamed
    ann_file = tmp_path / 'panoptic_val.json'
    ann_file.write_text(json.dumps(ann))
    samples = predictions(dataset, 'perfect')
    metric = OpenVocabPanopticMetric(ann_file=str(ann_file), seg_prefix=str(seg_dir))
    metric.dataset_meta = dataset.metainfo
    dicts = [s.to_dict() for s in samples]
    for d in dicts:
        d.pop('segments_info')
    metric.process({}, dicts)
    assert metric.evaluate(len(samples))['panoptic/PQ'] == pytest.approx(100.0)


def test_panoptic_without_ground_truth_is_a_clear_error(dataset):
    metric = OpenVocabPanopticMetric()
    metric.dataset_meta = dataset.metainfo
    sample = predictions(dataset, 'perfect')[0].to_dict()
    sample.pop('segments_info')
    from vitamin_dense.datasets.errors import DatasetError
    with pytest.raises(DatasetError, match='no ground truth'):
        metric.process({}, [sample])


# -- semantic ---------------------------------------------------------------
def test_semantic_matches_mmseg_and_hand_split(dataset):
    samples = predictions(dataset, 'random', seed=2)
    ours = OpenVocabIoUMetric(train_vocabulary=train_vocabulary(dataset),
                              iou_metrics=['mIoU', 'mDice'])
    ref = IoUMetric(iou_metrics=['mIoU', 'mDice'])
    for m in (ours, ref):
        m.dataset_meta = dataset.metainfo
    ours.process({}, [s.to_dict() for s in samples])  # mmdet layout: gt_sem_seg.sem_seg
    ref.process({}, [dict(pred_sem_seg=dict(data=s.pred_sem_seg.sem_seg),
                          gt_sem_seg=dict(data=s.gt_sem_seg.sem_seg)) for s in samples])
    a, b = ours.evaluate(len(samples)), ref.evaluate(len(samples))
    for key in ('aAcc', 'mIoU', 'mAcc', 'mDice'):
        assert a[f'sem_seg/{key}'] == b[key]
    # hand: per-class IoU with numpy over the whole split, averaged over each subset
    inter = np.zeros(11)
    union = np.zeros(11)
    for s in samples:
        pred = s.pred_sem_seg.sem_seg[0].numpy()
        gt = s.gt_sem_seg.sem_seg[0].numpy().astype(np.int64)
        valid = gt != 255
        for c in range(11):
            p, g = (pred == c) & valid, (gt == c) & valid
            inter[c] += (p & g).sum()
            union[c] += (p | g).sum()
    with np.errstate(invalid='ignore'):
        iou = inter / union
    seen = seen_labels(dataset)
    unseen = [i for i in range(11) if i not in seen]
    assert a['sem_seg/mIoU_seen'] == pytest.approx(round(np.nanmean(iou[seen]) * 100, 2))
    assert a['sem_seg/mIoU_unseen'] == pytest.approx(round(np.nanmean(iou[unseen]) * 100, 2))
    assert 'sem_seg/mDice_unseen' in a


def test_semantic_falls_back_to_panoptic_labels(dataset):
    samples = predictions(dataset, 'random', seed=3)
    plain, from_pan = OpenVocabIoUMetric(), OpenVocabIoUMetric()
    for m in (plain, from_pan):
        m.dataset_meta = dataset.metainfo
    plain.process({}, [s.to_dict() for s in samples])
    dicts = [s.to_dict() for s in samples]
    for d in dicts:
        d.pop('pred_sem_seg')
    from_pan.process({}, dicts)
    assert plain.evaluate(len(samples)) == from_pan.evaluate(len(samples))


def test_semantic_format_only_writes_label_pngs_without_ground_truth(dataset, tmp_path):
    """mmseg's test-server mode (no ground truth): predictions saved as PNGs, no metrics."""
    samples = predictions(dataset, 'random', seed=4)
    metric = OpenVocabIoUMetric(format_only=True, output_dir=str(tmp_path),
                                train_vocabulary=train_vocabulary(dataset))
    metric.dataset_meta = dataset.metainfo
    dicts = [s.to_dict() for s in samples]
    for d in dicts:
        d.pop('gt_sem_seg')
    metric.process({}, dicts)
    assert metric.evaluate(len(samples)) == {}
    for d, s in zip(dicts, samples):
        png = tmp_path / (osp.splitext(osp.basename(d['img_path']))[0] + '.png')
        np.testing.assert_array_equal(cv2.imread(str(png), cv2.IMREAD_UNCHANGED),
                                      s.pred_sem_seg.sem_seg[0].numpy())


# -- instances --------------------------------------------------------------
def instance_predictions(dataset, seed=0):
    """Per image: GT thing masks, some dilated / relabelled, random scores, plus false
    positives and a stuff-labelled mask (to be ignored)."""
    rng = np.random.default_rng(seed)
    samples, dets = [], []
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        masks, labels = [], []
        for m, lb in zip(sample.gt_instances.masks.to_ndarray(),
                         sample.gt_instances.labels.tolist()):
            m = m.astype(np.uint8)
            if rng.random() < 0.3:
                m = cv2.dilate(m, np.ones((5, 5), np.uint8))
            if rng.random() < 0.2:
                lb = int(rng.integers(0, 6))
            masks.append(m.astype(bool))
            labels.append(lb)
        fp = np.zeros((64, 64), bool)
        y, x = rng.integers(0, 50, size=2)
        fp[y:y + 10, x:x + 10] = True
        masks.append(fp)
        labels.append(int(rng.integers(0, 6)))
        masks.append(np.ones((64, 64), bool))
        labels.append(7)  # 'grass': stuff, not a category of the instances file
        scores = rng.random(len(masks))
        masks_t = torch.from_numpy(np.stack(masks))
        boxes = []
        for m in masks:
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        sample.pred_instances = InstanceData(
            masks=masks_t, labels=torch.tensor(labels), scores=torch.tensor(scores).float(),
            bboxes=torch.tensor(boxes, dtype=torch.float32))
        samples.append(sample)
        for m, lb, sc in zip(masks, labels, scores):
            if lb >= 6:
                continue
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode()
            dets.append(dict(image_id=sample.img_id, category_id=category_id(
                dataset.metainfo['classes'][lb]), segmentation=rle, score=float(np.float32(sc))))
    return samples, dets


def coco_ap(ann_file, dets, cat_ids=None):
    gt = COCO(ann_file)
    ev = COCOeval(gt, gt.loadRes(copy.deepcopy(dets)), 'segm')  # loadRes edits its input
    if cat_ids is not None:
        ev.params.catIds = cat_ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


def test_instance_ap_matches_pycocotools(dataset):
    samples, dets = instance_predictions(dataset)
    ann_file = osp.join(dataset.data_root, 'annotations/instances_val.json')
    metric = OpenVocabCocoMetric(ann_file=ann_file, metric='segm',
                                 train_vocabulary=train_vocabulary(dataset))
    metric.dataset_meta = dataset.metainfo  # panoptic classes: stuff labels must be dropped
    metric.process({}, [s.to_dict() for s in samples])
    ours = metric.evaluate(len(samples))
    full = coco_ap(ann_file, dets)
    assert ours['coco/segm_mAP'] == pytest.approx(round(full[0], 3))
    assert ours['coco/segm_mAP_50'] == pytest.approx(round(full[1], 3))
    assert 0.2 < full[0] < 0.95
    seen = [category_id(c) for c in dataset.metainfo['thing_classes'] if c not in UNSEEN]
    sub = coco_ap(ann_file, dets, seen)
    assert ours['coco/segm_mAP_seen'] == pytest.approx(round(sub[0], 3))
    sub = coco_ap(ann_file, dets, [category_id('star')])
    assert ours['coco/segm_mAP_unseen'] == pytest.approx(round(sub[0], 3))


def test_missing_annotation_file_is_a_clear_error(tmp_path):
    from vitamin_dense.datasets import DatasetError
    with pytest.raises(DatasetError, match='missing annotation file'):
        OpenVocabCocoMetric(ann_file=str(tmp_path / 'nope.json'))
    with pytest.raises(DatasetError, match='missing annotation file'):
        OpenVocabPanopticMetric(ann_file=str(tmp_path / 'nope.json'))


def test_synthetic_config_evaluator_scores_ground_truth_as_perfect(tmp_path):
    """The path a runner takes: the config's val data set and evaluator, fed the ground
    truth as predictions (mmengine Evaluator converts the samples to dicts)."""
    from mmengine.config import Config
    from mmengine.evaluator import Evaluator

    from vitamin_dense.registry import DATASETS, EVALUATOR
    init_default_scope('vitamin_dense')
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    cfg = Config.fromfile(osp.join(repo, 'configs/_base_/datasets/synthetic_panoptic.py'))
    cfg.val_dataloader.dataset.data_root = str(tmp_path)
    cfg.val_dataloader.dataset.generator.num_images = 4
    ds = DATASETS.build(cfg.val_dataloader.dataset)
    evaluator = EVALUATOR.build(dict(type='Evaluator', metrics=cfg.val_evaluator))
    assert isinstance(evaluator, Evaluator)
    evaluator.dataset_meta = ds.metainfo
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        pan = gt_panoptic(sample)
        sample.pred_panoptic_seg = PixelData(sem_seg=torch.from_numpy(pan)[None])
        sem = pan % OFFSET
        sem[sem == 11] = 255
        sample.pred_sem_seg = PixelData(sem_seg=torch.from_numpy(sem)[None])
        evaluator.process([sample])
    metrics = evaluator.evaluate(len(ds))
    assert metrics['panoptic/PQ'] == pytest.approx(100.0)
    assert metrics['sem_seg/mIoU'] == pytest.approx(100.0)
