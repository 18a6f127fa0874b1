"""Build the train / validation / test sets a run config asks for.

``build_splits(cfg)`` reads the raw data set in its real on-disk format, applies the
long-tail profile to the training split (first ``n_c`` per class, file order), optionally
holds out a balanced validation split, and leaves the test split balanced as published.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from longtail.data import formats
from longtail.data.fetch import DEBIAN_ROOT
from longtail.data.images import FileImages, LabeledImages
from longtail.data.profiles import PROFILES, select_first_per_class
from longtail.errors import LongtailError

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass(frozen=True)
class DatasetInfo:
    """What the rest of the pipeline needs to know about a data set's images."""

    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    list_based: bool = False  # already long-tailed by its published split lists


DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo(1, (0.2860,), (0.3530,)),
    "mnist": DatasetInfo(1, (0.1307,), (0.3081,)),
    "cifar10": DatasetInfo(3, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo(3, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet_lt": DatasetInfo(3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), list_based=True),
    "places_lt": DatasetInfo(3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), list_based=True),
    "inat2018": DatasetInfo(3, (0.466, 0.471, 0.380), (0.195, 0.194, 0.192), list_based=True),
    "list": DatasetInfo(3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), list_based=True),
    "image_folder": DatasetInfo(3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@dataclass
class Splits:
    train: LabeledImages
    test: LabeledImages
    val: LabeledImages | None
    info: DatasetInfo
    notes: list[str] = field(default_factory=list)  # what the run should be told about its splits
    # (path, why) of every unreadable image left out (data.skip_unreadable): the run folder keeps
    # it as skipped_images.txt
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # (path, class name, split) of every image of a split made here (an image folder without
    # train/ and test/): the run folder keeps it as split.csv
    manifest: list[tuple[str, str, str]] | None = None


def default_profile(name: str) -> str:
    """The profile ``data.profile: ""`` stands for: the balanced benchmark sets are made long-tailed
    (the CIFAR-LT construction); a user's image folder or list files are used as they are."""
    return "exponential" if name in ("fashion_mnist", "mnist", "cifar10", "cifar100") else "none"


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise LongtailError(f"unknown data set '{name}'", f"data.dataset must be one of {sorted(DATASETS)}")
    return DATASETS[name]


def _read_raw(cfg, notes: list[str], skipped: list) -> tuple:
    """The data set as published: (train, test, val or None[, manifest]); ``notes`` collects what
    the run log should say about how it was read, ``skipped`` the unreadable images left out."""
    name = cfg.dataset
    if name in ("fashion_mnist", "mnist"):
        root = _mnist_root(cfg.root, name)
        names = FASHION_MNIST_CLASSES if name == "fashion_mnist" else [str(i) for i in range(10)]
        parts = []
        for train in (True, False):
            x, y = formats.read_mnist_split(root, train)
            parts.append(LabeledImages(torch.from_numpy(x), torch.from_numpy(y), 10, names))
        return parts[0], parts[1], None
    if name in ("cifar10", "cifar100"):
        if not cfg.root or not Path(cfg.root).expanduser().is_dir():
            raise LongtailError(f"CIFAR root '{cfg.root}' does not exist", "set data.root to the extracted cifar-10-batches-py / cifar-100-python folder")
        c = 10 if name == "cifar10" else 100
        names = CIFAR10_CLASSES if c == 10 else []
        parts = []
        for train in (True, False):
            x, y = formats.read_cifar_split(Path(cfg.root).expanduser(), c, train)
            parts.append(LabeledImages(torch.from_numpy(x), torch.from_numpy(y), c, names))
        return parts[0], parts[1], None
    if name == "image_folder":
        return _read_image_folder(cfg, notes, skipped)
    # list-file data sets: ImageNet-LT, Places-LT, iNaturalist 2018, or any 'list'
    if not cfg.train_list or not cfg.test_list:
        raise LongtailError(f"data set '{name}' needs data.train_list and data.test_list", "point them at the published split files, e.g. ImageNet_LT_train.txt / ImageNet_LT_test.txt")
    root = Path(cfg.root).expanduser()
    lists = [str(Path(p).expanduser()) if p else p for p in (cfg.train_list, cfg.test_list, cfg.val_list)]
    parsed = [formats.read_list_file(Path(p), root, cfg.num_classes or None) if p else None for p in lists]
    num_classes = cfg.num_classes or int(max(int(p[1].max()) for p in parsed if p) + 1)
    size = cfg.image_size or 224
    notes.append(f"images decoded at {_sizes(cfg, size)}, {cfg.channels or 3} channel(s) (data.image_size, data.resize, data.channels)")
    for p, lst in zip(parsed, lists):
        if p is not None:
            formats.check_files_exist(p[0], lst)
    if cfg.verify:
        bad = _unreadable(cfg, [x for p in parsed if p for x in p[0]], notes, skipped)
        parsed = [None if p is None else _without(p[0], p[1], bad) for p in parsed]
    _check_fits_in_memory(cfg, sum(len(p[0]) for p in parsed if p), cfg.channels or 3, cfg.resize or size)
    out = [None if p is None else _file_set(p[0], p[1], num_classes, size, cfg.channels or 3, cfg, [], notes) for p in parsed]
    return out[0], out[1], out[2]


def _sizes(cfg, size: int) -> str:
    """How images are stored and cropped, for the log."""
    if cfg.resize and cfg.resize < size:
        raise LongtailError(f"data.resize = {cfg.resize} is below the input size {size}",
                            f"set data.resize >= {size} (ImageNet's recipe: 256 for 224, about 1.14 x the input), or 0")
    if cfg.resize and cfg.resize != size:
        return f"{cfg.resize} x {cfg.resize} (shorter side, centre crop), input {size} x {size} cut from them (training: the augmentation's crop, evaluation: the centre)"
    return f"{size} x {size}"


def _read_image_folder(cfg, notes: list[str], skipped: list):
    """``root/{train,test[,val]}/<class>/<image>``, or ``root/<class>/<image>`` split here:
    per class, a seeded shuffle gives ``test_fraction`` (at least one image where the class has
    two) to test and ``val_fraction`` to validation, the rest to training."""
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise LongtailError(f"image folder not found: {formats._shown(root)}", "set data.root to a folder with train/<class>/ and "
                            "test/<class>/ sub-folders, or one sub-folder per class")
    info = DATASETS["image_folder"]
    manifest = None
    headers: dict = {}  # (size, mode) by path, from data.verify's pass over the files
    if (root / "train").is_dir():
        sets = []
        for sub in ("train", "test", "val"):
            if sub != "train" and not (root / sub).is_dir():
                if sub == "test":
                    raise LongtailError(f"{root} has train/ but no test/", "add test/<class>/ images, or put the class "
                                        "folders directly under data.root to have them split (data.test_fraction)")
                sets.append(None)
                continue
            paths, labels, classes = formats.read_image_folder(root / sub)
            if sets and classes != sets[0][2]:
                raise LongtailError(f"{root / sub} has classes {classes[:5]}... unlike train's", "train/ and test/ need the same class folders")
            sets.append((paths, labels, classes))
        classes = sets[0][2]
        if cfg.verify:  # every unreadable file of every split, named at once
            bad = _unreadable(cfg, [p for s in sets if s for p in s[0]], notes, skipped, headers)
            sets = [None if s is None else (*_without(s[0], s[1], bad), s[2]) for s in sets]
    else:
        paths, labels, classes = formats.read_image_folder(root)
        if cfg.verify:  # before the split, so that it is made over readable images
            paths, labels = _without(paths, labels, _unreadable(cfg, paths, notes, skipped, headers))
        rng = np.random.default_rng(cfg.split_seed)
        part = np.zeros(len(paths), np.int64)  # 0 train, 1 test, 2 val
        for c in range(len(classes)):
            idx = rng.permutation(np.flatnonzero(labels == c))
            n = len(idx)
            n_test = max(1, round(cfg.test_fraction * n)) if n >= 2 and cfg.test_fraction > 0 else 0
            n_val = max(1, round(cfg.val_fraction * n)) if n - n_test >= 2 and cfg.val_fraction > 0 else 0
            part[idx[:n_test]] = 1
            part[idx[n_test:n_test + n_val]] = 2
        sets = [([paths[i] for i in np.flatnonzero(part == k)], labels[part == k], classes) for k in range(3)]
        if not len(sets[2][0]):
            sets[2] = None
        manifest = [(str(p), classes[int(y)], ("train", "test", "val")[int(k)]) for p, y, k in zip(paths, labels, part)]
        notes.append(f"{root} has no train/ and test/: split by class with seed {cfg.split_seed}: "
                     f"{len(sets[0][0])} train, {len(sets[1][0])} test, {len(sets[2][0]) if sets[2] else 0} validation images "
                     "(data.test_fraction, data.val_fraction, data.split_seed)")
    for c, name in enumerate(classes):
        if not (sets[0][1] == c).any():
            raise LongtailError(f"class '{name}' has no readable training image left", "add readable images to it, or remove the folder")
    size, channels = cfg.image_size, cfg.channels
    if not size or not channels:
        shapes = _image_shapes([p for s in sets if s for p in s[0]], headers)
        if not size:
            size, how = size_from_data([wh for wh, _ in shapes])
        else:
            how = "data.image_size"
        if not channels:
            channels = 1 if all(mode in ("1", "L", "I", "I;16", "F") for _, mode in shapes) else info.channels
        notes.append(f"images decoded at {_sizes(cfg, size)} ({how}), {channels} channel(s)")
    _check_fits_in_memory(cfg, sum(len(s[0]) for s in sets if s), channels, cfg.resize or size)
    out = [None if s is None else _file_set(s[0], s[1], len(classes), size, channels, cfg, classes, notes) for s in sets]
    return out[0], out[1], out[2], manifest


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's MemAvailable), None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_fits_in_memory(cfg, n: int, channels: int, stored: int) -> None:
    """``data.in_memory`` decodes every image into one uint8 tensor up front; refuse, before
    decoding any, when that would take more than half the memory available (training needs the
    rest), naming the settings that stream the images instead."""
    if not cfg.in_memory:
        return
    need, free = n * channels * stored * stored, available_memory()
    if free is not None and need > free // 2:
        raise LongtailError(
            f"data.in_memory: {n:,} images at {channels} x {stored} x {stored} take {need / 2**30:.1f} GiB decoded, "
            f"more than half the {free / 2**30:.1f} GiB of memory available",
            "set data.in_memory=false data.cache=true (decoded once into shards on disk, read from there; "
            "`longtail prepare CONFIG` does it ahead), or data.in_memory=false alone (decoded every epoch), "
            "or a smaller data.image_size")


MAX_SIZE_FROM_DATA = 224


def size_from_data(sizes: list[tuple[int, int]]) -> tuple[int, str]:
    """The input size for images of these (width, height) sizes, and why: their own when they
    share one (the shorter side, centre-cropped, when not square); else the median shorter side
    rounded to a multiple of 8 (at least 8, at most 224): a folder of 56-64 px photos trains at
    64 px, not at the 224 px of ImageNet models (12x the pixels, for a CIFAR-size network)."""
    distinct = set(sizes)
    if len(distinct) == 1:
        w, h = next(iter(distinct))
        return min(w, h), "their own size" if w == h else "their shorter side, centre-cropped"
    shorter = sorted(min(wh) for wh in sizes)
    median = shorter[len(shorter) // 2]
    size = int(min(MAX_SIZE_FROM_DATA, max(8, 8 * round(median / 8))))
    return size, (f"the median shorter side ({median} px over {len(distinct)} sizes, {shorter[0]}-{shorter[-1]} px) rounded "
                  f"to a multiple of 8{', at most ' + str(MAX_SIZE_FROM_DATA) if size == MAX_SIZE_FROM_DATA else ''}; "
                  "set data.image_size to choose")


def check_image(p: Path, headers: dict | None = None) -> str:
    """Why the image at ``p`` cannot be read ("" when it can): Pillow's header and ``verify``;
    a JPEG that lacks its end-of-image marker (a truncated download) is decoded in full to be sure.
    The header's (width, height) and mode go into ``headers[str(p)]`` (read once, used again
    to choose the input size and channels)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            fmt = im.format
            if headers is not None:
                headers[str(p)] = (im.size, im.mode)
            im.verify()
        if fmt == "JPEG":
            with open(p, "rb") as f:
                f.seek(-2, 2)
                ends = f.read(2) == b"\xff\xd9"
            if not ends:
                with Image.open(p) as im:
                    im.load()
    except FileNotFoundError:
        return "missing"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return ""


def scan_images(paths, headers: dict | None = None) -> list[tuple[str, str]]:
    """(path, why) of every image of ``paths`` that cannot be read, in one pass over them all
    (each readable one's header kept in ``headers``, see :func:`check_image`)."""
    from longtail.progress import progress

    bar = progress(len(paths), "verify images", "img") if len(paths) >= 1000 else None
    bad = []
    for p in paths:
        if bar is not None:
            bar.update(1)
        why = check_image(Path(p), headers)
        if why:
            bad.append((str(p), why))
    if bar is not None:
        bar.close()
    return bad


def _unreadable(cfg, paths, notes: list[str], skipped: list, headers: dict | None = None) -> set[str]:
    """Every unreadable image of ``paths`` named at once: an error, or with
    ``data.skip_unreadable`` the set of them to leave out (a note, and their list in ``skipped``)."""
    bad = scan_images(paths, headers)
    if not bad:
        return set()
    listing = "; ".join(f"{p} ({why})" for p, why in bad[:20]) + (f"; and {len(bad) - 20} more" if len(bad) > 20 else "")
    if not cfg.skip_unreadable:
        raise LongtailError(f"{len(bad)} of {len(paths)} images cannot be read: {listing}",
                            "re-save or remove them, or set data.skip_unreadable: true to leave them out with a warning")
    notes.append(f"warning: {len(bad)} unreadable image(s) left out (data.skip_unreadable; the list is in the run folder's "
                 f"skipped_images.txt): {listing}")
    skipped.extend(bad)
    return {p for p, _ in bad}


def _without(paths, labels, bad: set[str]):
    keep = [i for i, p in enumerate(paths) if str(p) not in bad]
    return [paths[i] for i in keep], labels[keep]


def _image_shapes(paths, headers: dict) -> list[tuple[tuple[int, int], str]]:
    """(width, height) and mode of each image, from its header alone (``headers``: those read
    already, by data.verify's pass)."""
    from PIL import Image, UnidentifiedImageError

    out = []
    for p in paths:
        if str(p) in headers:
            out.append(headers[str(p)])
            continue
        try:
            with Image.open(p) as im:
                out.append((im.size, im.mode))
        except (UnidentifiedImageError, OSError) as e:
            raise LongtailError(f"cannot read image {p}: {e}", "re-save or remove this file") from None
    return out


def _mnist_root(root: str, dataset: str) -> Path:
    """The folder holding the idx files: ``data.root`` (``~`` expanded). The shipped configs
    name Debian's folder; where that is missing, Fashion-MNIST is taken from wherever
    ``longtail fetch`` put it (its cache folder), so they run on machines without the package."""
    from longtail.data.fetch import CACHE_ROOT, has_files

    asked = Path(root).expanduser() if root else DEBIAN_ROOT
    candidates = [asked] + ([CACHE_ROOT] if dataset == "fashion_mnist" and asked == DEBIAN_ROOT else [])
    for candidate in candidates:
        if has_files(candidate):
            return candidate
    what = "does not exist" if not asked.is_dir() else "holds no idx files"
    raise LongtailError(f"data root {asked} {what}",
                        "run `longtail fetch fashion_mnist` (or `make data`), or set data.root to the folder holding the idx files")


def _file_set(paths, labels, num_classes, size, channels, cfg, names, notes) -> LabeledImages:
    """Files decoded at ``data.resize`` (else ``size``) with ``size`` the input: in memory
    (``data.in_memory``), prepared once into shards (``data.cache``), or decoded each epoch."""
    stored = cfg.resize or size
    images = FileImages(paths, stored, channels)
    if cfg.in_memory:
        images = images.materialize()
    elif cfg.cache and len(images):
        from longtail.data.cache import prepare

        images = prepare(images, cfg.cache_dir, cfg.workers, log=lambda m: print(m, flush=True))
        notes.append(f"{len(images)} images read from their prepared copy in {images.folder} (data.cache)")
    return LabeledImages(images, torch.from_numpy(labels), num_classes, names, size if stored != size else 0)


def build_splits(cfg) -> Splits:
    """Read ``cfg.dataset`` and apply the long-tail profile and validation hold-out.

    The profile comes first and is trained on exactly: class c keeps its first ``n_c`` images
    in file order, as in the standard construction. Validation (``val_per_class = v > 0``, for
    data sets without their own val split) comes only from the images beyond the profile: the
    *last* v of each class. A class with fewer than v images to spare gives what it has (the
    largest class at ``max_per_class: 0`` has none: the profile takes all of it), and
    ``Splits.notes`` says which; a validation set left empty is an error. With ``profile: none``
    there is no profile to preserve: the last v images of each class are held out of training.
    """
    info = dataset_info(cfg.dataset)
    notes, skipped = [], []
    train, test, val, *rest = _read_raw(cfg, notes, skipped)
    manifest = rest[0] if rest else None
    profile = cfg.profile or default_profile(cfg.dataset)
    counts_raw = np.asarray(train.class_counts())
    empty = np.flatnonzero(counts_raw == 0)
    if len(empty):
        raise LongtailError(f"class {_class_name(train, int(empty[0]))} has no training images in the source data",
                            "remove that class or fix the split file")
    if cfg.val_per_class and val is not None:
        raise LongtailError("data.val_per_class is set but the data set has its own validation split", "set data.val_per_class: 0")
    labels = train.labels.numpy()
    if profile == "none" and cfg.max_per_class:
        raise LongtailError(f"data.max_per_class = {cfg.max_per_class} caps a long-tail profile, and {cfg.dataset} is used as "
                            "it is (profile none)", "remove data.max_per_class, or set data.profile: exponential (or step) "
                            "to shape the classes")
    if profile == "none":  # list-based sets are long-tailed already by their published lists
        held = _hold_out_last(labels, train.num_classes, cfg.val_per_class, np.zeros(len(labels), bool))
        short = [c for c in range(train.num_classes) if (labels[held] == c).sum() < cfg.val_per_class]
        if short:
            raise LongtailError(f"class {_class_name(train, short[0])} has {int(counts_raw[short[0]])} images, too few to "
                                f"hold out {cfg.val_per_class} for validation", "lower data.val_per_class")
        keep = np.flatnonzero(~held)
    else:
        if profile not in PROFILES:
            raise LongtailError(f"unknown profile '{profile}'", f"data.profile must be one of {sorted(PROFILES) + ['none']}")
        n_max = cfg.max_per_class or int(counts_raw.max())
        counts = PROFILES[profile](train.num_classes, n_max, cfg.imbalance_factor)
        keep = select_first_per_class(labels, counts)
        used = np.zeros(len(labels), bool)
        used[keep] = True
        held = _hold_out_last(labels, train.num_classes, cfg.val_per_class, used)
        if cfg.val_per_class:
            got = np.bincount(labels[held], minlength=train.num_classes)
            short = [c for c in range(train.num_classes) if got[c] < cfg.val_per_class]
            if len(short) == train.num_classes and not got.any():
                raise LongtailError(f"data.val_per_class = {cfg.val_per_class}, but the profile uses every training image "
                                    "of every class, so none is left for validation",
                                    "lower data.max_per_class below the largest class size, or set data.val_per_class: 0")
            if short:
                which = ", ".join(f"class {_class_name(train, c)} has {got[c]}" for c in short)
                notes.append(f"validation: {len(short)} class(es) have fewer than {cfg.val_per_class} images beyond the "
                             f"profile and give only what they have: {which}; training keeps the whole profile (set "
                             f"data.max_per_class to at most {int(counts_raw.min()) - cfg.val_per_class} for a balanced "
                             f"validation set)")
    if cfg.val_per_class:
        val = train.subset(np.flatnonzero(held))
    elif cfg.val_fraction and val is None:
        # a stratified share of the training images (after the profile), never the test set
        held_val = _stratified_share(labels[keep], train.num_classes, cfg.val_fraction, cfg.split_seed)
        val = train.subset(keep[held_val])
        keep = keep[~held_val]
        notes.append(f"validation: {int(held_val.sum())} training images held out, {cfg.val_fraction:g} of each class with "
                     f"two or more (data.val_fraction, seed {cfg.split_seed})")
    # (val_per_class's own note above names the classes it leaves short)
    for name, part in (("test", test), ("validation", None if cfg.val_per_class else val)):
        if part is None:
            continue
        few = [f"{train.class_names[c]} ({n})" for c, n in enumerate(part.class_counts()) if n < 5]
        if few:
            notes.append(f"warning: {len(few)} class(es) have fewer than 5 {name} images, so their accuracy moves in steps of "
                         f"20 points or more: {', '.join(few)}")
    train = train.subset(keep)
    if cfg.image_size and train.in_memory and train.images.shape[-1] != cfg.image_size and cfg.dataset not in ("image_folder",) \
            and not info.list_based:
        # arrays (MNIST, CIFAR): resized once, after the profile, so that a pretrained network
        # sees objects near the scale it learned them at
        notes.append(f"images resized from {train.images.shape[-1]} to {cfg.image_size} px (data.image_size; bilinear)")
        train, test, val = (None if s is None else resize_set(s, cfg.image_size) for s in (train, test, val))
    return Splits(train, test, val, info, notes, manifest=manifest, skipped=skipped)


def resize_set(images: LabeledImages, size: int, chunk: int = 1024) -> LabeledImages:
    """An in-memory set with every image resized to ``size`` × ``size`` (bilinear, antialiased
    when shrinking; rounded back to uint8)."""
    import torch.nn.functional as F

    x = images.images
    out = torch.empty(len(x), x.shape[1], size, size, dtype=torch.uint8)
    for i in range(0, len(x), chunk):
        part = F.interpolate(x[i:i + chunk].float(), size=(size, size), mode="bilinear", align_corners=False,
                             antialias=size < x.shape[-1])
        out[i:i + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return LabeledImages(out, images.labels, images.num_classes, list(images.class_names))


def _stratified_share(labels: np.ndarray, num_classes: int, fraction: float, seed: int) -> np.ndarray:
    """A mask of ``fraction`` of each class's positions (at least one where the class has two or
    more, never all of them), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), bool)
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) >= 2:
            n = min(len(idx) - 1, max(1, round(fraction * len(idx))))
            mask[rng.permutation(idx)[:n]] = True
    return mask


def _hold_out_last(labels: np.ndarray, num_classes: int, v: int, used: np.ndarray) -> np.ndarray:
    """Mask of the last ``v`` images of each class among those not ``used`` (fewer where fewer remain)."""
    held = np.zeros(len(labels), bool)
    if v:
        for c in range(num_classes):
            idx = np.flatnonzero((labels == c) & ~used)
            held[idx[max(len(idx) - v, 0):]] = True
    return held


def _class_name(images: LabeledImages, c: int) -> str:
    names = images.class_names
    return f"{c} ({names[c]})" if c < len(names) and names[c] != str(c) else str(c)
