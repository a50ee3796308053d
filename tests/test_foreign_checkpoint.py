"""Foreign (detectron2 / MMDetection 2.x) checkpoints are read without full unpickling."""
import collections
import os
import pickle

import numpy as np
import pytest
import torch

from vitamin_dense.engine.foreign_checkpoint import foreign_state_dict, read_foreign_checkpoint
from vitamin_dense.errors import WeightsError


class _Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null',))


def test_torch_zip_checkpoint(tmp_path):
    path = tmp_path / 'model_final.pth'
    torch.save({'model': collections.OrderedDict(w=torch.ones(2, 3)), 'iteration': 5}, path)
    weights = foreign_state_dict(read_foreign_checkpoint(str(path)))
    assert list(weights) == ['w'] and weights['w'].shape == (2, 3)


def test_mmdet2_layout(tmp_path):
    path = tmp_path / 'epoch_3.pth'
    torch.save({'meta': {'epoch': 3, 'CLASSES': ('a', 'b')},
                'state_dict': {'backbone.w': torch.zeros(4)}}, path)
    assert list(foreign_state_dict(read_foreign_checkpoint(str(path)))) == ['backbone.w']


def test_detectron2_pkl_of_numpy_arrays(tmp_path):
    path = tmp_path / 'model.pkl'
    with open(path, 'wb') as f:
        pickle.dump({'model': {'w': np.arange(6, dtype=np.float32).reshape(2, 3)},
                     '__author__': 'x'}, f, protocol=2)
    weights = foreign_state_dict(read_foreign_checkpoint(str(path)))
    assert torch.equal(weights['w'], torch.arange(6.).reshape(2, 3))


@pytest.mark.parametrize('zipped', [True, False])
def test_code_in_pickle_is_refused(tmp_path, zipped):
    path = tmp_path / 'evil.pth'
    if zipped:
        torch.save({'model': {'w': torch.ones(1)}, 'x': _Evil()}, path)
    else:
        with open(path, 'wb') as f:
            pickle.dump({'model': {}, 'x': _Evil()}, f, protocol=2)
    with pytest.raises(WeightsError, match='not unpickled'):
        read_foreign_checkpoint(str(path))


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / 'notes.txt'
    path.write_text('hello')
    with pytest.raises(WeightsError, match='neither a torch checkpoint nor a pickle'):
        read_foreign_checkpoint(str(path))
    with pytest.raises(WeightsError, match='not found'):
        read_foreign_checkpoint(str(tmp_path / 'missing.pth'))
