"""VitaminRunner: atomic checkpoints, weights-only loading, resume after a kill."""
import os
import pickle

import pytest
import torch
from mmengine.config import Config

from tests.helpers.mmdet_flow import mmdet_train
from tests.helpers.toy_modules import toy_config
from vitamin_dense.engine import find_resume_checkpoint, load_runner_checkpoint
from vitamin_dense.engine.config import build_runner
from vitamin_dense.errors import WeightsError


def _train(work_dir, max_iters, resume=False):
    runner = build_runner(Config(toy_config(str(work_dir), max_iters, resume=resume)))
    runner.train()
    return runner


def test_checkpoints_load_with_plain_weights_only(tmp_path):
    _train(tmp_path, 4)
    ckpt = tmp_path / 'iter_4.pth'
    raw = torch.load(ckpt, map_location='cpu', weights_only=True)  # no allow-list needed
    assert raw['meta']['iter'] == 4 and 'lin.weight' in raw['state_dict']
    loaded = load_runner_checkpoint(str(ckpt))
    from mmengine.logging import HistoryBuffer
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.partial')]


def test_resume_continues_the_same_run(tmp_path):
    straight = _train(tmp_path / 'a', 6)
    _train(tmp_path / 'b', 4)
    resumed = _train(tmp_path / 'b', 6, resume=True)
    assert resumed.iter == 6
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value)


def test_resume_survives_a_stale_pointer_and_partial_file(tmp_path):
    _train(tmp_path, 4)
    (tmp_path / 'last_checkpoint').write_text('')            # killed while writing the pointer
    (tmp_path / '.iter_6.pth.123.partial').write_bytes(b'x')  # killed while writing a checkpoint
    assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_4.pth')
    runner = _train(tmp_path, 6, resume=True)
    assert runner.iter == 6


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    runner = _train(tmp_path, 2)
    good = (tmp_path / 'iter_2.pth').read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError('disk full')
    monkeypatch.setattr('mmengine.runner.checkpoint.torch.save', broken_save)
    with pytest.raises(OSError):
        runner.save_checkpoint(str(tmp_path), 'iter_2.pth')
    assert (tmp_path / 'iter_2.pth').read_bytes() == good
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.partial')]


