"""MMDetection 3.3's ``tools/train.py`` flow, for tests of checkpoints between runners."""
from typing import Optional, Union

from mmengine.config import Config


def mmdet_train(cfg: Union[Config, dict], resume: Optional[str] = None):
    """Train as mmdet's tools/train.py does: ``--resume`` (``'auto'``) or ``--resume PATH``,
    then the config's runner (MMEngine's stock ``Runner`` unless it names ``runner_type``)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    cfg = Config(cfg) if isinstance(cfg, dict) else cfg.copy()
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()
    return runner
