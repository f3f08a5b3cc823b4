"""Data sets: IDX (MNIST, Fashion-MNIST) and image folders (CIFAR-10 JPEG, Imagenette).

Images are decoded once into uint8 arrays cached outside the repository
(``$XNOR_EDGE_CACHE`` or ``~/.cache/xnor-edge``); batches are normalised and
augmented on the fly as torch tensors.  Where a data set lies is always an argument
(``--data-path``); a missing argument or path is reported by name.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png")

IMAGENETTE_NAMES = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888257": "parachute",
}
FASHION_LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


class DataError(RuntimeError):
    """A data set is missing or malformed; the message names the path and the problem."""


def cache_dir() -> Path:
    d = Path(os.environ.get("XNOR_EDGE_CACHE", Path.home() / ".cache" / "xnor-edge"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass
class Dataset:
    """A decoded data set: uint8 NHWC images and int64 labels, plus preprocessing info."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: list[str]
    mean: list[float]
    std: list[float]
    color_order: str
    input_size: tuple[int, int]
    augment: str  # "none" or "crop_flip"
    crop_pad: int = 0
    resize: int | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)
    # Where the original test images are (folder or tar, split name), for data sets of
    # image files: evaluate --from-files runs them through the package's own pipeline.
    test_files: tuple[Path, str] | None = None

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[3])


