"""Video: frames at a stride, text embedded once, annotated video + per-frame JSON, streamed."""
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from vitamin_dense.apis.video import detect_video, is_video_path, iter_frames, segment_video
from vitamin_dense.errors import ConfigError, ImageReadError

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def write_video(path, frames=12, size=(72, 96), fps=10.0):
    """A short MJPG video of a square moving right; frame i has its index in the red channel."""
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, (w, h))
    assert writer.isOpened()
    for i in range(frames):
        img = np.full((h, w, 3), 60, np.uint8)
        img[20:44, 4 + 5 * i:28 + 5 * i] = (40, 200, 40)  # BGR
        img[:8, :8, 2] = 20 * i
        writer.write(img)
    writer.release()
    return str(path)


@pytest.fixture(scope='module')
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp('video') / 'clip.avi')


@pytest.fixture(scope='module')
def segmenter(tiny_model_name):
    from vitamin_dense.apis import Segmenter
    return Segmenter(tiny_model_name, weights=None, device='cpu', stride=32)


def test_frames_at_a_stride(video):
    frames = list(iter_frames(video, stride=3))
    assert [i for i, _, _ in frames] == [0, 3, 6, 9]
    assert [round(t, 3) for _, t, _ in frames] == [0.0, 0.3, 0.6, 0.9]
    for i, _, rgb in frames:  # the right frames, decoded to RGB
        assert rgb.shape == (72, 96, 3) and abs(int(rgb[2, 2, 0]) - 20 * i) <= 6
    assert is_video_path(video) and not is_video_path('photo.jpg')
    with pytest.raises(ConfigError, match='at least 1'):
        next(iter_frames(video, stride=0))


def test_segment_video_streams_and_embeds_text_once(video, segmenter, tmp_path, monkeypatch):
    text = segmenter.predictor.model.text_classifier
    calls = []
    real = text._encode_uncached
    monkeypatch.setattr(text, '_encode_uncached', lambda vocab: calls.append(1) or real(vocab))
    text._memory_cache.clear()
    summary = segment_video(segmenter, video, 'square; ground', str(tmp_path), stride=2,
                            progress=False)
    assert summary['frames'] == 6 and summary['written'] == 6 and summary['fps'] == 5.0
    assert len(calls) == 1  # six frames, one text encoding
    out = cv2.VideoCapture(summary['video'])
    n = 0
    while out.read()[0]:
        n += 1
    assert n == 6
    with open(summary['json']) as f:
        record = json.load(f)
    assert record['classes'] == ['square', 'ground'] and record['stride'] == 2
    assert [fr['frame'] for fr in record['frames']] == [0, 2, 4, 6, 8, 10]
    for fr in record['frames']:
        assert set(fr['shares']) == {'square', 'ground'}
        assert abs(sum(fr['shares'].values()) - 1) < 1e-3
    # each frame's record is that frame's own segmentation
    frame4 = next(rgb for i, _, rgb in iter_frames(video) if i == 4)
    assert record['frames'][2]['shares'] == pytest.approx(segmenter(frame4, 'square; ground')
                                                          .shares, abs=1e-4)


def test_memory_stays_bounded(video, segmenter, tmp_path, monkeypatch):
    """No frame outlives its turn: at most one decoded frame is alive at any time."""
    import vitamin_dense.apis.video as vid
    alive = []
    real = vid.iter_frames

    def watched(*args, **kwargs):
        import weakref
        for item in real(*args, **kwargs):
            holder = np.array(item[2])  # a trackable copy handed to the caller
            alive.append(weakref.ref(holder))
            yield item[0], item[1], holder
            del holder
    monkeypatch.setattr(vid, 'iter_frames', watched)
    summary = segment_video(segmenter, video, 'a,b', str(tmp_path / 'o.mp4'), progress=False)
    live = [r for r in alive if r() is not None]
    assert summary['frames'] == 12 and len(live) <= 1


def test_detect_video(video, tiny_model_name, tmp_path):
    from vitamin_dense.apis import Detector
    det = Detector(model=tiny_model_name, random_init=True, device='cpu', input_size=96,
                   threshold=0.0, max_detections=3)
    summary = detect_video(det, video, 'square', str(tmp_path / 'boxes.avi'), stride=4,
                           progress=False)
    assert summary['frames'] == 3 and osp.isfile(str(tmp_path / 'boxes.avi'))
    with open(tmp_path / 'boxes.json') as f:
        frames = json.load(f)['frames']
    assert [len(fr['detections']) for fr in frames] == [3, 3, 3]


def test_bad_videos(tmp_path, segmenter):
    with pytest.raises(ImageReadError, match='not found'):
        next(iter_frames(str(tmp_path / 'missing.mp4')))
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(b'not a video at all' * 10)
    with pytest.raises(ImageReadError, match='cannot read video|no readable frame'):
        next(iter_frames(str(bad)))


@pytest.mark.slow  # an end-to-end run in fresh processes (bash tools/run_tests.sh --all)
def test_demos_take_a_video(video, tmp_path, tiny_model_name):
    env_py = [sys.executable]
    common = ['--random-init', '--model', tiny_model_name, '--frame-stride', '6', '--device', 'cpu']
    seg = subprocess.run(env_py + [osp.join(ROOT, 'demo', 'segment.py'), video, '--vocab', 'a,b',
                                   '--out', str(tmp_path / 'seg')] + common,
                         capture_output=True, text=True, timeout=300)
    assert seg.returncode == 0, seg.stderr
    assert '2 frames' in seg.stdout and osp.isfile(tmp_path / 'seg' / 'clip_segment.mp4')
    assert osp.isfile(tmp_path / 'seg' / 'clip_segment.json')
    det = subprocess.run(env_py + [osp.join(ROOT, 'demo', 'detect.py'), video, '--vocab', 'a',
                                   '--out', str(tmp_path / 'det.mp4'), '--input-size', '96']
                         + common, capture_output=True, text=True, timeout=300)
    assert det.returncode == 0, det.stderr
    assert '2 frames' in det.stdout and osp.isfile(tmp_path / 'det.json')
