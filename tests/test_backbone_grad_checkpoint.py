"""Gradient checkpointing of the fine-tuned sliding-window backbone: it is active in every
mode (also with block outputs), gradients equal the un-checkpointed ones, and chunks with
gradients are sized by the cost of a window's whole forward graph."""
import pytest
import torch

from vitamin_dense.backbones import LEVELS, ViTaminBackbone
from vitamin_dense.backbones.grad_checkpoint import MODES, resolve_mode, window_graph_bytes
from vitamin_dense.backbones.sliding_window import chunk_size_for_budget
from vitamin_dense.errors import ConfigError

NAME = 'ViTamin-Tiny'

# Tiny tensors: threads only add contention (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures('one_thread')


def _backbone(mode, **kwargs):
    torch.manual_seed(0)
    return ViTaminBackbone(NAME, None, frozen=False, out_levels=LEVELS, with_clip_map=True,
                           out_block_indices=(0,), max_windows_per_chunk=2,
                           grad_checkpointing=mode, **kwargs).train()


def _loss(out):
    return sum((v.float() * torch.linspace(-1, 1, v.numel()).view_as(v)).sum()
               for v in out.values())


def _step(backbone, image):
    """Loss, gradients, and the bytes autograd saved outside checkpointed regions."""
    saved = {}

    def pack(t):
        saved[id(t)] = t.numel() * t.element_size()
        return t
    backbone.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = backbone(image)
    loss = _loss(out)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in backbone.named_parameters() if p.grad is not None}
    return loss.detach(), grads, sum(saved.values())


@pytest.fixture(scope='module')
def image():
    # 2 x 3 windows of 64 px, run in chunks of 2 windows
    return torch.randn(1, 3, 128, 192, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope='module')
def reference(image):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the tests (one_thread): same reduction order
    try:
        return _step(_backbone(False), image)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize('mode', MODES)
def test_checkpointed_gradients_equal_the_plain_ones(image, reference, mode):
    ref_loss, ref_grads, ref_saved = reference
    loss, grads, saved = _step(_backbone(mode), image)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    assert grads.keys() == ref_grads.keys() and len(grads) > 20
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-5, msg=name)
    # Checkpointing is active (block outputs requested and all): what autograd keeps
    # outside the recomputed regions is a small part of the whole graph.
    assert saved < 0.25 * ref_saved, (mode, saved, ref_saved)


def test_every_unit_is_checkpointed_in_block_mode(image, monkeypatch):
    from vitamin_dense.backbones import grad_checkpoint
    calls = []
    real = grad_checkpoint.checkpoint

    def counting(fn, *args, **kwargs):
        calls.append(fn)
        return real(fn, *args, **kwargs)
    monkeypatch.setattr(grad_checkpoint, 'checkpoint', counting)
    backbone = _backbone('block')
    conv = backbone.trunk.patch_embed.backbone
    units = [conv.stem, *conv.stages[0], *conv.stages[1], *backbone.trunk.blocks]
    backbone(image[..., :64, :64])
    assert calls == units
    calls.clear()
    with torch.no_grad():  # nothing to recompute without gradients
        backbone(image[..., :64, :64])
    backbone.eval()
    for p in backbone.parameters():
        p.requires_grad = False
    backbone(image[..., :64, :64])  # frozen: no gradients flow, no checkpointing
    assert calls == []


def test_modes_and_true():
    assert resolve_mode(True) == 'chunk' and resolve_mode(False) is None
    assert resolve_mode('block') == 'block'
    with pytest.raises(ConfigError, match='grad_checkpointing'):
        resolve_mode('sometimes')


def test_chunks_with_gradients_are_sized_by_the_window_graph():
    backbone = ViTaminBackbone(NAME, None, frozen=False, grad_checkpointing=True,
                               memory_budget_mb=8).train()
    graph = window_graph_bytes(backbone)
    assert backbone.grad_windows_per_chunk() == chunk_size_for_budget(graph, 8)
    assert backbone.grad_windows_per_chunk() < backbone.max_windows_per_chunk
    # The meta-device count is what a real forward keeps per window (CPU, 2 windows - 1).
    real = []
    for n in (1, 2):
        storages = {}

        def pack(t):
            if t.grad_fn is not None or not t.requires_grad:
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            backbone.forward_window(torch.randn(n, 3, 64, 64))
        real.append(sum(storages.values()))
    assert 0.8 < graph / (real[1] - real[0]) < 1.5
    fixed = ViTaminBackbone(NAME, None, frozen=False, grad_checkpointing=True,
                            max_windows_per_chunk=3)
    assert fixed.grad_windows_per_chunk() == 3  # an explicit chunk size is kept
