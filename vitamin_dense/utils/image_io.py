"""Read images of any common kind into RGB ``uint8`` arrays, with one-line errors.

:func:`read_image` accepts a path, a numpy array or a PIL image and always
returns a C-contiguous ``(H, W, 3)`` ``uint8`` RGB array:

* Files are decoded with OpenCV (``IMREAD_UNCHANGED``: every bit depth and
  channel count survives decoding); formats OpenCV cannot read fall back to
  Pillow (GIF, some TIFF flavours ...).
* EXIF orientation is applied (JPEG, PNG, TIFF, WebP), so portrait phone photos
  come out upright.
* Grayscale is replicated to three channels; palette PNGs are expanded.
* An alpha channel is composited over ``background`` (white by default, what
  image viewers and browsers show) instead of being dropped: dropping it
  reveals whatever colour happens to sit under transparent pixels.
* 16-bit (and 32-bit integer) images are scaled linearly from their full range
  to 8 bit (``65535 -> 255``); float images are read as ``[0, 1]`` when their
  maximum is at most 1, else as ``[0, 255]``, and clipped.
* Numpy arrays are taken as RGB(A) unless ``channel_order='bgr'`` (what
  ``cv2.imread`` returns).

Every failure raises :class:`~vitamin_dense.errors.ImageReadError` with a
single line naming the file and what is wrong (missing, a directory, empty,
not an image, truncated / corrupt, too large for the decoder). The native
decoders' own stderr chatter (``libpng error: ...``) is captured and folded
into that line instead of being printed.

Size policy: reading never downsizes (results must map back to the original
pixels); the inference API bounds the resolution it *processes* instead (see
``Segmenter(max_side=...)``). :func:`resize_to_max_side` is the shared helper.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import threading
import warnings
from typing import Any, Iterator, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..errors import ImageReadError

logger = logging.getLogger(__name__)

ImageLike = Union[str, os.PathLike, np.ndarray, Any]  # Any: PIL.Image.Image

DEFAULT_BACKGROUND: Tuple[int, int, int] = (255, 255, 255)
IMAGE_EXTENSIONS: Tuple[str, ...] = ('.jpg', '.jpeg', '.jpe', '.png', '.tif', '.tiff', '.bmp',
                                     '.dib', '.webp', '.gif', '.ppm', '.pgm', '.pbm', '.pnm',
                                     '.jp2', '.exr', '.hdr', '.pic', '.sr', '.ras')

# File signatures, to tell "not an image" from "a damaged image".
_SIGNATURES: Tuple[Tuple[bytes, str], ...] = (
    (b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG\r\n\x1a\n', 'PNG'), (b'II*\x00', 'TIFF'),
    (b'MM\x00*', 'TIFF'), (b'BM', 'BMP'), (b'GIF87a', 'GIF'), (b'GIF89a', 'GIF'),
    (b'\x00\x00\x00\x0cjP  ', 'JPEG 2000'), (b'v/1\x01', 'OpenEXR'),
)
# EXIF orientation -> (transpose first?, flip code for cv2.flip or None)
_ORIENTATION_OPS = {
    2: (False, 1), 3: (False, -1), 4: (False, 0), 5: (True, None),
    6: (True, 1), 7: (True, -1), 8: (True, 0),
}
_STDERR_LOCK = threading.Lock()


def is_image_file(path: Union[str, os.PathLike]) -> bool:
    """True if the name has an image extension (used to list directories)."""
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def list_images(directory: Union[str, os.PathLike], recursive: bool = False) -> list:
    """Image files of a directory (by extension), sorted by path."""
    directory = str(directory)
    found = []
    if recursive:
        for root, _, files in os.walk(directory):
            found += [os.path.join(root, f) for f in files if is_image_file(f)]
    else:
        found = [os.path.join(directory, f) for f in os.listdir(directory)
                 if is_image_file(f) and os.path.isfile(os.path.join(directory, f))]
    return sorted(found)


def read_image(source: ImageLike, *, background: Sequence[int] = DEFAULT_BACKGROUND,
               channel_order: str = 'rgb', exif_orientation: bool = True) -> np.ndarray:
    """Read ``source`` (path, numpy array or PIL image) as an RGB ``uint8`` ``(H, W, 3)`` array.

    Args:
        source: a file path, an ``(H, W)`` / ``(H, W, 1|3|4)`` array, or a PIL image.
        background: RGB colour that transparent pixels are composited over.
        channel_order: ``'rgb'`` or ``'bgr'``: the order of a numpy array's
            colour channels (ignored for files and PIL images).
        exif_orientation: rotate / flip files and PIL images as their EXIF
            orientation tag says.

    Raises:
        ImageReadError: with a one-line message (missing, empty, not an image ...).
    """
    if channel_order not in ('rgb', 'bgr'):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    background = _check_background(background)
    if isinstance(source, (str, os.PathLike)):
        return _read_file(os.fspath(source), background, exif_orientation)
    if isinstance(source, np.ndarray):
        array = source
        if channel_order == 'bgr':
            array = _bgr_to_rgb(array)
        return to_rgb_uint8(array, background, what='the image array')
    if _is_pil_image(source):
        return _from_pil(source, background, exif_orientation, what='the PIL image')
    raise ImageReadError(f'cannot read an image from a {type(source).__name__}: pass a file '
                         'path, a numpy array (H, W[, C]) or a PIL image')


def describe_source(source: ImageLike) -> str:
    """A short name of an image source for logs and results."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, np.ndarray):
        return f'array{tuple(source.shape)}'
    return type(source).__name__


