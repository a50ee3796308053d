# Runtime shared by every vitamin-dense config (MMEngine conventions).
default_scope = 'vitamin_dense'
runner_type = 'VitaminRunner'
custom_imports = dict(imports=['vitamin_dense'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Pictures of predictions (MMDetection's DetVisualizationHook conventions, any task):
    # `tools/test.py CONFIG CKPT --show-dir vis [--score-thr S]` writes them to
    # work_dir/<timestamp>/vis/.
    visualization=dict(type='DenseVisualizationHook', draw=False, interval=50),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
