"""Pictures of predictions during validation and testing, for every vitamin-dense config.

:class:`DenseVisualizationHook` follows MMDetection's ``DetVisualizationHook``
(arguments ``draw``, ``interval``, ``score_thr``, ``show``, ``wait_time``,
``test_out_dir``, ``backend_args``; ``tools/test.py --show-dir DIR`` sets
``draw`` and ``test_out_dir``): test pictures go to
``work_dir/<timestamp>/<test_out_dir>/<image file name>`` (an absolute
``test_out_dir`` is used as is), validation pictures every ``interval``
iterations to the visualizer's backends (``work_dir/<timestamp>/vis_data``).
It draws any data sample, mmdet's or mmseg's, as the demos draw their
results: boxes and instance masks with ``name score`` tags
(``score_thr`` hides weaker ones), panoptic segments in shades of their class
colour, semantic labels, each with a legend; several kinds of prediction for
one image are drawn side by side.
"""
from __future__ import annotations

import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
from mmengine.hooks import Hook

from ..registry import HOOKS
from ..utils.defaults import VISUALIZATION_THRESHOLD
from .boxes import draw_detections
from .overlay import PANEL_COLOR, draw_segmentation, resize_for_display
from .panoptic import draw_panoptic, segments_from_panoptic_ids


@HOOKS.register_module()
class DenseVisualizationHook(Hook):
    """Draw predictions of the validation / test loops (mmdet's conventions).

    Args:
        draw: draw at all (``tools/test.py --show-dir`` switches it on).
        interval: validation iterations between two pictures.
        score_thr: boxes and instances scoring below it are not drawn.
        show: also show each picture in a window (``wait_time`` seconds).
        test_out_dir: test pictures' folder, relative to
            ``work_dir/<timestamp>`` (or absolute).
        backend_args: file backend of the images (mmengine's ``get``).
        alpha: opacity of masks and label colours.
        panoptic_offset: mmdet's ``INSTANCE_OFFSET`` of panoptic ids.
    """

    priority = 'NORMAL'

    def __init__(self, draw: bool = False, interval: int = 50,
                 score_thr: float = VISUALIZATION_THRESHOLD, show: bool = False,
                 wait_time: float = 0., test_out_dir: Optional[str] = None,
                 backend_args: Optional[dict] = None, alpha: float = 0.5,
                 panoptic_offset: int = 1000):
        self.draw = draw
        self.interval = max(1, int(interval))
        self.score_thr = float(score_thr)
        self.show = show
        self.wait_time = wait_time
        self.test_out_dir = test_out_dir
        self.backend_args = backend_args
        self.alpha = alpha
        self.panoptic_offset = panoptic_offset
        self._test_index = 0

    # ----------------------------------------------------------------- hooks
    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.draw or not outputs:
            return
        step = runner.iter + batch_idx
        if step % self.interval:
            return
        picture = self.draw_sample(outputs[0], self._class_names(runner))
        self._emit(runner, 'val_img', picture, step, None, outputs[0])

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.draw:
            return
        out_dir = None
        if self.test_out_dir is not None:
            out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
        names = self._class_names(runner)
        for sample in outputs or ():
            self._test_index += 1
            out_file = None if out_dir is None else \
                osp.join(out_dir, osp.basename(sample.img_path))
            self._emit(runner, 'test_img', self.draw_sample(sample, names), self._test_index,
                       out_file, sample)

    # --------------------------------------------------------------- drawing
    def draw_sample(self, sample, class_names: Sequence[str]) -> np.ndarray:
        """The picture of one data sample's predictions (RGB uint8)."""
        image = self._read(sample.img_path)
        title = osp.basename(sample.img_path)
        names = list(class_names)
        panels: List[np.ndarray] = []
        if 'pred_instances' in sample:
            inst = sample.pred_instances
            scores = inst.scores.detach().float().cpu().numpy()
            keep = scores >= self.score_thr
            masks = None
            if 'masks' in inst and len(inst):
                masks = _fit(_numpy(inst.masks).astype(bool), image.shape[:2])[keep]
            panels.append(draw_detections(
                image, _numpy(inst.bboxes)[keep], _numpy(inst.labels)[keep], scores[keep],
                _names_for(names, _numpy(inst.labels)), masks=masks, alpha=self.alpha,
                title=f'{title}: boxes scoring >= {self.score_thr:g}'))
        if 'pred_panoptic_seg' in sample:
            ids = _fit(_numpy(sample.pred_panoptic_seg.sem_seg)[0], image.shape[:2])
            seg_map, segments = segments_from_panoptic_ids(ids, len(names), self.panoptic_offset)
            panels.append(draw_panoptic(image, seg_map, segments, names, alpha=self.alpha,
                                        title=f'{title}: panoptic'))
        if 'pred_sem_seg' in sample:
            labels = _fit(_numpy(sample.pred_sem_seg.sem_seg)[0], image.shape[:2]).astype(np.int64)
            labels[(labels < 0) | (labels >= len(names))] = -1
            panels.append(draw_segmentation(image, labels, names, alpha=self.alpha,
                                            title=f'{title}: semantic'))
        if not panels:
            return image
        return _side_by_side(panels)

    def _read(self, path: str) -> np.ndarray:
        from ..utils.image_io import read_image
        if self.backend_args is None:
            return read_image(path)
        from mmengine.fileio import get
        return _decode(get(path, backend_args=self.backend_args))

    def _emit(self, runner, name: str, picture: np.ndarray, step: int,
              out_file: Optional[str], sample) -> None:
        if self.show:
            runner.visualizer.show(picture, win_name=osp.basename(sample.img_path),
                                   wait_time=self.wait_time)
        if out_file is not None:
            from ..utils.image_io import save_image
            save_image(out_file, picture)
        elif not self.show:
            runner.visualizer.add_image(name, picture, step=step)

    @staticmethod
    def _class_names(runner) -> List[str]:
        meta = getattr(runner.visualizer, 'dataset_meta', None) or {}
        return list(meta.get('classes') or ())


def _numpy(value) -> np.ndarray:
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _decode(data: bytes) -> np.ndarray:
    import cv2
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return bgr[..., ::-1].copy()


def _fit(labels: np.ndarray, size) -> np.ndarray:
    """Label maps or masks at the image size (nearest neighbour), if they differ."""
    if labels.shape[-2:] == tuple(size):
        return labels
    if labels.ndim == 3:
        return np.stack([_fit(m, size) for m in labels]) if len(labels) else \
            np.zeros((0,) + tuple(size), labels.dtype)
    dtype = labels.dtype
    return resize_for_display(labels.astype(np.int32), tuple(size), labels=True).astype(dtype)


def _names_for(names: List[str], labels: np.ndarray) -> List[str]:
    """Class names long enough for every label (unknown labels get their number)."""
    top = int(labels.max()) + 1 if labels.size else 0
    return names + [f'class {i}' for i in range(len(names), top)]


def _side_by_side(panels: Sequence[np.ndarray]) -> np.ndarray:
    if len(panels) == 1:
        return panels[0]
    height = max(p.shape[0] for p in panels)
    padded = []
    for p in panels:
        canvas = np.empty((height, p.shape[1], 3), np.uint8)
        canvas[:] = PANEL_COLOR
        canvas[:p.shape[0]] = p
        padded.append(canvas)
    return np.concatenate(padded, axis=1)


__all__ = ['DenseVisualizationHook']