# ---------------------------------------------------------------- IDX files


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally .gz): big-endian header, magic 0x0000 type ndim."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4:
        raise DataError(f"{path}: too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    n = int(np.prod(dims))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != n:
        raise DataError(f"{path}: expected {n} bytes of data for shape {dims}, found {body.size}")
    return body.reshape(dims)


def _idx_pair(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    def find(stem: str) -> Path:
        for cand in (root / f"{stem}.gz", root / stem):
            if cand.exists():
                return cand
        raise DataError(f"missing {stem}(.gz) in {root}")

    x = read_idx(find(f"{prefix}-images-idx3-ubyte"))
    y = read_idx(find(f"{prefix}-labels-idx1-ubyte"))
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DataError(f"{root}: {prefix} images {x.shape} and labels {y.shape} do not match")
    return x[..., None].copy(), y.astype(np.int64)


# What --data-path must name, per data set (the error for a missing one says it).
DATA_PATH_HINTS = {
    "mnist": "the folder holding train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), "
    "t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz)",
    "fashion-mnist": "the folder holding the four Fashion-MNIST IDX files (Debian: apt-get install "
    "dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist)",
    "cifar10": "the CIFAR-10 JPEG archive (.tar.gz) or folder with train/<class>/ and test/<class>/",
    "imagenette": "a folder with imagenette-224-train.tar and imagenette-224-val.tar, or with "
    "train/<class>/ and val/<class>/",
    "folder": "DIR holding train/<class>/ and val/<class>/",
}


def _require_path(name: str, path: str | Path | None) -> Path:
    if not path:
        raise DataError(f"--data {name} needs --data-path: {DATA_PATH_HINTS[name]}")
    return Path(path)


def load_idx_dataset(name: str, root: str | Path | None = None) -> Dataset:
    if name == "mnist":
        labels = [str(i) for i in range(10)]
        mean, std = [0.1307], [0.3081]
    elif name == "fashion-mnist":
        labels = FASHION_LABELS
        mean, std = [0.2860], [0.3530]
    else:
        raise DataError(f"unknown IDX data set {name!r}")
    root = _require_path(name, root)
    if not root.is_dir():
        hint = (
            " (install it with: apt-get install -y dataset-fashion-mnist)" if name == "fashion-mnist" else ""
        )
        raise DataError(f"{name} data directory not found: {root}{hint}")
    xtr, ytr = _idx_pair(root, "train")
    xte, yte = _idx_pair(root, "t10k")
    return Dataset(
        name, xtr, ytr, xte, yte, labels, mean, std, "GRAY", (28, 28), augment="none", source=str(root)
    )


# ---------------------------------------------------------------- image folders


def _extract(archive: Path) -> Path:
    """Extract a tar archive once into the cache; return the extraction folder."""
    key = hashlib.sha1(f"{archive.resolve()}:{archive.stat().st_size}".encode()).hexdigest()[:12]
    dest = cache_dir() / "extract" / f"{archive.name.split('.')[0]}-{key}"
    done = dest / ".complete"
    if not done.exists():
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tf:
            members = [m for m in tf.getmembers() if m.isfile() or m.isdir()]
            for m in members:
                if m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise DataError(f"{archive}: unsafe member path {m.name!r}")
            tf.extractall(dest, members=members)
        done.write_text("ok")
    return dest


def _find_split(root: Path, split: str) -> Path:
    for cand in [root / split, *sorted(root.glob(f"*/{split}"))]:
        if cand.is_dir():
            return cand
    raise DataError(f"no '{split}' folder with class sub-folders under {root}")


def _list_folder(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """folder/<class>/<image> -> image paths, class indices (sorted class names), classes."""
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"{folder}: no class sub-folders")
    files, ys = [], []
    for ci, cname in enumerate(classes):
        for p in sorted(p for p in (folder / cname).iterdir() if p.suffix.lower() in IMAGE_EXTS):
            files.append(p)
            ys.append(ci)
    return files, ys, classes


def split_files(src: Path, split: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """The image files of one split (src: folder or tar archive, extracted once)."""
    if not src.exists():
        raise DataError(f"image data not found: {src}")
    files, ys, classes = _list_folder(_find_split(_extract(src) if src.is_file() else src, split))
    return files, np.asarray(ys, dtype=np.int64), classes


def _decode_folder(folder: Path, size: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image

    files, ys, classes = _list_folder(folder)
    xs = []
    for p in files:
        with Image.open(p) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                w, h = im.size
                s = size / min(w, h)
                nw, nh = max(size, round(w * s)), max(size, round(h * s))
                im = im.resize((nw, nh), Image.BILINEAR)
                left, top = (nw - size) // 2, (nh - size) // 2
                im = im.crop((left, top, left + size, top + size))
            xs.append(np.asarray(im, dtype=np.uint8))
    shapes = {a.shape for a in xs}
    if len(shapes) != 1:
        raise DataError(f"{folder}: images have different sizes {sorted(shapes)[:4]}; pass a size")
    return np.stack(xs), np.asarray(ys, dtype=np.int64), classes


def load_image_folder_split(
    src: Path, split: str, size: int | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode root/<split>/<class>/*.jpg (src: folder or tar archive) to a cached .npy."""
    if not src.exists():
        raise DataError(f"image data not found: {src}")
    key = hashlib.sha1(f"{src.resolve()}:{split}:{size}".encode()).hexdigest()[:12]
    cdir = cache_dir() / "decoded"
    cdir.mkdir(parents=True, exist_ok=True)
    xf, yf, cf = (cdir / f"{key}-x.npy", cdir / f"{key}-y.npy", cdir / f"{key}-classes.json")
    if xf.exists() and yf.exists() and cf.exists():
        return np.load(xf), np.load(yf), json.loads(cf.read_text())
    root = _extract(src) if src.is_file() else src
    x, y, classes = _decode_folder(_find_split(root, split), size)
    np.save(xf, x)
    np.save(yf, y)
    cf.write_text(json.dumps(classes))
    return x, y, classes


def load_cifar10(path: str | Path | None = None) -> Dataset:
    src = _require_path("cifar10", path)
    xtr, ytr, classes = load_image_folder_split(src, "train", None)
    xte, yte, classes_te = load_image_folder_split(src, "test", None)
    if classes != classes_te:
        raise DataError(f"{src}: train and test class folders differ")
    return Dataset(
        "cifar10",
        xtr,
        ytr,
        xte,
        yte,
        classes,
        [0.4914, 0.4822, 0.4465],
        [0.2470, 0.2435, 0.2616],
        "RGB",
        (32, 32),
        augment="crop_flip",
        crop_pad=4,
        source=f"{src} (CIFAR-10 JPEG q75)",
        test_files=(src, "test"),
    )


def load_imagenette(path: str | Path | None = None, size: int = 128, resize: int | None = None) -> Dataset:
    """Imagenette from the two tars (or a folder with train/ and val/).

    Images are stored at ``resize`` (default size*8/7 rounded) and randomly cropped to
    ``size`` for training, centre-cropped for testing (the metadata's resize + crop).
    """
    root = _require_path("imagenette", path)
    if not root.exists():
        raise DataError(f"Imagenette not found: {root}")
    resize = resize or int(round(size * 8 / 7))
    if root.is_dir() and (root / "imagenette-224-train.tar").exists():
        tr_src, va_src = root / "imagenette-224-train.tar", root / "imagenette-224-val.tar"
        if not va_src.exists():
            raise DataError(f"missing {va_src}")
    else:
        tr_src = va_src = root
    ds = _photo_dataset("imagenette", tr_src, va_src, "val", size, resize, str(root))
    ds.extra = {"wnids": ds.labels}
    ds.labels = [IMAGENETTE_NAMES.get(c, c) for c in ds.labels]
    return ds


def _photo_dataset(
    name: str, tr_src: Path, te_src: Path, te_split: str, size: int, resize: int, source: str
) -> Dataset:
    """Photos stored resized (shorter side ``resize``): random crops of ``size`` for
    training, centre crops for testing (the metadata's resize + crop), ImageNet statistics."""
    xtr, ytr, classes = load_image_folder_split(tr_src, "train", resize)
    xte, yte, classes_te = load_image_folder_split(te_src, te_split, resize)
    if classes != classes_te:
        raise DataError(f"{source}: train and {te_split} class folders differ")
    off = (resize - size) // 2
    xte = np.ascontiguousarray(xte[:, off : off + size, off : off + size])
    return Dataset(
        name,
        xtr,
        ytr,
        xte,
        yte,
        classes,
        [0.485, 0.456, 0.406],
        [0.229, 0.224, 0.225],
        "RGB",
        (size, size),
        augment="crop_flip",
        resize=resize,
        source=source,
        test_files=(te_src, te_split),
    )


def load_folder(path: str | Path | None, size: int = 96) -> Dataset:
    """A user's own labelled photos: PATH/train/<class>/* and PATH/val/<class>/* (or test/).

    Images of any size are resized (shorter side) and centre-cropped like Imagenette;
    labels are the class folder names in sorted order.
    """
    root = _require_path("folder", path)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    eval_split = "val" if (root / "val").is_dir() else "test"
    return _photo_dataset(
        root.name or "folder", root, root, eval_split, size, int(round(size * 8 / 7)), str(root)
    )


DATASETS = ("mnist", "fashion-mnist", "cifar10", "imagenette", "folder")


def load_dataset(name: str, path: str | None = None, image_size: int | None = None) -> Dataset:
    if name in ("mnist", "fashion-mnist"):
        return load_idx_dataset(name, path)
    if name == "cifar10":
        return load_cifar10(path)
    if name == "imagenette":
        return load_imagenette(path, size=image_size or 128)
    if name == "folder":
        return load_folder(path, size=image_size or 96)
    raise DataError(f"unknown data set {name!r}; choose mnist, fashion-mnist, cifar10, imagenette, folder")


# ---------------------------------------------------------------- batches (torch)


def normalise(xb, mean, std):
    """uint8 NHWC tensor -> float NCHW, (x/255 - mean)/std."""
    import torch

    x = xb.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    return (x - m) / s


def augment_batch(xb, ds: Dataset, generator=None):
    """Random crop (with zero padding for CIFAR, from the stored larger image for
    Imagenette) and horizontal flip, on a uint8 NHWC tensor."""
    import torch

    if ds.augment == "none":
        return xb
    n, h, w, c = xb.shape
    th, tw = ds.input_size
    if ds.crop_pad:
        p = ds.crop_pad
        padded = torch.zeros((n, h + 2 * p, w + 2 * p, c), dtype=xb.dtype, device=xb.device)
        padded[:, p : p + h, p : p + w] = xb
        xb, h, w = padded, h + 2 * p, w + 2 * p
    oy = torch.randint(0, h - th + 1, (n,), generator=generator)
    ox = torch.randint(0, w - tw + 1, (n,), generator=generator)
    iy = (oy[:, None] + torch.arange(th)[None]).to(xb.device)
    ix = (ox[:, None] + torch.arange(tw)[None]).to(xb.device)
    bidx = torch.arange(n, device=xb.device)[:, None, None]
    out = xb[bidx, iy[:, :, None], ix[:, None, :]]
    flip = (torch.rand(n, generator=generator) < 0.5).to(xb.device)
    out[flip] = out[flip].flip(2)
    return out


def subset_indices(n: int, k: int, seed: int = 0) -> np.ndarray:
    """k of n indices, drawn at random with a fixed seed and sorted (test sets are stored
    sorted by class, so the first k would hold one class only)."""
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


def centre_crop(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = x.shape[1:3]
    th, tw = size
    if (h, w) == (th, tw):
        return x
    oy, ox = (h - th) // 2, (w - tw) // 2
    return x[:, oy : oy + th, ox : ox + tw]


def preprocess_numpy(x: np.ndarray, ds_mean, ds_std) -> np.ndarray:
    """uint8 NHWC -> float32 NHWC as the runtime expects ((x/255-mean)/std)."""
    m = np.asarray(ds_mean, np.float32)
    s = np.asarray(ds_std, np.float32)
    return ((x.astype(np.float32) / 255.0 - m) / s).astype(np.float32)
