# The fine-tuning template fcclip_vitamin_l_panoptic.py at toy scale (CPU, minutes,
# offline): the random-init ViTamin-Tiny and a narrow head (as
# configs/ov_seg/vitamin_tiny_synthetic.py) on 128 px images, and, as the held-out
# vocabulary, your own validation images scored on classes kept out of training (void
# there). tests/test_finetune.py runs it on a COCO-panoptic set of synthetic shapes written
# to data/my_dataset/ (python tools/make_synthetic.py data/my_dataset makes one):
#
#   python tools/train.py configs/custom/fcclip_vitamin_tiny_panoptic.py
#   python tools/test.py configs/custom/fcclip_vitamin_tiny_panoptic.py \
#       work_dirs/fcclip_vitamin_tiny_panoptic/best_hmean_iter_N.pth
#
# With random CLIP towers the held-out PQ shows the mechanics, not zero-shot transfer.
_base_ = './fcclip_vitamin_l_panoptic.py'

train_exclude_classes = ('star', 'sand')    # held out of training ...
heldout_classes = train_exclude_classes     # ... and scored on the validation images
image_size = 128

model = dict(
    backbone=dict(model_name='ViTamin-Tiny', weights=None, train_stride=64, test_stride=32,
                  memory_budget_mb=512),
    text_encoder=dict(disk_cache=False),
    global_pos_embed=None,  # the learned maps are sized for the 1344 px input
    data_preprocessor=dict(pad_to_size=None, unpad='img_shape'),
    head=dict(hidden_dim=64, num_queries=16, num_decoder_layers=3, num_heads=4,
              pixel_decoder=dict(num_layers=2, ffn_channels=128, num_groups=8),
              transformer_decoder=dict(ffn_channels=256)),
    criterion=dict(num_points=1024),
    ensemble=dict(use_out_vocab=False),  # a random CLIP has nothing to ensemble with
    center_text_embeddings=True,         # random text embeddings are nearly parallel
    test_cfg=dict(object_mask_thr=0.0, max_per_image=20))

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='mmdet.LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.RandomResize', scale=(image_size, image_size), ratio_range=(0.5, 2.0),
         resize_type='mmdet.Resize', keep_ratio=True),
    dict(type='mmdet.RandomCrop', crop_size=(image_size, image_size), crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='mmdet.PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='mmdet.LoadPanopticAnnotations'),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'seg_map_path', 'segments_info', 'ori_shape',
                    'img_shape', 'scale_factor')),
]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(exclude_classes=train_exclude_classes,
                                     pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(exclude_classes=train_exclude_classes, pipeline=test_pipeline))
test_dataloader = val_dataloader

heldout = [dict(
    prefix='heldout',
    dataset=dict(type='CocoFormatPanopticDataset', data_root=_base_.data_root,
                 ann_file=_base_.val_ann_file,
                 data_prefix=dict(img=_base_.val_img_dir, seg=_base_.val_seg_dir),
                 metainfo=dict(classes=heldout_classes)))]
val_cfg = dict(extra_datasets=heldout)
test_cfg = dict(extra_datasets=heldout)

max_iters = 2000
val_interval = 1000
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=1.0, norm_type=2),
    constructor='ViTaminLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.9, custom_keys={
        'query_feat': dict(decay_mult=0.0), 'query_embed': dict(decay_mult=0.0),
        'level_embed': dict(decay_mult=0.0), 'void_embedding': dict(decay_mult=0.0)}))
param_scheduler = dict(_delete_=True, type='PolyLR', power=0.9, eta_min=1e-5, by_epoch=False,
                       begin=0, end=max_iters)
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(logger=dict(type='LoggerHook', interval=100),
                     checkpoint=dict(interval=val_interval))
log_processor = dict(window_size=50)
randomness = dict(seed=0)
