"""Copy scikit-image's public-domain / CC0 sample photos and textures into data/.

Run once, with the extraction-only tools in a scratch environment (not the project's .venv):

    python3 -m venv /tmp/extract && /tmp/extract/bin/pip install scikit-image numpy pillow
    /tmp/extract/bin/python scripts/extract_skimage_assets.py

Writes
- data/photos/{cat,coffee,rocket,astronaut}.jpg: shorter side resized to 256 px (enough for the
  standard ImageNet resize-256 / centre-crop-224), JPEG quality 90;
- data/photos/cat_and_coffee.jpg: a 448x224 composite, cat face left and espresso cup right
  (224x224 each), for class-discriminative Grad-CAM (the lecture's elephant-and-hippo idea);
- data/textures/{brick,grass,gravel}.png: grayscale, 512 -> 256 px, backgrounds for the shapes data.

Licences (from the docstrings of skimage.data, copied into data/README.md): chelsea and coffee are
CC0 by their photographers, astronaut (NASA) and rocket (SpaceX) are public domain, and the three
textures are CC0. The motorcycle stereo pair (Middlebury 2014) carries no public-domain or CC0
statement, so it is not copied.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
PHOTOS = {"cat": "chelsea", "coffee": "coffee", "rocket": "rocket", "astronaut": "astronaut"}
TEXTURES = ("brick", "grass", "gravel")
SHORT_SIDE = 256
HALF = 224
# (left, top, right, bottom) squares around each object in the original skimage pictures.
CAT_FACE_BOX = (60, 0, 360, 300)
COFFEE_CUP_BOX = (90, 0, 470, 380)


def skimage_picture(name: str) -> Image.Image:
    from skimage import data  # extraction-time dependency only

    return Image.fromarray(np.asarray(getattr(data, name)()))


def shorter_side_to(image: Image.Image, side: int) -> Image.Image:
    scale = side / min(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.Resampling.LANCZOS)


def cat_and_coffee() -> Image.Image:
    """Two objects of different ImageNet classes side by side, each on a 224x224 half."""
    cat = skimage_picture("chelsea").crop(CAT_FACE_BOX).resize((HALF, HALF), Image.Resampling.LANCZOS)
    cup = skimage_picture("coffee").crop(COFFEE_CUP_BOX).resize((HALF, HALF), Image.Resampling.LANCZOS)
    both = Image.new("RGB", (2 * HALF, HALF))
    both.paste(cat, (0, 0))
    both.paste(cup, (HALF, 0))
    return both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "data")
    args = parser.parse_args()
    photos, textures = args.data / "photos", args.data / "textures"
    photos.mkdir(parents=True, exist_ok=True)
    textures.mkdir(parents=True, exist_ok=True)
    written = []
    for out_name, skimage_name in PHOTOS.items():
        path = photos / f"{out_name}.jpg"
        shorter_side_to(skimage_picture(skimage_name).convert("RGB"), SHORT_SIDE).save(path, quality=90)
        written.append(path)
    path = photos / "cat_and_coffee.jpg"
    cat_and_coffee().save(path, quality=90)
    written.append(path)
    for name in TEXTURES:
        path = textures / f"{name}.png"
        gray = skimage_picture(name).convert("L")
        gray.resize((gray.width // 2, gray.height // 2), Image.Resampling.LANCZOS).save(path, optimize=True)
        written.append(path)
    for path in written:
        with Image.open(path) as im:
            print(f"{path.relative_to(args.data.parent)}: {im.size[0]}x{im.size[1]} {im.mode}, "
                  f"{path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
