"""load_image for every PIL mode the kit promises, the shipped photos, and the guards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gradviz_lab.data import PHOTOS, load_image, load_photo, photo_path


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def test_rgb_png_round_trip(tmp_path):
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 4
    path = _save(Image.fromarray(pixels, "RGB"), tmp_path / "rgb.png")
    tensor = load_image(path)
    assert tensor.shape == (3, 4, 5) and tensor.dtype == torch.float32
    assert torch.equal(tensor, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)


def test_grayscale_l_is_repeated_on_three_channels(tmp_path):
    pixels = np.array([[0, 51], [204, 255]], dtype=np.uint8)
    tensor = load_image(_save(Image.fromarray(pixels, "L"), tmp_path / "gray.png"))
    expected = torch.tensor([[0.0, 0.2], [0.8, 1.0]])
    for channel in tensor:
        assert torch.allclose(channel, expected)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 255, 0]], [[0, 0, 0, 128], [0, 255, 0, 255]]], np.uint8)
    tensor = load_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png"))
    assert tensor.shape == (3, 2, 2)
    assert tensor[:, 0, 0].tolist() == [1.0, 0.0, 0.0]  # opaque red stays red
    assert tensor[:, 0, 1].tolist() == [1.0, 1.0, 1.0]  # fully transparent -> white
    # half-transparent black over white: about half grey (255 * (1 - 128/255) = 127)
    assert torch.allclose(tensor[:, 1, 0], torch.full((3,), 127 / 255), atol=1.5 / 255)
    assert tensor[:, 1, 1].tolist() == [0.0, 1.0, 0.0]


def test_palette_image_uses_its_palette(tmp_path):
    image = Image.new("P", (3, 1))
    image.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    image.putdata([0, 1, 1])
    tensor = load_image(_save(image, tmp_path / "palette.png"))
    assert torch.allclose(tensor[:, 0, 0], torch.tensor([10, 20, 30]) / 255)
    assert torch.allclose(tensor[:, 0, 2], torch.tensor([200, 100, 0]) / 255)


def test_palette_with_transparent_index_gives_white(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    image.putdata([0, 1])
    image.info["transparency"] = 1
    tensor = load_image(_save(image, tmp_path / "palette_t.png", transparency=1))
    assert torch.allclose(tensor[:, 0, 0], torch.tensor([10, 20, 30]) / 255)
    assert tensor[:, 0, 1].tolist() == [1.0, 1.0, 1.0]


def test_sixteen_bit_grayscale_keeps_its_precision(tmp_path):
    values = np.array([[0, 1, 256], [32768, 65534, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)  # mode I;16
    assert image.mode.startswith("I;16")
    tensor = load_image(_save(image, tmp_path / "sixteen.png"))
    expected = torch.from_numpy(values.astype(np.float64) / 65535).float()
    assert torch.allclose(tensor[0], expected, atol=1e-7)
    assert torch.equal(tensor[0], tensor[2])
    # 1/65535 is below an 8-bit step: it survives only because nothing went through uint8
    assert 0 < float(tensor[0, 0, 1]) < 1 / 255


def test_mode_i_thirty_two_bit_holding_sixteen_bit_values():
    image = Image.fromarray(np.array([[0, 65535]], dtype=np.int32), mode="I")
    tensor = load_image(image)
    assert tensor[:, 0, 0].tolist() == [0.0] * 3 and tensor[:, 0, 1].tolist() == [1.0] * 3


def test_one_bit_and_jpeg(tmp_path):
    one_bit = Image.fromarray(np.array([[0, 255]], dtype=np.uint8)).convert("1")
    assert load_image(one_bit)[:, 0].T.tolist() == [[0.0] * 3, [1.0] * 3]
    flat = Image.new("RGB", (16, 16), (200, 100, 50))
    tensor = load_image(_save(flat, tmp_path / "flat.jpg", quality=95))
    assert torch.allclose(tensor.mean((1, 2)), torch.tensor([200, 100, 50]) / 255, atol=3 / 255)


def test_pil_image_input_is_not_modified():
    # transparent black, with one half-transparent red pixel: compositing it in place would show
    pixels = np.zeros((4, 4, 4), np.uint8)
    pixels[1, 2] = [255, 0, 0, 128]
    image = Image.fromarray(pixels, "RGBA")
    before = np.asarray(image).copy()
    tensor = load_image(image)
    assert image.mode == "RGBA" and image.size == (4, 4)
    np.testing.assert_array_equal(np.asarray(image), before)
    # and the result is right: white where transparent; red at 128/255 over white: (255, 127, 127)
    expected = torch.ones(3, 4, 4)
    expected[1:, 1, 2] = 127 / 255
    torch.testing.assert_close(tensor, expected, atol=1.5 / 255, rtol=0)


def test_resize_int_keeps_aspect_and_pair_is_exact(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    short_side = load_image(image, 10)
    assert short_side.shape == (3, 10, 20)
    exact = load_image(image, (7, 9))
    assert exact.shape == (3, 7, 9)
    # resizing a flat image keeps it flat and inside [0, 1]
    assert torch.allclose(exact[0], torch.ones(7, 9)) and float(exact[1:].abs().max()) < 1e-6


def test_resize_of_a_checkerboard_stays_in_range():
    board = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    tensor = load_image(Image.fromarray(board), 17)
    assert float(tensor.min()) >= 0 and float(tensor.max()) <= 1
    assert abs(float(tensor.mean()) - 0.5) < 0.05  # antialiased: the average grey, no aliasing


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((2, 3, 3), dtype=np.uint8)
    pixels[0, 0] = 255  # a white pixel at the top-left of a 3-wide, 2-tall picture
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = _save(image, tmp_path / "rotated.png", exif=exif)
    tensor = load_image(path)
    assert tensor.shape == (3, 3, 2)  # displayed upright: 2 wide, 3 tall
    assert tensor[:, 0, 1].tolist() == [1.0, 1.0, 1.0]  # top-left went to the top-right


def test_a_text_file_is_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a picture\n")
    with pytest.raises(ValueError, match="notes.txt.*not an image"):
        load_image(path)


def test_a_truncated_image_is_a_clear_error(tmp_path):
    full = _save(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)),
                 tmp_path / "full.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(full.read_bytes()[:200])
    with pytest.raises(ValueError, match="broken.png"):
        load_image(broken)


def test_missing_file_and_wrong_types():
    with pytest.raises(FileNotFoundError, match="no image file"):
        load_image("/nonexistent/picture.png")
    with pytest.raises(TypeError, match="file path or a PIL"):
        load_image(np.zeros((4, 4, 3)))
    with pytest.raises(TypeError, match="size must be"):
        load_image(Image.new("RGB", (4, 4)), size=2.5)
    with pytest.raises(ValueError, match="size must be positive"):
        load_image(Image.new("RGB", (4, 4)), size=(0, 3))
    with pytest.raises(ValueError, match="mode F"):
        load_image(Image.new("F", (4, 4)))


def test_decompression_bomb_guard_reads_only_the_header(tmp_path):
    # A 3000x3000 PNG of one colour compresses to a few kB: small file, large image.
    path = _save(Image.new("L", (3000, 3000)), tmp_path / "bomb.png")
    assert path.stat().st_size < 100_000
    with pytest.raises(ValueError, match="decompression bomb"):
        load_image(path, max_pixels=1_000_000)
    assert load_image(path, 30, max_pixels=10_000_000).shape == (3, 30, 30)


@pytest.mark.parametrize("name", PHOTOS)
def test_shipped_photos_load(name):
    photo = load_photo(name)
    assert photo.dim() == 3 and photo.shape[0] == 3 and min(photo.shape[1:]) >= 224
    assert photo.dtype == torch.float32 and 0 <= float(photo.min()) and float(photo.max()) <= 1
    assert float(photo.std()) > 0.05  # a real picture, not a blank
    assert photo_path(name).suffix == ".jpg"


def test_composite_holds_two_pictures_side_by_side():
    both = load_photo("cat_and_coffee")
    assert both.shape == (3, 224, 448)
    cat, cup = load_photo("cat", 224), load_photo("coffee", 224)
    # the left half resembles the cat photo's colours, the right half the coffee photo's
    left, right = both[..., :224].mean((1, 2)), both[..., 224:].mean((1, 2))
    assert torch.dist(left, cat.mean((1, 2))) < torch.dist(left, cup.mean((1, 2)))
    assert torch.dist(right, cup.mean((1, 2))) < torch.dist(right, cat.mean((1, 2)))


def test_unknown_photo_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="cat, coffee"):
        load_photo("elephant")


def test_a_missing_relative_path_says_where_it_looked_and_how_to_reach_the_photos(tmp_path, monkeypatch):
    """issue 18: load_image("cat.jpg") from a notebook's folder: the message names the folder it
    looked in and the call that reaches the shipped photo."""
    from gradviz_lab import data

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as caught:
        load_image("cat.jpg")
    message = str(caught.value)
    assert "current working directory" in message and repr(str(tmp_path / "cat.jpg")) in message
    assert "data.load_photo('cat')" in message and "data.photo_path('cat')" in message
    assert data.photo_path("cat").is_file()  # what the message points to is there
    with pytest.raises(FileNotFoundError) as caught:
        load_image("holiday/beach.png")
    message = str(caught.value)
    assert repr(str(tmp_path / "holiday" / "beach.png")) in message
    assert "data.photo_path(name)" in message and "cat_and_coffee" in message
    with pytest.raises(FileNotFoundError) as caught:  # an absolute path: nothing about the cwd
        load_image(str(tmp_path / "beach.png"))
    assert "working directory" not in str(caught.value)
