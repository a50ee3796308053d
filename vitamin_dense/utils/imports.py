"""Optional-dependency checks (the OpenMMLab training stack is an extra)."""
from __future__ import annotations

import importlib.util
from functools import lru_cache


@lru_cache(maxsize=None)
def openmmlab_available() -> bool:
    """True when mmcv (with ops), mmdet and mmseg are installed and import."""
    if not all(importlib.util.find_spec(p) for p in ('mmcv', 'mmdet', 'mmseg')):
        return False
    try:
        import mmdet  # noqa: F401  (checks the mmcv version)
        import mmseg  # noqa: F401
        from mmcv.ops import nms  # noqa: F401  (mmcv-lite has no ops)
    except Exception:
        return False
    return True