def test_pickled_objects_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ('echo pwned',))
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump({'state_dict': {}, 'x': Evil()}, f)
    with pytest.raises(WeightsError, match='pickled Python objects'):
        load_runner_checkpoint(str(path))
    truncated = tmp_path / 'trunc.pth'
    torch.save({'state_dict': {'w': torch.ones(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(WeightsError, match='cannot read checkpoint'):
        load_runner_checkpoint(str(truncated))
    with pytest.raises(WeightsError, match='not found'):
        load_runner_checkpoint(str(tmp_path / 'missing.pth'))


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_runner_builds_whatever_scope_was_current(tmp_path, scope):
    """A stock-scope config, or an earlier mmdet inferencer, must not hide our runner."""
    from mmengine.registry import init_default_scope
    init_default_scope(scope)
    cfg = toy_config(str(tmp_path), 2)
    cfg.update(default_scope=scope, model=dict(type='vitamin_dense.ToyRegressor'))
    cfg['train_dataloader']['dataset'] = dict(type='vitamin_dense.ToyPoints')
    runner = build_runner(Config(cfg))
    assert type(runner).__name__ == 'VitaminRunner'
    runner.train()
    assert (tmp_path / 'iter_2.pth').is_file()


@pytest.mark.parametrize('content,kind', [
    (b'# my notes\nnot weights\n', "a text file starting with '# my notes'"),
    (b'\x89PNG\r\n\x1a\n' + bytes(20), 'a PNG image'),
    (b'', 'empty'),
])
def test_a_file_that_is_no_checkpoint_is_named_for_what_it_is(tmp_path, content, kind):
    """A text file given as a checkpoint is a text file, not 'pickled Python objects'."""
    path = tmp_path / 'notes.pth'
    path.write_bytes(content)
    with pytest.raises(WeightsError) as info:
        load_runner_checkpoint(str(path))
    assert 'not a PyTorch checkpoint' in str(info.value) and kind in str(info.value)
    assert 'pickled' not in str(info.value)


# ------------------------------------------------- checkpoints of other runners
def _stock_cfg(work_dir, max_iters):
    cfg = toy_config(str(work_dir), max_iters)
    del cfg['runner_type']  # MMEngine's own Runner, as a stock config gets
    return cfg


def _same_weights(a, b):
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[key], value)


def test_stock_runner_checkpoint_resumes_in_ours(tmp_path, caplog):
    straight = _train(tmp_path / 'a', 6)
    stock = mmdet_train(_stock_cfg(tmp_path / 'b', 4))
    assert type(stock).__name__ == 'Runner'
    with pytest.raises(pickle.UnpicklingError):  # what the stock file needs beyond tensors
        torch.load(tmp_path / 'b' / 'iter_4.pth', weights_only=True)
    with caplog.at_level('WARNING', logger='vitamin_dense.engine.checkpoint'):
        resumed = _train(tmp_path / 'b', 6, resume=True)
    assert 'full unpickling' not in caplog.text  # the safe path reads it
    assert resumed.iter == 6
    _same_weights(straight, resumed)
    # The stock run's log history came back as a HistoryBuffer.
    history = resumed.message_hub.get_scalar('train/loss').data[0]
    assert len(history) == 6


def test_our_checkpoint_resumes_in_a_stock_runner(tmp_path):
    straight = _train(tmp_path / 'a', 6)
    _train(tmp_path / 'b', 4)
    resumed = mmdet_train(_stock_cfg(tmp_path / 'b', 6), resume='auto')
    assert type(resumed).__name__ == 'Runner' and resumed.iter == 6
    _same_weights(straight, resumed)


def test_stock_checkpoint_loads_through_load_from(tmp_path):
    stock = mmdet_train(_stock_cfg(tmp_path / 'stock', 2))
    cfg = toy_config(str(tmp_path / 'ours'), 1)
    cfg['load_from'] = str(tmp_path / 'stock' / 'iter_2.pth')  # outside our work_dir
    runner = build_runner(Config(cfg))
    runner.load_or_resume()  # outside the work_dir: never fully unpickled
    _same_weights(stock, runner)


def _with_extra_object(src, dst):
    """A runner checkpoint that also holds an object MMEngine never writes."""
    import fractions
    checkpoint = load_runner_checkpoint(str(src))
    checkpoint['meta']['custom'] = fractions.Fraction(1, 3)
    torch.save(checkpoint, dst)


def test_full_unpickling_only_inside_the_runs_work_dir(tmp_path, caplog):
    _train(tmp_path / 'run', 2)
    outside = tmp_path / 'downloads' / 'model.pth'
    outside.parent.mkdir()
    _with_extra_object(tmp_path / 'run' / 'iter_2.pth', outside)
    cfg = toy_config(str(tmp_path / 'other'), 4)
    cfg['load_from'] = str(outside)
    with pytest.raises(WeightsError, match='fractions.Fraction') as info:
        build_runner(Config(cfg)).load_or_resume()
    assert '\n' not in str(info.value) and "outside the run's work_dir" in str(info.value)
    # The same file written into the run's own work_dir is resumed (with a warning).
    _with_extra_object(tmp_path / 'run' / 'iter_2.pth', tmp_path / 'run' / 'iter_2.pth')
    with caplog.at_level('WARNING', logger='vitamin_dense.engine.checkpoint'):
        runner = _train(tmp_path / 'run', 4, resume=True)
    assert runner.iter == 4 and 'full unpickling' in caplog.text


class _GetattrOf:
    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return (getattr, (HistoryBuffer, self.name))


def test_only_the_history_statistics_pass_getattr(tmp_path):
    allowed, refused = tmp_path / 'mean.pth', tmp_path / 'update.pth'
    torch.save({'state_dict': {}, 'x': _GetattrOf('mean')}, allowed)
    torch.save({'state_dict': {}, 'x': _GetattrOf('update')}, refused)
    from mmengine.logging import HistoryBuffer
    assert load_runner_checkpoint(str(allowed))['x'] is HistoryBuffer.mean
    with pytest.raises(WeightsError, match="getattr\\(HistoryBuffer, 'update'\\)"):
        load_runner_checkpoint(str(refused))
