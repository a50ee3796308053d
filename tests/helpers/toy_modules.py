"""A minimal model and data set registered in our scope, to exercise the runner."""
import uuid

import torch
from mmengine.model import BaseModel
from torch import nn

from vitamin_dense.registry import DATASETS, MODELS


@MODELS.register_module(force=True)
class ToyRegressor(BaseModel):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, list) else inputs
        y = self.lin(x)
        if mode == 'loss':
            return dict(loss=((y - x.sum(1, keepdim=True)) ** 2).mean())
        return y


@DATASETS.register_module(force=True)
class ToyPoints(torch.utils.data.Dataset):
    metainfo = dict(classes=('value',))

    def __len__(self):
        return 64

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(2, generator=g), data_samples=None)


def toy_config(work_dir: str, max_iters: int, interval: int = 2, resume: bool = False) -> dict:
    return dict(
        model=dict(type='ToyRegressor'), work_dir=work_dir,
        train_dataloader=dict(dataset=dict(type='ToyPoints'), batch_size=4, num_workers=0,
                              sampler=dict(type='InfiniteSampler', shuffle=True)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                           interval=interval),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0), resume=resume, experiment_name=f'toy_{uuid.uuid4().hex[:8]}',
        default_scope='vitamin_dense', runner_type='VitaminRunner')