# ---------------------------------------------------------------------- files
def _read_file(path: str, background: Tuple[int, int, int], exif: bool) -> np.ndarray:
    if not os.path.exists(path):
        raise ImageReadError(f'image not found: {path}')
    if os.path.isdir(path):
        raise ImageReadError(f'{path} is a directory, not an image file')
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as exc:
        raise ImageReadError(f'cannot read image {path}: {exc.strerror or exc}') from exc
    if not data:
        raise ImageReadError(f'image file {path} is empty (0 bytes)')
    buffer = np.frombuffer(data, dtype=np.uint8)
    with _captured_native_stderr() as captured:
        try:
            decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
            cv_error = None
        except cv2.error as exc:
            decoded, cv_error = None, exc
    if decoded is None:
        return _read_with_pil_or_fail(path, data, background, exif, captured.text, cv_error)
    array = to_rgb_uint8(_bgr_to_rgb_inplace(decoded), background, what=path)
    if captured.text:
        logger.debug('decoder messages for %s: %s', path, captured.text)
    if exif:
        array = apply_exif_orientation(array, _exif_orientation(data))
    return array


def _bgr_to_rgb(array: np.ndarray) -> np.ndarray:
    """Swap the colour channels of BGR / BGRA arrays (others pass through)."""
    if array.ndim == 3 and array.shape[2] == 3:
        return array[..., ::-1]
    if array.ndim == 3 and array.shape[2] == 4:
        return array[..., [2, 1, 0, 3]]
    return array


def _bgr_to_rgb_inplace(array: np.ndarray) -> np.ndarray:
    """Swap colour channels of a freshly decoded array in place (no second full-size copy)."""
    if array.ndim == 3 and array.shape[2] in (3, 4) and array.flags.c_contiguous:
        code = cv2.COLOR_BGR2RGB if array.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        try:
            return cv2.cvtColor(array, code, dst=array)
        except cv2.error:  # a depth cvtColor does not take (e.g. int32): copy instead
            pass
    return _bgr_to_rgb(array)


def _read_with_pil_or_fail(path: str, data: bytes, background, exif: bool, native: str,
                           cv_error: Optional[BaseException]) -> np.ndarray:
    kind = _sniff_format(data)
    try:
        from PIL import Image
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return _from_pil(image, background, exif, what=path)
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - every decoder failure ends in one message
        pil_reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    reason = _first_line(native) or pil_reason
    if cv_error is not None and 'pixels' in str(cv_error).lower():
        raise ImageReadError(f'image {path} is too large to decode (over OpenCV\'s pixel limit; '
                             'set OPENCV_IO_MAX_IMAGE_PIXELS to raise it)') from cv_error
    if kind is None and 'cannot identify' in pil_reason:
        raise ImageReadError(f'{path} is not an image (or not in a format OpenCV / Pillow '
                             'can read: JPEG, PNG, TIFF, BMP, WebP, GIF ...)')
    what = f'{kind} ' if kind else ''
    raise ImageReadError(f'cannot decode {what}image {path}: the file is truncated or corrupt '
                         f'({reason})')


