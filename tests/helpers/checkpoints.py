"""Runner-style checkpoints of the tiny configs' models (random weights), for API and CLI tests."""
from typing import Optional

import torch

SYNTHETIC_THINGS = ['circle', 'square', 'triangle', 'star', 'ring', 'cross']


def tiny_checkpoint(config: str, path, with_config: bool = True,
                    config_options: Optional[dict] = None) -> str:
    """Build ``config``'s model and save every weight to ``path`` (and, as MMEngine's runner
    does, the config text in ``meta['cfg']``, with ``config_options`` merged in)."""
    import vitamin_dense  # noqa: F401  (registers the models)
    from vitamin_dense.engine.config import load_config
    from vitamin_dense.registry import build_model
    cfg = load_config(config)
    # in our scope whatever scope earlier tests left (an mmdet-scope model's _scope_ still
    # builds it in mmdet's registry)
    model = build_model(cfg.model)
    if type(model).__name__ == 'FCCLIPSegmentor':
        model.set_vocabulary('dataset:synthetic', 'train', thing_classes=SYNTHETIC_THINGS)
    elif type(model).__name__ == 'SlidingFViT':
        model.set_vocabulary('dataset:synthetic_seen')
    meta = {'iter': 1}
    if with_config:
        meta['cfg'] = load_config(config, config_options).pretty_text
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, path)
    return str(path)
