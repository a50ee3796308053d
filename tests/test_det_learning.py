"""A short training run on synthetic shapes really learns.

``configs/ov_det/owl_vitamin_tiny_synthetic.py`` trains through MMEngine's
runner (mmdet's pipeline, Hungarian matching with mmdet's costs and losses,
the vocabulary hook, COCO AP with mmdet's CocoMetric) on generated images, and
is evaluated on held-out images of another seed: its AP must be far above the
same model before training (about 30 s on a free core). Shapes that cross a window border (the 128 px
images are 2 x 2 windows of 64 px) must be found about as often as the others.
"""
import numpy as np
import pytest
import torch

from vitamin_dense.engine.config import build_runner, load_config

CONFIG = 'configs/ov_det/owl_vitamin_tiny_synthetic.py'
ITERS = 400
# An easier variant of the default shapes, so that a run of ~1 minute on 2 cores is enough.
GENERATOR = dict(image_size=128, thing_classes=('circle', 'square', 'triangle'), min_size=0.25,
                 max_size=0.45, max_instances=3, void_prob=0.0)


def _options(root: str, work_dir: str) -> dict:
    ann = f'{root}/annotations/instances_val.json'
    return {
        'work_dir': work_dir,
        'train_dataloader.dataset.data_root': root,
        'train_dataloader.dataset.generator': dict(GENERATOR, num_images=200, seed=0),
        'val_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.generator': dict(GENERATOR, num_images=50, seed=1),
        'test_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.generator': dict(GENERATOR, num_images=50, seed=1),
        'val_evaluator.ann_file': ann, 'test_evaluator.ann_file': ann,
        'train_cfg.max_iters': ITERS, 'train_cfg.val_interval': ITERS,
        'param_scheduler': [
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
            dict(type='MultiStepLR', by_epoch=False, milestones=[int(ITERS * 0.8)], gamma=0.1)],
        'default_hooks.checkpoint.interval': 10 ** 6,
        'default_hooks.logger.interval': 50,
        'log_level': 'WARNING',
    }


def _border_recall(model, dataset, window: int = 64, iou_thr: float = 0.5):
    """Recall at IoU 0.5 (top 20 boxes per image) of shapes crossing a window border vs not."""
    from torchvision.ops import box_iou
    from mmengine.dataset import pseudo_collate
    found = {True: [], False: []}
    model.eval()
    for i in range(len(dataset)):
        data = model.data_preprocessor(pseudo_collate([dataset[i]]), False)
        sample = model.predict(data['inputs'], data['data_samples'])[0]
        pred = sample.pred_instances
        keep = pred.scores.argsort(descending=True)[:20]
        gt = sample.gt_instances
        # the test pipeline loads annotations after Resize: gt boxes are in original pixels,
        # like the predictions
        gt_boxes = getattr(gt.bboxes, 'tensor', gt.bboxes).float()
        ious = box_iou(gt_boxes, pred.bboxes[keep].float()) if len(keep) else \
            torch.zeros(len(gt_boxes), 0)
        same = pred.labels[keep][None, :] == gt.labels[:, None]
        hit = ((ious >= iou_thr) & same).any(dim=1) if len(keep) else torch.zeros(len(gt_boxes),
                                                                                   dtype=bool)
        for box, h in zip(gt_boxes, hit):
            x1, y1, x2, y2 = box.tolist()
            crosses = any(a < line < b for line in range(window, 128, window)
                          for a, b in ((x1, x2), (y1, y2)))
            found[crosses].append(bool(h))
    return {k: (float(np.mean(v)) if v else float('nan'), len(v)) for k, v in found.items()}



@pytest.mark.slow
def test_short_training_run_beats_the_untrained_model(tmp_path, one_thread):
    cfg = load_config(CONFIG, _options(str(tmp_path / 'data'), str(tmp_path / 'work')))
    runner = build_runner(cfg)
    untrained = runner.val_loop.run()
    runner.train()
    trained = runner.val_loop.run()
    before, after = untrained['coco/bbox_mAP_50'], trained['coco/bbox_mAP_50']
    print(f'AP50 untrained {before:.3f} -> trained {after:.3f}; '
          f"AP {untrained['coco/bbox_mAP']:.3f} -> {trained['coco/bbox_mAP']:.3f}")
    assert after >= 0.2 and after >= 5 * before + 0.1
    assert trained['coco/bbox_mAP'] >= 0.06 and trained['coco/bbox_mAP'] > 3 * untrained['coco/bbox_mAP']

    recall = _border_recall(runner.model, runner.val_dataloader.dataset)
    print(f'recall@0.5: across window borders {recall[True]}, inside one window {recall[False]}')
    (crossing, n_cross), (inside, n_inside) = recall[True], recall[False]
    assert n_cross >= 10 and n_inside >= 10  # the data really has both kinds
    assert crossing >= 0.5 * inside and crossing > 0.2

    result, ref = _api_and_runner_predictions(runner, tmp_path)
    assert len(result) == len(ref) > 0
    np.testing.assert_allclose(result.boxes, ref.bboxes.numpy(), atol=0.5)
    np.testing.assert_allclose(result.scores, ref.scores.numpy(), atol=2e-3)


def _api_and_runner_predictions(runner, tmp_path):
    """The trained checkpoint through the Python API (its config read from the checkpoint)
    and the runner's own prediction, for the first held-out image."""
    from mmengine.dataset import pseudo_collate
    from vitamin_dense.apis import Detector
    from vitamin_dense.text import vocabulary_from_metainfo
    runner.save_checkpoint(str(tmp_path), 'final.pth')
    det = Detector(checkpoint=str(tmp_path / 'final.pth'), device='cpu', threshold=0.2,
                   one_label_per_box=False)  # the runner keeps every label of a box
    assert det.input_size == 128  # the config's test resize, from the checkpoint's config
    dataset = runner.val_dataloader.dataset
    item = dataset[0]
    vocab = vocabulary_from_metainfo(dataset.metainfo, 'the validation set')
    result = det(item['data_samples'].img_path, vocab)
    model = runner.model.eval()
    data = model.data_preprocessor(pseudo_collate([item]), False)
    ref = model.predict(data['inputs'], data['data_samples'])[0].pred_instances
    return result, ref[ref.scores > 0.2]
