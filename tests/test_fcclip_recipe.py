"""The published ViTamin-L FC-CLIP recipe is the reference's on the data side: the test
input (longer side 1344 as detectron2's ResizeShortestEdge with PIL, padded with black
to 1344 x 1344 before normalisation, 100 windows at stride 112), predictions mapped
back to the original size by the reference's rule, the training input (LSJ 1344 with
PIL resizing and grey padding), the stride choice, the options of every published
config, and the vocabularies the data sets give the model."""
import copy
import glob
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from PIL import Image

from vitamin_dense.backbones.sliding_window import count_windows
from vitamin_dense.engine.config import load_config
from vitamin_dense.models.fcclip.data_preprocessor import CLIP_MEAN, CLIP_STD, long_side_crop
from vitamin_dense.registry import DATASETS, MODELS, register_all_modules

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PUBLISHED = osp.join(REPO, 'configs', 'ov_seg', 'vitamin_l_coco.py')
EVAL_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'ov_seg', 'eval', 'vitamin_l_*.py')))
H, W = 512, 683  # an ADE20K-sized image: 683 wide, 512 high


@pytest.fixture(autouse=True)
def _scope():
    register_all_modules()
    init_default_scope('vitamin_dense')


def _id2rgb(ids):
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)


def _photo(h, w, seed=0):
    """A smooth random RGB picture (JPEG-friendly, so decoding differences would show)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def _fake_panoptic(root, img_name, rgb, categories, segments):
    """One image and its panoptic PNG: ``segments`` = [(id, category_id, y0, y1, x0, x1)]."""
    h, w = rgb.shape[:2]
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    os.makedirs(osp.join(root, 'panoptic'), exist_ok=True)
    Image.fromarray(rgb).save(osp.join(root, 'images', img_name), quality=90)
    ids = np.zeros((h, w), np.int64)
    infos = []
    for seg_id, cat_id, y0, y1, x0, x1 in segments:
        ids[y0:y1, x0:x1] = seg_id
        infos.append(dict(id=seg_id, category_id=cat_id, iscrowd=0,
                          bbox=[x0, y0, x1 - x0, y1 - y0], area=(y1 - y0) * (x1 - x0)))
    png = img_name.rsplit('.', 1)[0] + '.png'
    Image.fromarray(_id2rgb(ids)).save(osp.join(root, 'panoptic', png))
    with open(osp.join(root, 'panoptic.json'), 'w') as f:
        json.dump(dict(images=[dict(id=0, file_name=img_name, height=h, width=w)],
                       annotations=[dict(image_id=0, file_name=png, segments_info=infos)],
                       categories=categories), f)


def _ade_categories():
    from mmdet.datasets import ADE20KPanopticDataset
    meta = ADE20KPanopticDataset.METAINFO
    things = set(meta['thing_classes'])
    return [dict(id=i + 1, name=n, isthing=int(n in things)) for i, n in enumerate(meta['classes'])]


def _ade_panoptic_sample(tmp_path, cfg):
    """The published ADE20K panoptic test pipeline on one 683 x 512 JPEG."""
    root = str(tmp_path / 'ade')
    rgb = _photo(H, W)
    _fake_panoptic(root, 'ADE_val_1.jpg', rgb, _ade_categories(),
                   [(5, 3, 0, 200, 0, W), (7, 13, 300, 420, 100, 300)])  # sky, person
    dataset = copy.deepcopy(cfg.test_dataloader.dataset.to_dict())
    dataset.update(data_root=root, ann_file='panoptic.json',
                   data_prefix=dict(img='images/', seg='panoptic/'))
    return DATASETS.build(dataset), osp.join(root, 'images', 'ADE_val_1.jpg')


def test_published_test_input_on_an_ade20k_sized_image(tmp_path):
    """683 x 512 -> 1344 x 1008 (detectron2's ResizeShortestEdge 1344 / 1344, PIL bilinear
    on the PIL-decoded image), padded with black to 1344 x 1344 before normalisation:
    100 windows of 336 px at stride 112 (70 without the padding)."""
    cfg = load_config(osp.join(REPO, 'configs', 'ov_seg', 'eval', 'vitamin_l_ade20k_panoptic.py'))
    dataset, jpg = _ade_panoptic_sample(tmp_path, cfg)
    data = dataset[0]
    sample = data['data_samples']
    assert tuple(sample.ori_shape) == (H, W) and tuple(sample.img_shape) == (1008, 1344)
    # the content, as detectron2 reads and resizes it (RGB; mmcv's images are BGR)
    expected = np.asarray(Image.open(jpg).convert('RGB').resize((1344, 1008), Image.BILINEAR))
    np.testing.assert_array_equal(data['inputs'].numpy().transpose(1, 2, 0)[..., ::-1], expected)

    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    batch = preprocessor(pseudo_collate([data]), training=False)
    inputs, sample = batch['inputs'], batch['data_samples'][0]
    assert inputs.shape == (1, 3, 1344, 1344)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    black = ((0 - mean) / std).expand(3, 1344 - 1008, 1344)  # zeros before normalisation
    torch.testing.assert_close(inputs[0, :, 1008:], black)
    content = torch.from_numpy(expected.copy()).permute(2, 0, 1).float()
    torch.testing.assert_close(inputs[0, :, :1008], (content - mean) / std)
    assert tuple(sample.batch_input_shape) == (1344, 1344)
    # the crop the predictions are cut from: the reference's round(ori * 1344 / max(ori))
    assert tuple(sample.img_shape) == (1008, 1344) == long_side_crop((H, W), (1344, 1344))

    # where the reference's rule and the resized size differ by rounding, the rule wins;
    # an input that was not resized to 1344 (a demo's own size) keeps its size
    from mmengine.structures import BaseDataElement
    for ori, resized, crop in (((599, 896), (899, 1344), (898, 1344)),
                               ((H, W), (H, W), (H, W))):
        image = torch.zeros(3, *resized, dtype=torch.uint8)
        meta = BaseDataElement(metainfo=dict(img_shape=resized, ori_shape=ori))
        out = preprocessor(dict(inputs=[image], data_samples=[meta]), training=False)
        assert tuple(out['data_samples'][0].img_shape) == crop
        assert out['inputs'].shape[-2:] == (1344, 1344)

    bb = cfg.model.backbone
    assert (bb.model_name, bb.test_stride) == ('ViTamin-L-336', 112)
    assert count_windows(1344, 1344, 336, bb.test_stride) == 100
    assert count_windows(1008, 1344, 336, bb.test_stride) == 70


def test_predictions_are_mapped_back_as_the_reference(tmp_path):
    """Mask logits at stride 4 of the 1344 x 1344 input: upsampled to 1344 x 1344,
    cropped to round(ori * 1344 / max(ori)), resized to 512 x 683, then the semantic
    and panoptic inference (the reference's order), on the published config's model
    with the tiny ViTamin standing in for ViTamin-L."""
    cfg = load_config(osp.join(REPO, 'configs', 'ov_seg', 'eval', 'vitamin_l_ade20k_panoptic.py'))
    dataset, _ = _ade_panoptic_sample(tmp_path, cfg)
    model_cfg = copy.deepcopy(cfg.model.to_dict())
    model_cfg['backbone'].update(model_name='ViTamin-Tiny', weights=None, train_stride=64,
                                 test_stride=32)
    model_cfg.setdefault('text_encoder', {}).update(model_name='ViTamin-Tiny', weights=None,
                                                    disk_cache=False)
    model = MODELS.build(model_cfg).eval()
    model.set_dataset_vocabulary(dataset.metainfo, 'test')
    batch = model.data_preprocessor(pseudo_collate([dataset[0]]), training=False)
    sample = batch['data_samples'][0]
    g = torch.Generator().manual_seed(0)
    queries, classes = 6, len(dataset.metainfo['classes'])
    logits = torch.randn(1, queries, 336, 336, generator=g) * 4
    probs = torch.softmax(torch.randn(1, queries, classes + 1, generator=g) * 3, -1)
    out = model.postprocess(dict(class_probs=probs, mask_logits=logits), (1344, 1344),
                            [sample], rescale=True)[0]
    assert out.pred_sem_seg.sem_seg.shape == (1, H, W)
    assert out.pred_panoptic_seg.sem_seg.shape[-2:] == (H, W)
    # the reference's steps, written out
    masks = F.interpolate(logits, size=(1344, 1344), mode='bilinear', align_corners=False)
    h, w = round(H * 1344 / max(H, W)), round(W * 1344 / max(H, W))
    masks = F.interpolate(masks[..., :h, :w], size=(H, W), mode='bilinear', align_corners=False)
    semseg = torch.einsum('qc,qhw->chw', probs[0, :, :-1], masks[0].sigmoid())
    assert torch.equal(out.pred_sem_seg.sem_seg[0], semseg.argmax(0))


def test_published_training_input(tmp_path):
    """Mask2Former's COCO panoptic LSJ: flip, PIL resize to fit 1344 x U(0.1, 2), crop,
    pad to 1344 x 1344 with 128 (labels: void); thing masks resized like the stuff map."""
    cfg = load_config(PUBLISHED)
    from mmdet.datasets import CocoPanopticDataset
    meta = CocoPanopticDataset.METAINFO
    things = set(meta['thing_classes'])
    cats = [dict(id=i + 1, name=n, isthing=int(n in things)) for i, n in enumerate(meta['classes'])]
    root = str(tmp_path / 'coco')
    _fake_panoptic(root, '000001.jpg', _photo(300, 400, seed=1), cats,
                   [(5, 81, 0, 150, 0, 400), (7, 1, 170, 260, 60, 203), (9, 3, 180, 290, 250, 371)])
    dataset = copy.deepcopy(cfg.train_dataloader.dataset.to_dict())
    dataset.update(data_root=root, ann_file='panoptic.json',
                   data_prefix=dict(img='images/', seg='panoptic/'))
    dataset = DATASETS.build(dataset)
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    np.random.seed(0)
    import random
    random.seed(0)
    shrunk = 0
    for _ in range(6):
        data = dataset[0]
        img = data['inputs']
        sample = data['data_samples']
        assert img.dtype == torch.uint8 and img.shape == (3, 1344, 1344)
        assert tuple(sample.img_shape) == (1344, 1344)  # padded, as detectron2's image_size
        w_scale, h_scale = sample.scale_factor  # the resized image's content, before the crop
        h, w = min(1344, round(300 * h_scale)), min(1344, round(400 * w_scale))
        seg = sample.gt_sem_seg.sem_seg[0]
        assert seg.shape == (1344, 1344)
        if h < 1344 or w < 1344:  # scaled down: grey padding, void labels, empty masks
            shrunk += 1
            assert (img[:, h:, :] == 128).all() and (img[:, :, w:] == 128).all()
            assert (seg[h:, :] == 255).all() and (seg[:, w:] == 255).all()
        masks = sample.gt_instances.masks.to_tensor(torch.bool, 'cpu')
        assert masks.shape[-2:] == (1344, 1344)
        for mask, label in zip(masks, sample.gt_instances.labels):
            # the thing masks sit exactly on their pixels of the label map (same PIL grid)
            assert (seg[mask] == label).all()
        batch = preprocessor(pseudo_collate([data]), training=True)
        assert batch['inputs'].shape == (1, 3, 1344, 1344)  # already 1344: no more padding
    assert shrunk  # scale 0.1-2.0 on a 400 px image: some crops are padded


def test_published_options():
    cfg = load_config(PUBLISHED)
    bb = cfg.model.backbone
    # the reference trained at its test stride (its backbone's forward() calls self.eval())
    assert (bb.model_name, bb.train_stride, bb.test_stride) == ('ViTamin-L-336', 112, 112)
    dp = cfg.model.data_preprocessor
    assert (tuple(dp.pad_to_size), dp.pixel_pad_value, dp.unpad) == ((1344, 1344), 0,
                                                                     'long_side')
    assert 'batch_pad_size' not in dp or dp.batch_pad_size is None
    train = cfg.train_dataloader
    assert train.batch_size * 8 == 16 and 'batch_sampler' not in train
    assert train.dataset.filter_cfg == dict(filter_empty_gt=False)
    steps = {t['type']: t for t in train.dataset.pipeline}
    assert steps['LoadImageFromFile']['imdecode_backend'] == 'pillow'
    assert tuple(steps['mmdet.RandomResize']['ratio_range']) == (0.1, 2.0)
    assert steps['mmdet.RandomResize']['resize_type'] == 'vitamin_dense.PILResize'
    assert tuple(steps['mmdet.RandomCrop']['crop_size']) == (1344, 1344)
    assert steps['mmdet.Pad']['pad_val'] == dict(img=(128, 128, 128), seg=255)
    assert steps['mmdet.RandomFlip']['prob'] == 0.5
    opt = cfg.optim_wrapper
    assert opt.type == 'AmpOptimWrapper' and opt.optimizer.type == 'AdamW'
    assert (opt.optimizer.lr, opt.optimizer.weight_decay) == (1e-4, 0.05)
    assert opt.clip_grad == dict(max_norm=0.01, norm_type=2)
    assert cfg.train_cfg.max_iters == 368750
    sched = cfg.param_scheduler
    assert sched.type == 'MultiStepLR' and sched.milestones == [327778, 355092]
    assert sched.gamma == 0.1
    # every published config: the reference's test input and FC-CLIP's vocabularies
    for path in [PUBLISHED] + EVAL_CONFIGS:
        cfg = load_config(path)
        dp = cfg.model.data_preprocessor
        assert (tuple(dp.pad_to_size), dp.pixel_pad_value, dp.unpad) == \
            ((1344, 1344), 0, 'long_side'), path
        assert cfg.model.backbone.test_stride == 112, path
        pipeline = cfg.test_dataloader.dataset.pipeline
        resize = [t for t in pipeline if 'Resize' in t['type']]
        assert resize == [dict(type='mmdet.ResizeShortestEdge', scale=1344, max_size=1344,
                               resize_type='vitamin_dense.PILResize')], path
        assert pipeline[0]['imdecode_backend'] == 'pillow', path
        assert 'classes_file' not in cfg.test_dataloader.dataset, path
        assert DATASETS.get(cfg.test_dataloader.dataset.type).FCCLIP_VOCABULARY, path


def test_ade_panoptic_and_a150_use_the_same_fcclip_vocabulary(tmp_path):
    """Both ADE20K-150 evaluations hand the model FC-CLIP's names (dataset:ade150) for
    each class; the panoptic labels put the 100 things first (mmdet's convention), so
    the same classes come in that order there. Things come from the data set's names."""
    from vitamin_dense.datasets.class_names import ade150_panoptic_order
    from vitamin_dense.models.fcclip.vocabulary import SegVocabulary
    from vitamin_dense.text import parse_vocabulary
    cfg = load_config(osp.join(REPO, 'configs', 'ov_seg', 'eval', 'vitamin_l_ade20k_panoptic.py'))
    panoptic, _ = _ade_panoptic_sample(tmp_path, cfg)
    root = tmp_path / 'ade150'
    for d in ('images/validation', 'annotations/validation'):
        (root / d).mkdir(parents=True)
    Image.fromarray(_photo(32, 32)).save(root / 'images/validation/x.jpg')
    Image.fromarray(np.ones((32, 32), np.uint8)).save(root / 'annotations/validation/x.png')
    sem_cfg = load_config(osp.join(REPO, 'configs', 'ov_seg', 'eval', 'vitamin_l_ade20k_150.py'))
    semantic = copy.deepcopy(sem_cfg.test_dataloader.dataset.to_dict())
    semantic.update(data_root=str(root))
    semantic = DATASETS.build(semantic)
    expected = parse_vocabulary('dataset:ade150').classes
    pan_vocab = SegVocabulary.from_metainfo(panoptic.metainfo)
    sem_vocab = SegVocabulary.from_metainfo(semantic.metainfo)
    assert sem_vocab.classes == expected
    assert pan_vocab.classes == tuple(expected[i] for i in ade150_panoptic_order())
    assert sum(pan_vocab.is_thing) == 100 and all(pan_vocab.is_thing[:100])
    # spot checks of the name matching: mmdet's panoptic names vs FC-CLIP's
    pan_names = [n.strip() for n in panoptic.metainfo['classes']]
    for mmdet_name, fcclip_first in (('bed', 'bed'), ('window', 'windowpane'), ('person', 'person'),
                                     ('painting, picture', 'painting'), ('wall', 'wall'),
                                     ('sky', 'sky'), ('airplane', 'airplane'),
                                     ('flag', 'flag'), ('shower', 'shower')):
        assert pan_vocab.classes[pan_names.index(mmdet_name)][0] == fcclip_first, mmdet_name
    # the evaluators split seen / unseen on the same names: 64 seen
    from vitamin_dense.evaluation.seen_split import resolve_seen_flags
    for meta in (panoptic.metainfo, semantic.metainfo):
        assert sum(resolve_seen_flags(meta, 'dataset:coco_panoptic')) == 64