def _sniff_format(data: bytes) -> Optional[str]:
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:4] == b'RIFF' and data[8:12] == b'WEBP':
        return 'WebP'
    return None


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:160]
    return ''


def _exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag (1 = upright) from the file's header, read lazily."""
    try:
        from PIL import Image
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with Image.open(io.BytesIO(data)) as image:  # parses headers only
                return int(image.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - no readable EXIF means upright
        return 1


def apply_exif_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate / flip an array decoded as stored so that it shows upright."""
    op = _ORIENTATION_OPS.get(int(orientation))
    if op is None:
        return array
    transpose, flip = op
    if transpose:
        array = cv2.transpose(array)
    if flip is not None:
        array = cv2.flip(array, flip)
    return np.ascontiguousarray(array)


class _Captured:
    text = ''


@contextlib.contextmanager
def _captured_native_stderr() -> Iterator[_Captured]:
    """Capture what C libraries (libpng, libtiff ...) print to fd 2 while decoding.

    OpenCV's own log is silenced for the duration; the native text is handed
    back so that it can become part of a one-line error instead of noise.
    """
    captured = _Captured()
    fd = 2  # C libraries write to the process's fd 2, whatever sys.stderr is
    with _STDERR_LOCK:
        old_level = _set_cv_log_level(0)
        saved = None
        tmp = None
        try:
            try:
                tmp = tempfile.TemporaryFile(mode='w+b')
                saved = os.dup(fd)
                if sys.stderr is not None:
                    try:
                        sys.stderr.flush()
                    except (OSError, ValueError):
                        pass
                os.dup2(tmp.fileno(), fd)
            except OSError:
                saved = None
            yield captured
        finally:
            if saved is not None:
                os.dup2(saved, fd)
                os.close(saved)
            if tmp is not None:
                tmp.seek(0)
                captured.text = tmp.read().decode('utf-8', 'replace')
                tmp.close()
            _set_cv_log_level(old_level)


def _set_cv_log_level(level: Optional[int]) -> Optional[int]:
    try:
        utils_logging = cv2.utils.logging
        old = utils_logging.getLogLevel()
        if level is not None:
            utils_logging.setLogLevel(level)
        return old
    except Exception:  # noqa: BLE001 - older OpenCV builds without the logging module
        return None


# ------------------------------------------------------------------ PIL input
def _is_pil_image(obj: Any) -> bool:
    module = type(obj).__module__
    return module.startswith('PIL.') and hasattr(obj, 'mode') and hasattr(obj, 'size')


def _from_pil(image: Any, background, exif: bool, what: str) -> np.ndarray:
    from PIL import ImageOps
    try:
        if exif:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                image = ImageOps.exif_transpose(image)
        mode = image.mode
        if mode == 'P' or mode == 'PA':
            image = image.convert('RGBA')
        elif mode in ('CMYK', 'YCbCr', 'LAB', 'HSV', '1'):
            image = image.convert('RGB')
        elif mode == 'La':
            image = image.convert('LA')
        elif mode == 'RGBa':
            image = image.convert('RGBA')
        array = np.asarray(image)
    except Exception as exc:  # noqa: BLE001
        raise ImageReadError(f'cannot read {what}: {exc}') from exc
    if image.mode.startswith('I;16') and array.dtype != np.uint16:
        array = array.astype(np.uint16)
    return to_rgb_uint8(array, background, what=what)


# ---------------------------------------------------------------- conversions
def to_rgb_uint8(array: np.ndarray, background: Sequence[int] = DEFAULT_BACKGROUND,
                 what: str = 'the image') -> np.ndarray:
    """Convert an ``(H, W[, 1|2|3|4])`` array of any dtype to RGB ``uint8``.

    Two channels are gray + alpha, three RGB, four RGB + alpha.
    """
    if not isinstance(array, np.ndarray):
        raise ImageReadError(f'{what} is not an array')
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise ImageReadError(f'{what} has shape {tuple(array.shape)}, which is not an image: '
                             'expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)')
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageReadError(f'{what} has no pixels (shape {tuple(array.shape)})')
    array = _to_uint8_range(array, what)
    background = _check_background(background)
    if array.ndim == 2:
        rgb = np.repeat(array[..., None], 3, axis=2)
    elif array.shape[2] == 2:
        rgb = _composite(np.repeat(array[..., :1], 3, axis=2), array[..., 1], background)
    elif array.shape[2] == 4:
        rgb = _composite(array[..., :3], array[..., 3], background)
    else:
        rgb = array
    return np.ascontiguousarray(rgb)


def _to_uint8_range(array: np.ndarray, what: str) -> np.ndarray:
    dtype = array.dtype
    if dtype == np.uint8:
        return array
    if dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if dtype == np.uint16:
        # x * 255 / 65535, rounded: exact for 0 and 65535.
        return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if info.min < 0:  # signed: clip negatives, scale the positive range
            scaled = np.clip(array.astype(np.float64), 0, None) / info.max * 255
        else:
            scaled = array.astype(np.float64) / info.max * 255
        return np.rint(scaled).astype(np.uint8)
    if np.issubdtype(dtype, np.floating):
        values = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        peak = float(values.max()) if values.size else 0.0
        if peak <= 1.0:
            values = values * 255.0
        return np.rint(np.clip(values, 0, 255)).astype(np.uint8)
    raise ImageReadError(f'{what} has dtype {dtype}, which is not an image type')


def _composite(rgb: np.ndarray, alpha: np.ndarray, background: Tuple[int, int, int]) -> np.ndarray:
    if alpha.min() == 255:
        return rgb
    a = alpha.astype(np.float32)[..., None] / 255.0
    bg = np.asarray(background, dtype=np.float32)
    return np.rint(rgb.astype(np.float32) * a + bg * (1.0 - a)).astype(np.uint8)


def _check_background(background: Sequence[int]) -> Tuple[int, int, int]:
    values = tuple(int(v) for v in background)
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ValueError(f'background must be three values in 0..255, got {background!r}')
    return values  # type: ignore[return-value]


# ---------------------------------------------------------------------- sizes
def fit_to_max_side(height: int, width: int, max_side: Optional[int]) -> Tuple[int, int]:
    """The size ``(h, w)`` after shrinking so the longer side is at most ``max_side``."""
    if not max_side or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_to_max_side(image: np.ndarray, max_side: Optional[int]) -> np.ndarray:
    """Shrink ``image`` (area interpolation) so its longer side is at most ``max_side``."""
    h, w = image.shape[:2]
    th, tw = fit_to_max_side(h, w, max_side)
    if (th, tw) == (h, w):
        return image
    return cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)


def save_image(path: Union[str, os.PathLike], rgb: np.ndarray) -> str:
    """Write an RGB ``uint8`` (or 16-bit single-channel) array; the format follows the suffix."""
    from ..errors import VitaminDenseError
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise VitaminDenseError(f'cannot create output folder {folder}: {exc.strerror}') from exc
    array = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ext = os.path.splitext(path)[1] or '.png'
    try:
        ok, encoded = cv2.imencode(ext, np.ascontiguousarray(array))
    except cv2.error as exc:
        raise VitaminDenseError(f"cannot write {path}: OpenCV cannot encode '{ext}' images "
                                '(use .png or .jpg)') from exc
    if not ok:
        raise VitaminDenseError(f'cannot encode an image for {path}')
    try:
        with open(path, 'wb') as f:
            f.write(encoded.tobytes())
    except OSError as exc:
        raise VitaminDenseError(f'cannot write {path}: {exc.strerror or exc}') from exc
    return path


__all__ = ['DEFAULT_BACKGROUND', 'IMAGE_EXTENSIONS', 'ImageLike', 'read_image', 'to_rgb_uint8',
           'apply_exif_orientation', 'describe_source', 'is_image_file', 'list_images',
           'fit_to_max_side', 'resize_to_max_side', 'save_image']
