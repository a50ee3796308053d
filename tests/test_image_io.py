"""read_image: every kind of input to RGB uint8, and one-line errors."""
import numpy as np
import pytest
from PIL import Image, ImageOps

import cv2
from vitamin_dense.errors import ImageReadError, VitaminDenseError
from vitamin_dense.utils.image_io import (apply_exif_orientation, fit_to_max_side, list_images,
                                          read_image, resize_to_max_side, save_image)


def _rgb(h=6, w=9, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _check(array, shape):
    assert array.dtype == np.uint8 and array.shape == shape and array.flags.c_contiguous


@pytest.mark.parametrize('ext', ['.png', '.bmp', '.tiff', '.webp'])
def test_lossless_formats_round_trip(tmp_path, ext):
    rgb = _rgb()
    path = str(tmp_path / f'img{ext}')
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == '.webp' else []
    assert cv2.imwrite(path, rgb[..., ::-1], params)
    out = read_image(path)
    _check(out, rgb.shape)
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_is_read_as_rgb(tmp_path):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 250  # red
    path = str(tmp_path / 'red.jpg')
    cv2.imwrite(path, rgb[..., ::-1])
    out = read_image(path)
    _check(out, (32, 32, 3))
    assert out[..., 0].mean() > 240 and out[..., 2].mean() < 10


def test_grayscale_is_replicated(tmp_path):
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    path = str(tmp_path / 'gray.png')
    cv2.imwrite(path, gray)
    out = read_image(path)
    _check(out, (4, 6, 3))
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_rgba_is_composited_over_the_background(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = (200, 10, 30)
    rgba[0, :, 3] = 255   # opaque
    rgba[1, 0, 3] = 0     # transparent
    rgba[1, 1, 3] = 128   # half
    rgba[1, 2, 3] = 255
    path = str(tmp_path / 'rgba.png')
    cv2.imwrite(path, rgba[..., [2, 1, 0, 3]])
    out = read_image(path)
    _check(out, (2, 3, 3))
    np.testing.assert_array_equal(out[0, 0], (200, 10, 30))
    np.testing.assert_array_equal(out[1, 0], (255, 255, 255))   # white by default
    np.testing.assert_allclose(out[1, 1], np.array([200, 10, 30]) * 128 / 255
                               + 255 * (1 - 128 / 255), atol=1)
    black = read_image(path, background=(0, 0, 0))
    np.testing.assert_array_equal(black[1, 0], (0, 0, 0))


def test_gray_alpha_and_palette_pngs(tmp_path):
    la = np.zeros((3, 4, 2), np.uint8)
    la[..., 0], la[..., 1] = 100, 255
    la[0, 0, 1] = 0
    Image.fromarray(la, 'LA').save(tmp_path / 'la.png')
    out = read_image(str(tmp_path / 'la.png'))
    _check(out, (3, 4, 3))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[1, 1]) == (100, 100, 100)

    pal = Image.new('P', (5, 2))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / 'p.png')
    out = read_image(str(tmp_path / 'p.png'))
    _check(out, (2, 5, 3))
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 1]) == (0, 0, 255)
    pal.save(tmp_path / 'pt.png', transparency=0)  # palette index 0 transparent
    out = read_image(str(tmp_path / 'pt.png'))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (0, 0, 255)


def test_16_bit_images_are_scaled_to_8_bit(tmp_path):
    gray16 = np.array([[0, 257, 32896, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / 'g16.png'), gray16)
    out = read_image(str(tmp_path / 'g16.png'))
    _check(out, (1, 4, 3))
    assert out[0, :, 0].tolist() == [0, 1, 128, 255]
    rgb16 = (np.random.default_rng(0).integers(0, 65536, (5, 7, 3))).astype(np.uint16)
    cv2.imwrite(str(tmp_path / 'c16.png'), rgb16[..., ::-1])
    cv2.imwrite(str(tmp_path / 'c16.tiff'), rgb16[..., ::-1])
    expected = np.rint(rgb16 / 257.0).astype(np.uint8)
    for name in ('c16.png', 'c16.tiff'):
        out = read_image(str(tmp_path / name))
        np.testing.assert_allclose(out.astype(int), expected.astype(int), atol=1)
    rgba16 = np.concatenate([rgb16, np.full((5, 7, 1), 65535, np.uint16)], axis=2)
    cv2.imwrite(str(tmp_path / 'c16a.png'), rgba16[..., [2, 1, 0, 3]])
    np.testing.assert_allclose(read_image(str(tmp_path / 'c16a.png')).astype(int),
                               expected.astype(int), atol=1)


@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    rgb = _rgb(4, 7, seed=orientation)
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f'o{orientation}.png'
    image.save(path, exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert('RGB'))
    out = read_image(str(path))
    np.testing.assert_array_equal(out, expected)
    assert out.shape[:2] == ((4, 7) if orientation < 5 else (7, 4))
    np.testing.assert_array_equal(read_image(str(path), exif_orientation=False), rgb)


def test_exif_rotated_jpeg(tmp_path):
    image = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / 'rot.jpg', exif=exif.tobytes())
    assert read_image(str(tmp_path / 'rot.jpg')).shape == (40, 20, 3)
    assert apply_exif_orientation(np.zeros((2, 3, 3)), 1).shape == (2, 3, 3)


