"""Segment or detect in a video, frame by frame, in bounded memory.

    from vitamin_dense.apis import Segmenter
    from vitamin_dense.apis.video import segment_video
    summary = segment_video(Segmenter('ViTamin-Tiny', weights=None), 'clip.mp4', 'cat,dog',
                            'out/clip_segment.mp4', stride=5)

Frames are read with OpenCV one at a time (skipped frames are grabbed, not
decoded) and never held together: each kept frame is run, drawn, written to
the annotated video and summarised in the per-frame JSON, then dropped. The
vocabulary is parsed once and its text embeddings computed once (the text
tower's cache serves every later frame). The annotated video has the kept
frames at ``fps / stride``; the JSON (written as it goes, so a long video
never builds a list in memory) holds, per frame, its index, time and the
class shares (segmentation) or the boxes (detection).
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import cv2
import numpy as np

from ..errors import ConfigError, ImageReadError, VitaminDenseError

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv')
_FOURCC = {'.avi': 'MJPG', '.mkv': 'MJPG'}  # anything else: mp4v


def is_video_path(path: Any) -> bool:
    """Whether ``path`` names a video file (by its suffix)."""
    return isinstance(path, (str, os.PathLike)) and \
        os.path.splitext(os.fspath(path))[1].lower() in VIDEO_EXTENSIONS


def video_info(path: str) -> Dict[str, Any]:
    """``fps``, ``frames`` (as the container says; may be 0), ``width``, ``height``."""
    cap = _open(path)
    try:
        return dict(fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
                    frames=int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
                    width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                    height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()


def _open(path: str) -> cv2.VideoCapture:
    if not os.path.isfile(path):
        raise ImageReadError(f'video not found: {path}')
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise ImageReadError(f'cannot read video {path}: OpenCV cannot open it (corrupt, or a '
                             'codec this OpenCV build lacks)')
    return cap


def iter_frames(path: str, stride: int = 1, max_frames: Optional[int] = None
                ) -> Iterator[Tuple[int, float, np.ndarray]]:
    """Yield ``(frame index, time in s, RGB uint8)`` for every ``stride``-th frame, one at a time."""
    if int(stride) < 1:
        raise ConfigError(f'frame stride must be at least 1, got {stride}')
    cap = _open(path)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    try:
        index = kept = 0
        while max_frames is None or kept < max_frames:
            if index % stride:
                if not cap.grab():  # skip without decoding
                    break
                index += 1
                continue
            ok, bgr = cap.read()
            if not ok:
                break
            yield index, (index / fps if fps > 0 else float(index)), bgr[..., ::-1].copy()
            index += 1
            kept += 1
    finally:
        cap.release()
    if index == 0:
        raise ImageReadError(f'video {path} has no readable frame')


class _FrameWriter:
    """``cv2.VideoWriter`` opened on the first frame; later frames are fitted to its size."""

    def __init__(self, path: str, fps: float):
        self.path = path
        self.fps = fps
        self.size: Optional[Tuple[int, int]] = None
        self.writer: Optional[cv2.VideoWriter] = None
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        if self.writer is None:
            folder = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
            ext = os.path.splitext(self.path)[1].lower()
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC.get(ext, 'mp4v'))
            self.size = (w - w % 2, h - h % 2)  # even sizes: what most codecs need
            self.writer = cv2.VideoWriter(self.path, fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise VitaminDenseError(f'cannot write video {self.path}: OpenCV has no encoder '
                                        'for it (use .mp4 or .avi)')
        if (w, h) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(np.ascontiguousarray(rgb[..., ::-1]))
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def process_video(path: str, run: Callable[[np.ndarray], Any],
                  draw: Callable[[Any], np.ndarray], record: Callable[[Any], Dict[str, Any]],
                  out_video: Optional[str], out_json: Optional[str], stride: int = 1,
                  max_frames: Optional[int] = None, progress: bool = True,
                  header: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Run ``run`` on every ``stride``-th frame; write the drawn frames and per-frame records.

    Args:
        run: RGB frame -> result. draw: result -> RGB picture. record: result -> JSON dict.
        out_video / out_json: where to write (None: skip that output).
        header: entries placed before ``frames`` in the JSON.

    Returns:
        A summary: frames run, frames written, fps of the output, paths.
    """
    info = video_info(path)
    fps_out = (info['fps'] or 25.0) / stride
    total = info['frames']
    expected = math.ceil(total / stride) if total else None
    if max_frames is not None and expected is not None:
        expected = min(expected, max_frames)
    writer = _FrameWriter(out_video, fps_out) if out_video else None
    handle = None
    if out_json:
        os.makedirs(os.path.dirname(os.path.abspath(out_json)), exist_ok=True)
        handle = open(out_json + '.tmp', 'w', encoding='utf-8')
        head = dict(source=os.fspath(path), fps=info['fps'], stride=stride,
                    width=info['width'], height=info['height'], **(header or {}))
        handle.write(json.dumps(head)[:-1] + ', "frames": [\n')
    frames = iter_frames(path, stride, max_frames)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(frames, total=expected, desc=f'frames (every {stride})' if stride > 1
                   else 'frames', unit='frame')
        frames = bar
    count = 0
    try:
        for index, seconds, rgb in frames:
            result = run(rgb)
            if writer is not None:
                writer.write(draw(result))
            if handle is not None:
                entry = dict(frame=index, time=round(seconds, 4), **record(result))
                handle.write((',\n' if count else '') + json.dumps(entry))
            count += 1
            del result, rgb  # nothing of a frame outlives its turn
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        if handle is not None:
            handle.write('\n]}\n')
            handle.close()
            os.replace(out_json + '.tmp', out_json)
    return dict(frames=count, written=writer.frames if writer else 0, fps=fps_out,
                video=out_video, json=out_json)


