# Training-free open-vocabulary semantic segmentation (the baseline every trained head
# must beat): ViTamin-L-336's dense CLIP map against the ADE20K-150 class names.
#   python tools/test.py configs/ov_seg/training-free_vitamin-l336_ade20k-150.py none
# Offline: --cfg-options model.weights=/path/to/open_clip_model.safetensors
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/ade20k_150.py']

model = dict(
    type='TrainingFreeSegmentor',
    model_name='ViTamin-L-336',
    weights='datacomp1b',
    vocabulary='dataset:ade150',   # ADE-150 names with synonyms, in the data set's order
    templates='vild',
    stride=112,                    # a third of the 336 px window, as FC-CLIP's test stride
    threshold=None,
    ignore_index=255,
    memory_budget_mb=4096,
    data_preprocessor=dict(
        type='mmseg.SegDataPreProcessor',
        mean=[122.7709383, 116.7460125, 104.09373615],   # OpenAI CLIP, 0-255 RGB
        std=[68.5005327, 66.6321579, 70.32316305],
        bgr_to_rgb=True, pad_val=0, seg_pad_val=255))

# Its own, cheaper input (not the FC-CLIP recipe's 1344 px of the base data set
# config): the shorter side at 640 px, as mmseg's ADE20K configs.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmseg.Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='mmseg.PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
