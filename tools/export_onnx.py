"""Export a model's image path to ONNX, with the class embeddings as a graph input.

    python tools/export_onnx.py training-free OUT_DIR --vocab "cat,dog" [--model ViTamin-L-336]
        [--weights datacomp1b | --random-init] [--stride PX] [--templates vild]
    python tools/export_onnx.py owl OUT_DIR --vocab "cat,dog" --checkpoint CKPT [--config CFG]
    python tools/export_onnx.py fcclip OUT_DIR --vocab "cat,dog" --config CFG --checkpoint CKPT
        --size H,W
    ... --vocab-only     # another vocabulary for an existing export: text only, no re-export

OUT_DIR receives window.onnx (the backbone on (N, 3, S, S) windows), head.onnx
(stitched maps + class embeddings -> the model's raw outputs; OWL: also the
grid's box bias and the image's valid tokens), the class embeddings of --vocab
computed ahead by the text tower (class_embeddings.npy, vocabulary.json) and
manifest.json (window, stride, pixel mean / std, input / output names; OWL:
box_anchor, context and frame_size, the square box frame each image is padded
to). Both graphs are checked against PyTorch with onnxruntime before the
command returns. Run them with vitamin_dense.export.OnnxImagePath (README:
"Deploy with ONNX"): the caller passes normalised images of any size (fcclip:
the --size exported) and the runtime pads OWL images to their frame itself.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from vitamin_dense.utils.cli import OneLineArgumentParser, run_cli  # noqa: E402

KINDS = ('training-free', 'owl', 'fcclip')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description=__doc__.split('\n\n')[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=__doc__.split('\n\n', 1)[1])
    sub = parser.add_subparsers(dest='kind', required=True, metavar='{' + ','.join(KINDS) + '}')
    for kind in KINDS:
        p = sub.add_parser(kind, help=f'export the {kind} model')
        p.add_argument('out', help='output directory')
        p.add_argument('--vocab', required=True,
                       help='classes whose embeddings are saved beside the graphs (the '
                            'demos\' --vocab grammar)')
        p.add_argument('--vocab-only', action='store_true',
                       help='only (re)write the vocabulary of an existing export')
        p.add_argument('--size', default=None, metavar='H,W',
                       help='example input size traced (fcclip: the only size its head graph '
                            'takes; default: 1.5 x 1.25 windows)')
        p.add_argument('--opset', type=int, default=17, help='ONNX opset (default: %(default)s)')
        if kind == 'training-free':
            p.add_argument('--model', default='ViTamin-L-336', help='ViTamin variant')
            w = p.add_mutually_exclusive_group()
            w.add_argument('--weights', default='datacomp1b',
                           help="pretrained tag, 'hf-hub:org/repo' or a local file")
            w.add_argument('--random-init', action='store_true', help='random weights (tests)')
            p.add_argument('--stride', type=int, default=None, help='window stride, px')
            p.add_argument('--templates', default='vild', help='prompt templates')
        else:
            p.add_argument('--config', default=None, help='the model config')
            p.add_argument('--checkpoint', default=None, help='its trained weights')
            p.add_argument('--random-init', action='store_true',
                           help='random weights (tests; owl: with --model, fcclip: with --config)')
            if kind == 'owl':
                p.add_argument('--model', default=None, help='ViTamin variant for --random-init')
    return parser.parse_args(argv)


def parse_size(text: Optional[str]):
    from vitamin_dense.errors import ConfigError
    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.replace('x', ',').split(','))
    except ValueError:
        raise ConfigError(f"--size '{text}' is not H,W in pixels, e.g. --size 1344,1344") \
            from None
    if h < 16 or w < 16:
        raise ConfigError(f'--size {h},{w} is too small (at least 16 px a side)')
    return h, w


def build_model(args: argparse.Namespace):
    """The PyTorch model to export, and manifest entries saying where it came from."""
    from vitamin_dense.errors import ConfigError
    info = dict(source=dict(kind=args.kind))
    if args.kind == 'training-free':
        from vitamin_dense.models.training_free import TrainingFreeSegmentor
        weights = None if args.random_init else args.weights
        model = TrainingFreeSegmentor(args.model, weights, templates=args.templates,
                                      stride=args.stride)
        info['source'].update(model=args.model, weights=weights or 'random init')
        return model.eval(), info
    if args.kind == 'owl':
        from vitamin_dense.apis.detector import build_detector
        if not (args.checkpoint or args.random_init):
            raise ConfigError('owl export needs --checkpoint CKPT (or --random-init --model NAME)')
        model, input_size = build_detector(args.config, args.checkpoint, args.model,
                                           random_init=args.random_init)
        info['source'].update(config=args.config, checkpoint=args.checkpoint,
                              input_size=input_size)
        return model, info
    if not args.config:
        raise ConfigError('fcclip export needs --config (and --checkpoint, or --random-init)')
    if args.checkpoint:
        from vitamin_dense.apis.fcclip_predictor import build_fcclip_predictor
        model = build_fcclip_predictor(args.config, args.checkpoint).model
    elif args.random_init:
        from vitamin_dense.engine.config import load_config
        from vitamin_dense.registry import build_model, register_all_modules
        register_all_modules(init_default_scope=False)
        cfg = load_config(args.config)
        cfg.model.backbone.weights = None
        cfg.model.setdefault('text_encoder', {})['weights'] = None
        model = build_model(cfg.model)
    else:
        raise ConfigError('fcclip export needs --checkpoint CKPT (or --random-init)')
    info['source'].update(config=args.config, checkpoint=args.checkpoint)
    return model.eval(), info


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from vitamin_dense.text import parse_vocabulary
    from vitamin_dense.utils.cli import quiet_third_party_logs
    quiet_third_party_logs()
    vocab = parse_vocabulary(args.vocab)  # vocabulary errors before any model loads
    size = parse_size(args.size)
    model, info = build_model(args)
    from vitamin_dense.export import export_onnx, image_path, write_vocabulary
    if args.vocab_only:
        from vitamin_dense.errors import ConfigError
        if not osp.isfile(osp.join(args.out, 'manifest.json')):
            raise ConfigError(f'{args.out} holds no export (manifest.json): export first, '
                              'without --vocab-only')
        path = image_path(model)
        record = write_vocabulary(args.out, path.text(vocab), vocab)
        print(f'{args.out}: vocabulary of {record["classes"]} classes written')
        return 0
    manifest = export_onnx(model, args.out, vocab, example_size=size, opset=args.opset,
                           info=info)
    diffs = ', '.join(f'{k} {v:.2e}' for k, v in manifest['verified_max_abs_diff'].items())
    fixed = manifest.get('fixed_size')
    frame = manifest.get('frame_size')
    print(f'{args.out}: window.onnx + head.onnx ({manifest["kind"]}, {manifest["model_name"]}, '
          f'window {manifest["window"]}, stride {manifest["stride"]}'
          f'{f", inputs {fixed[0]}x{fixed[1]} only" if fixed else ""}'
          f'{f", {frame} px box frame" if frame else ""}), '
          f'{len(vocab)} classes; onnxruntime vs PyTorch max |diff|: {diffs}')
    return 0


if __name__ == '__main__':
    run_cli(main)