def _outputs(out: str, source: str, tag: str) -> Tuple[str, str]:
    """``(video path, json path)`` for ``--out``: a video file name, or a directory."""
    ext = os.path.splitext(out)[1].lower()
    if ext in VIDEO_EXTENSIONS:
        return out, os.path.splitext(out)[0] + '.json'
    if ext in ('.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff'):
        raise ConfigError(f'--out {out} names a picture, but the input is a video: give a '
                          '.mp4 / .avi file name or a directory')
    stem = os.path.splitext(os.path.basename(source))[0]
    return os.path.join(out, f'{stem}_{tag}.mp4'), os.path.join(out, f'{stem}_{tag}.json')


def segment_video(segmenter, path: str, vocabulary, out: str, stride: int = 1,
                  threshold=None, max_frames: Optional[int] = None, alpha: float = 0.5,
                  progress: bool = True) -> Dict[str, Any]:
    """Segment every ``stride``-th frame with a :class:`~vitamin_dense.apis.Segmenter`.

    ``out`` is the annotated video (``.mp4`` / ``.avi``) or a directory (then
    ``<name>_segment.mp4`` and ``.json`` go there).
    """
    from ..text import parse_vocabulary
    vocab = parse_vocabulary(vocabulary)  # parsed once; its embeddings are cached after frame 1
    out_video, out_json = _outputs(out, path, 'segment')
    kwargs = {} if threshold is None else {'threshold': threshold}

    def record(result) -> Dict[str, Any]:
        out = dict(shares={k: round(v, 5) for k, v in result.shares.items()})
        if getattr(result, 'task', 'semantic') == 'panoptic':
            out['segments'] = [dict(s) for s in result.segments]
        return out

    summary = process_video(path, lambda rgb: segmenter(rgb, vocab, **kwargs),
                            lambda r: r.overlay(alpha=alpha), record, out_video, out_json,
                            stride, max_frames, progress,
                            header=dict(task='segment', classes=list(vocab.names)))
    return summary


def detect_video(detector, path: str, vocabulary, out: str, stride: int = 1,
                 max_frames: Optional[int] = None, progress: bool = True) -> Dict[str, Any]:
    """Detect the vocabulary's classes in every ``stride``-th frame with a :class:`Detector`."""
    from ..text import parse_vocabulary
    vocab = parse_vocabulary(vocabulary)
    out_video, out_json = _outputs(out, path, 'detect')
    return process_video(path, lambda rgb: detector(rgb, vocab), lambda r: r.draw(),
                         lambda r: dict(detections=r.to_list()), out_video, out_json, stride,
                         max_frames, progress,
                         header=dict(task='detect', classes=list(vocab.names)))


__all__ = ['VIDEO_EXTENSIONS', 'is_video_path', 'video_info', 'iter_frames', 'process_video',
           'segment_video', 'detect_video']