def test_arrays_and_pil_images(tmp_path):
    rgb = _rgb()
    np.testing.assert_array_equal(read_image(rgb), rgb)
    np.testing.assert_array_equal(read_image(rgb[..., ::-1].copy(), channel_order='bgr'), rgb)
    np.testing.assert_array_equal(read_image(rgb[:, :, :1])[..., 2], rgb[..., 0])
    assert read_image(np.ones((2, 2), bool))[0, 0, 0] == 255
    floats = read_image(np.full((2, 2, 3), 0.5, np.float32))
    assert floats[0, 0, 0] == 128
    assert read_image(np.full((2, 2), 300.0))[0, 0, 0] == 255          # 0-255 range, clipped
    assert read_image(np.array([[np.nan, 1.0]]))[0, 0, 0] == 0
    assert read_image(np.full((1, 1), 65535, np.uint16))[0, 0, 0] == 255
    np.testing.assert_array_equal(read_image(Image.fromarray(rgb)), rgb)
    for mode in ('L', 'LA', 'RGBA', 'P', 'CMYK', '1', 'I;16', 'I', 'F'):
        out = read_image(Image.fromarray(rgb).convert(mode))
        _check(out, rgb.shape)
    gray16 = Image.fromarray(np.full((2, 3), 65535, np.uint16))
    assert read_image(gray16)[0, 0, 0] == 255


def test_one_pixel_and_thin_images(tmp_path):
    cv2.imwrite(str(tmp_path / 'one.png'), np.full((1, 1, 3), 7, np.uint8))
    _check(read_image(str(tmp_path / 'one.png')), (1, 1, 3))
    cv2.imwrite(str(tmp_path / 'thin.png'), np.zeros((17, 1000), np.uint8))
    _check(read_image(str(tmp_path / 'thin.png')), (17, 1000, 3))


def _one_line_error(source, capfd, match):
    with pytest.raises(ImageReadError, match=match) as info:
        read_image(source)
    message = str(info.value)
    assert '\n' not in message
    captured = capfd.readouterr()
    assert captured.err == '' and captured.out == ''  # no decoder chatter leaks
    return message


def test_errors_are_one_line_and_quiet(tmp_path, capfd):
    _one_line_error(str(tmp_path / 'missing.jpg'), capfd, 'image not found')
    _one_line_error(str(tmp_path), capfd, 'is a directory')
    (tmp_path / 'empty.png').write_bytes(b'')
    _one_line_error(str(tmp_path / 'empty.png'), capfd, r'empty \(0 bytes\)')
    (tmp_path / 'notes.jpg').write_text('this is text, not pixels')
    _one_line_error(str(tmp_path / 'notes.jpg'), capfd, 'is not an image')
    rgb = _rgb(200, 300)
    for ext, kind in (('.png', 'PNG'), ('.jpg', 'JPEG'), ('.tiff', 'TIFF'), ('.bmp', 'BMP')):
        ok, buf = cv2.imencode(ext, rgb)
        data = buf.tobytes()
        (tmp_path / f'cut{ext}').write_bytes(data[:len(data) // 2])
        message = _one_line_error(str(tmp_path / f'cut{ext}'), capfd, 'truncated or corrupt')
        assert kind in message and f'cut{ext}' in message


def test_bad_arrays_and_types():
    with pytest.raises(ImageReadError, match='no pixels'):
        read_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageReadError, match='not an image'):
        read_image(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ImageReadError, match='not an image'):
        read_image(np.zeros((2, 2, 2, 3), np.uint8))
    with pytest.raises(ImageReadError, match='dtype'):
        read_image(np.zeros((2, 2), complex))
    with pytest.raises(ImageReadError, match='pass a file path'):
        read_image(42)
    with pytest.raises(ValueError, match='background'):
        read_image(_rgb(), background=(0, 0))


def test_size_policy_helpers():
    assert fit_to_max_side(20000, 10000, 2048) == (2048, 1024)
    assert fit_to_max_side(100, 50, 2048) == (100, 50)
    assert fit_to_max_side(20000, 1, 2048) == (2048, 1)
    assert fit_to_max_side(300, 200, None) == (300, 200)
    shrunk = resize_to_max_side(np.full((400, 100, 3), 9, np.uint8), 100)
    assert shrunk.shape == (100, 25, 3) and (shrunk == 9).all()


def test_save_image_and_list_images(tmp_path):
    rgb = _rgb()
    path = save_image(tmp_path / 'sub' / 'out.png', rgb)
    np.testing.assert_array_equal(read_image(path), rgb)
    labels = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    save_image(tmp_path / 'labels.png', labels)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'labels.png'),
                                             cv2.IMREAD_UNCHANGED), labels)
    (tmp_path / 'file').write_text('x')
    with pytest.raises(VitaminDenseError, match='cannot'):
        save_image(tmp_path / 'file' / 'x.png', rgb)
    (tmp_path / 'notes.txt').write_text('x')
    assert [p.rsplit('/', 1)[1] for p in list_images(tmp_path)] == ['labels.png']
    assert len(list_images(tmp_path, recursive=True)) == 2
