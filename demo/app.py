"""Web demo: drop an image, type classes, see masks or boxes (a page on localhost).

    python demo/app.py [--model ViTamin-L-336] [--weights datacomp1b | --random-init]
        [--config CFG --checkpoint CKPT] [--det-checkpoint CKPT [--det-config CFG]]
        [--host 127.0.0.1] [--port 7860] [--device auto]

Serves one page (no asset from a CDN: it works offline) with an image upload
or the example photo, a vocabulary (the --vocab grammar), a task (semantic,
panoptic, instance, boxes) and a model (training-free, or the trained
checkpoints given here), and shows the overlay with its legend, the share of
each class or the boxes, and links to download the picture and a JSON record.
Models load once at start-up; image features and text embeddings are cached
across requests.
"""
from __future__ import annotations

import argparse
import logging
import os.path as osp
import sys
from typing import Optional, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from vitamin_dense.utils.cli import OneLineArgumentParser, quiet_third_party_logs, run_cli  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description=__doc__.split('\n\n')[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to bind (default: %(default)s, this machine only)')
    parser.add_argument('--port', type=int, default=7860, help='port (0: any free port)')
    parser.add_argument('--model', default='ViTamin-L-336', help='ViTamin variant (training-free)')
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument('--weights', default='datacomp1b',
                         help="pretrained tag, 'hf-hub:org/repo' or a local file")
    weights.add_argument('--random-init', action='store_true',
                         help='random weights (smoke test; also gives a random OWL detector '
                              'for boxes when no --det-checkpoint is given)')
    parser.add_argument('--stride', type=int, default=None, help='window stride, px')
    parser.add_argument('--config', help='trained FC-CLIP config (semantic, panoptic, instance)')
    parser.add_argument('--checkpoint', help='its checkpoint')
    parser.add_argument('--det-config', help='trained OWL detector config (boxes)')
    parser.add_argument('--det-checkpoint', help='its checkpoint')
    parser.add_argument('--det-input-size', type=int, default=None,
                        help="detector input size (default: the config's)")
    parser.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto')
    parser.add_argument('--max-side', type=int, default=2048,
                        help='longer image side segmented (larger images are shrunk)')
    parser.add_argument('--max-upload-mb', type=float, default=20.0, help='upload size limit')
    parser.add_argument('--verbose', action='store_true', help='log requests')
    parser.add_argument('--debug', action='store_true', help='tracebacks instead of one line')
    return parser.parse_args(argv)


def build_models(args: argparse.Namespace):
    """Every model the page offers, loaded once."""
    from vitamin_dense.apis import Detector, Segmenter
    from vitamin_dense.errors import ConfigError
    from vitamin_dense.webapp import DemoModels
    if bool(args.config) != bool(args.checkpoint):
        raise ConfigError('--config and --checkpoint go together (the trained FC-CLIP model)')
    if args.det_config and not args.det_checkpoint:
        raise ConfigError('--det-config needs --det-checkpoint')
    segmenter = Segmenter(args.model, weights=None if args.random_init else args.weights,
                          device=args.device, stride=args.stride, max_side=args.max_side or None)
    describe = {'training-free': segmenter.predictor.describe()}
    trained = None
    if args.checkpoint:
        from vitamin_dense.apis.fcclip_predictor import build_fcclip_predictor
        trained = build_fcclip_predictor(args.config, args.checkpoint,
                                         device=segmenter.device).model
    detector = None
    if args.det_checkpoint or args.random_init:
        kwargs = {} if args.det_input_size is None else {'input_size': args.det_input_size}
        detector = Detector(config=args.det_config, checkpoint=args.det_checkpoint,
                            model=None if args.det_checkpoint else args.model,
                            random_init=not args.det_checkpoint, device=segmenter.device,
                            max_detections=10 if not args.det_checkpoint else 100,
                            threshold=0.0 if not args.det_checkpoint else 0.1, **kwargs)
        describe['boxes'] = repr(detector)
    return DemoModels(segmenter, trained, detector, describe)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    quiet_third_party_logs()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    from vitamin_dense.webapp import make_server
    models = build_models(args)
    server = make_server(models, args.host, args.port, max_upload_mb=args.max_upload_mb)
    print(f'serving on {server.url} (Ctrl-C stops)', flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == '__main__':
    run_cli(main)
