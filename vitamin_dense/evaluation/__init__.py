"""Open-vocabulary metric wrappers (seen / unseen splits) over pycocotools, lvis, panopticapi,
mmdet and mmseg metrics."""
