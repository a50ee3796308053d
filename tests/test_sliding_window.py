"""Sliding-window planning and stitching, alone and through ViTaminBackbone."""
import math

import pytest
import torch
import torch.nn.functional as F

from vitamin_dense.backbones import (ViTaminBackbone, check_stride, plan_windows,
                                     sliding_window_forward, snap_stride, window_starts)
from vitamin_dense.backbones.sliding_window import chunk_size_for_budget
from vitamin_dense.errors import ConfigError


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    return ViTaminBackbone('ViTamin-Tiny', None)


def _images(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# -------------------------------------------------------------------- planning
def test_window_starts_clamp_the_last_window_to_the_edge():
    assert window_starts(64, 64, 32) == [0]
    assert window_starts(40, 64, 32) == [0]
    assert window_starts(112, 64, 32) == [0, 32, 48]
    assert window_starts(128, 64, 64) == [0, 64]
    assert window_starts(144, 64, 64) == [0, 64, 80]


def test_plan_pads_to_tokens_and_at_least_one_window():
    grid = plan_windows(17, 1000, 64, 32)
    assert (grid.padded_height, grid.padded_width) == (64, 1008)
    assert grid.ys == (0,) and grid.xs[-1] == 1008 - 64
    assert all(x % 16 == 0 for x in grid.xs)
    assert grid.num_windows == len(grid.xs)
    with pytest.raises(ConfigError, match='no pixels'):
        plan_windows(0, 10, 64, 64)


@pytest.mark.parametrize('stride', [0, -16, 40, 24, 17])
def test_stride_not_a_multiple_of_16_is_rejected(stride, tiny):
    with pytest.raises(ConfigError, match='multiple of 16'):
        check_stride(stride, 64)
    if stride > 0:
        with pytest.raises(ConfigError, match='multiple of 16'):
            tiny(torch.zeros(1, 3, 64, 64), stride=stride)


def test_backbone_rejects_a_bad_configured_stride():
    with pytest.raises(ConfigError, match='not a positive multiple of 16 px'):
        ViTaminBackbone('ViTamin-Tiny', None, test_stride=40)


def test_other_bad_strides_are_rejected():
    with pytest.raises(ConfigError, match='larger than the window'):
        check_stride(80, 64)
    with pytest.raises(ConfigError, match='integer'):
        check_stride(32.0, 64)
    assert snap_stride(168) in (160, 176) and snap_stride(3) == 16


# ------------------------------------------------------------ stitching (pure)
def test_stride_equal_to_window_tiles_without_overlap():
    """Each output cell comes from exactly one window: a per-window constant survives."""
    images = _images(1, 3, 128, 192)

    def window_mean(x):  # one value per window, broadcast over its 4x4 token grid
        return {'m': x.mean(dim=(1, 2, 3), keepdim=True).expand(-1, 1, 4, 4).contiguous()}

    out = sliding_window_forward(images, window_mean, window=64, stride=64)['m']
    expected = F.avg_pool2d(images.mean(1, keepdim=True), 64)
    expected = expected.repeat_interleave(4, -2).repeat_interleave(4, -1)
    torch.testing.assert_close(out, expected)
    # With overlap the same function averages neighbouring windows: values differ.
    overlapped = sliding_window_forward(images, window_mean, window=64, stride=32)['m']
    assert not torch.allclose(overlapped, expected)


@pytest.mark.parametrize('size,stride', [((64, 64), 64), ((100, 130), 16), ((100, 130), 48),
                                         ((1, 1), 32), ((17, 300), 32), ((300, 50), 64)])
def test_translation_equivariant_fn_stitches_to_the_global_result(size, stride):
    """Windows on the token grid + overlap averaging = running the fn on the whole image."""
    images = _images(2, 3, *size)

    def pool(x):
        return {'p4': F.avg_pool2d(x, 4), 'p16': F.avg_pool2d(x, 16)}

    out = sliding_window_forward(images, pool, window=64, stride=stride,
                                 max_windows_per_chunk=3)
    h, w = size
    padded = F.pad(images, (0, max(64, math.ceil(w / 16) * 16) - w,
                            0, max(64, math.ceil(h / 16) * 16) - h))
    for name, s in (('p4', 4), ('p16', 16)):
        expected = F.avg_pool2d(padded, s)[..., :math.ceil(h / s), :math.ceil(w / s)]
        assert out[name].shape == (2, 3, math.ceil(h / s), math.ceil(w / s))
        torch.testing.assert_close(out[name], expected, atol=1e-6, rtol=1e-5)


def test_bad_window_outputs_are_explained():
    with pytest.raises(ValueError, match='does not divide'):
        sliding_window_forward(torch.zeros(1, 3, 64, 64), lambda x: {'a': F.avg_pool2d(x, 32)},
                               window=64, stride=64)
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        sliding_window_forward(torch.zeros(3, 64, 64), lambda x: {}, window=64, stride=64)


# ------------------------------------------------------------- through the model
def test_image_equal_to_window_is_exactly_the_single_forward(tiny):
    x = _images(2, 3, 64, 64)
    with torch.no_grad():
        stitched = tiny(x, stride=32)
        single = tiny.forward_window(x)
    for name in ('s4', 's8', 's16', 'clip'):
        assert torch.equal(stitched[name], single[name]), name
    assert torch.equal(stitched['s32'], F.max_pool2d(single['s16'], 2, 2, ceil_mode=True))


@pytest.mark.parametrize('size', [(1, 1), (17, 1000), (3000, 50), (65, 63)])
def test_odd_sizes_give_ceil_sized_outputs(tiny, size):
    h, w = size
    with torch.no_grad():
        out = tiny(_images(1, 3, h, w), stride=64)
    for name, s in (('s4', 4), ('s8', 8), ('s16', 16), ('clip', 16)):
        assert out[name].shape[-2:] == (math.ceil(h / s), math.ceil(w / s)), name
        assert torch.isfinite(out[name]).all()
    assert out['s32'].shape[-2:] == (math.ceil(math.ceil(h / 16) / 2),
                                     math.ceil(math.ceil(w / 16) / 2))


def test_small_images_are_zero_padded_and_the_padding_cropped(tiny):
    x = _images(1, 3, 17, 100)
    with torch.no_grad():
        out = tiny(x, stride=32)
        padded = tiny(F.pad(x, (0, 112 - 100, 0, 64 - 17)), stride=32)
    for name, s in (('s4', 4), ('s16', 16), ('clip', 16)):
        h, w = math.ceil(17 / s), math.ceil(100 / s)
        torch.testing.assert_close(out[name], padded[name][..., :h, :w])


def test_results_do_not_depend_on_the_chunk_size(tiny):
    x = _images(2, 3, 100, 130)
    outs = []
    default = tiny.max_windows_per_chunk
    try:
        for chunk in (1, 5, 1000):
            tiny.max_windows_per_chunk = chunk
            with torch.no_grad():
                outs.append(tiny(x, stride=32))
    finally:
        tiny.max_windows_per_chunk = default
    for other in outs[1:]:
        for name in outs[0]:
            torch.testing.assert_close(other[name], outs[0][name], atol=1e-5, rtol=1e-5)


def test_only_requested_outputs_are_returned(tiny):
    torch.manual_seed(0)
    clip_only = ViTaminBackbone('ViTamin-Tiny', None, out_levels=(), with_clip_map=True)
    clip_only.load_state_dict(tiny.state_dict())
    x = _images(1, 3, 100, 70)
    with torch.no_grad():
        out = clip_only(x, stride=32)
        full = tiny(x, stride=32)
    assert set(out) == {'clip'}
    torch.testing.assert_close(out['clip'], full['clip'])
    levels = ViTaminBackbone('ViTamin-Tiny', None, out_levels=('s8', 's32'),
                             with_clip_map=False, return_tuple=True)
    with torch.no_grad():
        s8, s32 = levels(x)
    assert s8.shape[-2:] == (13, 9) and s32.shape[-2:] == (4, 3)


def test_memory_budget_sets_the_chunk_size():
    small = ViTaminBackbone('ViTamin-Tiny', None, memory_budget_mb=1)
    large = ViTaminBackbone('ViTamin-Tiny', None, memory_budget_mb=64)
    assert 1 <= small.max_windows_per_chunk < large.max_windows_per_chunk
    per_window_mb = large._per_window_bytes / 2 ** 20
    assert large.max_windows_per_chunk * per_window_mb <= 64
    assert chunk_size_for_budget(10 * 2 ** 20, 5) == 1
    with pytest.raises(ConfigError, match='positive'):
        chunk_size_for_budget(1000, 0)


# ----------------------------------------------------- chunk policy, shared mode
def test_chunks_are_small_on_a_cpu_and_as_large_as_the_budget_elsewhere():
    from vitamin_dense.backbones.sliding_window import (CPU_CHUNK_BYTES, MAX_CPU_CHUNK,
                                                        preferred_chunk_size)
    mb = 2 ** 20
    assert preferred_chunk_size(CPU_CHUNK_BYTES // 3, 'cpu') == 2  # a power of two that fits
    assert preferred_chunk_size(mb // 100, 'cpu') == MAX_CPU_CHUNK
    assert preferred_chunk_size(10 * CPU_CHUNK_BYTES, torch.device('cpu')) == 1
    assert preferred_chunk_size(mb, 'cuda') is None and preferred_chunk_size(mb, None) is None
    assert chunk_size_for_budget(mb, 1024, device='cuda') == 1024
    assert chunk_size_for_budget(mb, 1024, device='cpu') == MAX_CPU_CHUNK
    assert chunk_size_for_budget(mb, 16, device='cpu') == 16  # the budget still bounds it
    assert chunk_size_for_budget(mb, None, device='cpu') == 16


def test_backbone_chunk_follows_its_device_unless_set(tiny):
    from vitamin_dense.backbones.sliding_window import preferred_chunk_size
    per_window = tiny._per_window_bytes
    on_cpu = tiny.max_windows_per_chunk
    assert on_cpu == min(preferred_chunk_size(per_window, 'cpu'),
                         chunk_size_for_budget(per_window, tiny.memory_budget_mb))
    fixed = ViTaminBackbone('ViTamin-Tiny', None, max_windows_per_chunk=7)
    assert fixed.max_windows_per_chunk == 7
    fixed.max_windows_per_chunk = None  # back to the device policy
    assert fixed.max_windows_per_chunk == on_cpu


def test_shared_maps_are_cropped_per_window():
    """With a translation-equivariant shared function, shared mode equals per-window windows."""
    images = _images(2, 3, 100, 130)

    def pool(x):
        return {'p4': F.avg_pool2d(x, 4), 'p16': F.avg_pool2d(x, 16)}

    per_window = sliding_window_forward(images, pool, window=64, stride=32,
                                        max_windows_per_chunk=5)
    seen = []

    def window_fn(crops):
        seen.append({k: tuple(v.shape) for k, v in crops.items()})
        return {'p4': crops['p4'], 'p16': F.avg_pool2d(crops['p4'], 4)}

    shared = sliding_window_forward(images, window_fn, window=64, stride=32,
                                    max_windows_per_chunk=5,
                                    shared_fn=lambda x: {'p4': F.avg_pool2d(x, 4)})
    assert seen[0] == {'p4': (5, 3, 16, 16)}
    for name in per_window:
        torch.testing.assert_close(shared[name], per_window[name], atol=1e-6, rtol=1e-5)
    with pytest.raises(ConfigError, match="placement='aligned'"):
        sliding_window_forward(images, window_fn, window=64, stride=24, placement='published',
                               shared_fn=lambda x: {'p4': F.avg_pool2d(x, 4)})


def test_shared_convolutions_equal_per_window_ones_on_a_single_window(tiny):
    x = _images(1, 3, 64, 64)
    with torch.no_grad():
        per_window = tiny(x)
        try:
            tiny.shared_conv = True
            shared = tiny(x)
            overlapping = tiny(_images(1, 3, 100, 70), stride=16)
            embedding = tiny.encode_image(x)
        finally:
            tiny.shared_conv = False
        per_window_embedding = tiny.encode_image(x)
    for name in per_window:
        torch.testing.assert_close(shared[name], per_window[name], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(embedding, per_window_embedding, atol=1e-5, rtol=1e-5)
    assert overlapping['s4'].shape == (1, tiny.channels['s4'], 25, 18)
    assert ViTaminBackbone('ViTamin-Tiny', None, shared_conv=True).shared_conv
    with pytest.raises(ConfigError, match="window_placement='aligned'"):
        ViTaminBackbone('ViTamin-Tiny', None, shared_conv=True, window_placement='published')


def test_bf16_windows_are_stitched_in_float32(tiny):
    x = _images(1, 3, 100, 70)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        out = tiny(x, stride=32)
    assert all(v.dtype == torch.float32 for v in out.values())
    with torch.no_grad():
        ref = tiny(x, stride=32)
    for name in ('s16', 'clip'):
        err = (out[name] - ref[name]).abs().max() / ref[name].abs().max()
        assert err < 0.1, (name, float(err))


def test_published_placement_floors_offsets_onto_each_output_grid():
    """'published' (the released Sliding F-ViT): any stride; an output of stride s of the
    window at offset o is added at floor(o / s); 'aligned' keeps refusing such strides."""
    assert check_stride(168, 336, placement='published') == 168
    with pytest.raises(ConfigError, match='multiple of 16'):
        check_stride(168, 336)
    with pytest.raises(ConfigError, match='positive'):
        check_stride(0, 336, placement='published')
    with pytest.raises(ConfigError, match='larger than the window'):
        check_stride(400, 336, placement='published')
    with pytest.raises(ConfigError, match='window placement'):
        plan_windows(896, 896, 336, 160, placement='exact')
    assert plan_windows(896, 896, 336, 168, placement='published').ys == (0, 168, 336, 504, 560)

    # Pixel value = row index; window 32, stride 24 over 64 rows: windows at y = 0, 24, 32.
    rows = torch.arange(64, dtype=torch.float32).view(1, 1, 64, 1).expand(1, 1, 64, 32)

    def window_fn(x):
        return {'s4': F.avg_pool2d(x, 4), 's16': F.avg_pool2d(x, 16)}

    maps = sliding_window_forward(rows.contiguous(), window_fn, 32, 24, placement='published')
    s4, s16 = maps['s4'][0, 0, :, 0], maps['s16'][0, 0, :, 0]
    # stride 4: exact (24 / 4 = 6), so every cell is the mean of its own rows
    torch.testing.assert_close(s4, torch.arange(16, dtype=torch.float32) * 4 + 1.5)
    # stride 16: the window at 24 lands on token 1 (floor), half a token early: token 1 averages
    # window 0's rows 16..31 (23.5) and window 24's rows 24..39 (31.5); token 2 window 24's
    # rows 40..55 (47.5) and window 32's rows 32..47 (39.5)
    assert s16.tolist() == [7.5, (23.5 + 31.5) / 2, (47.5 + 39.5) / 2, 55.5]
    with pytest.raises(ConfigError, match='multiple of 16'):
        sliding_window_forward(rows.contiguous(), window_fn, 32, 24)
