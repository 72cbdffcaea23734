"""The torchvision reference path: the same config as a classic ``DataLoader``.

``reference_loader(cfg, split)`` builds torchvision's ``ImageFolder`` with torchvision's
transforms for the recipe the DALI graphs implement, the same normalization (including
``source: stats`` and ``mode: global``), output dtype and memory format, and the same
``(images, labels)`` contract. It is what the parity suite holds DALI to, and the baseline
of ``dalinorm bench``.
"""

from __future__ import annotations

import os
from typing import Any

from dalinorm.config import Config
from dalinorm.data.arrays import array_full_scale, load_array
from dalinorm.data.listing import ImageSource
from dalinorm.errors import DatasetError
from dalinorm.pipelines.arrays import spread_channels
from dalinorm.pipelines.kinds import LUMA_WEIGHTS
from dalinorm.pipelines.kinds import full_scale_of
from dalinorm.pipelines.normalize import per_image_std_floor
from dalinorm.pipelines.usable import usable_listing
from dalinorm.stats.normalization import resolve_normalization

__all__ = ["ClipChannels", "KeepBackground", "PerImageStandardize", "reference_augmentations",
           "reference_loader", "reference_transform"]


class OpenRGB:
    """PIL loader for the datasets: RGB, or grayscale with ``channels=1`` (PIL's
    ``convert("L")``, the rule the graphs apply in integers), EXIF orientation applied or not
    (picklable, so DataLoader workers can be spawned)."""

    def __init__(self, exif: bool, channels: int = 3) -> None:
        self.exif = exif
        self.mode = "L" if channels == 1 else "RGB"

    def __call__(self, source):
        """``source``: a path (torchvision's ``ImageFolder`` hands over paths), or where an
        image's bytes are (:meth:`SplitListing.source`: a file or a member of a pack)."""
        import io

        from PIL import Image, ImageOps

        if not isinstance(source, ImageSource):
            source = ImageSource(str(source))
        handle = io.BytesIO(source.read()) if source.in_tar else open(source.path, "rb")
        with handle:
            img = Image.open(handle)
            if self.exif:
                img = ImageOps.exif_transpose(img)
            return img.convert(self.mode)


def open_rgb(exif: bool, channels: int = 3) -> OpenRGB:
    return OpenRGB(exif, channels)


def open_image(cfg: Config):
    """The loader of the config's image kind: PIL (8-bit RGB or "L") or :class:`Open16`."""
    if cfg.data.dtype == "uint16":
        return Open16(cfg.data.channels)
    return OpenRGB(cfg.data.exif == "apply", cfg.data.channels)


class Open16:
    """``data.dtype: uint16``: a 16-bit PNG or TIFF → uint16 [C, H, W] tensor with
    ``channels`` channels, read exactly and independently of DALI (PIL's ``convert`` clips
    16-bit images to 8 bits and has no 16-bit RGB mode): PNG with torchvision's libpng
    decoder (``ImageReadMode.UNCHANGED``), TIFF with PIL's ``I;16`` modes. Alpha is dropped;
    gray → RGB replicates, RGB → gray is PIL's ``convert("L")`` integer rule
    (:data:`~dalinorm.pipelines.kinds.LUMA_WEIGHTS`). EXIF orientation is not applied
    (16-bit PNG and TIFF carry none in practice). Picklable for workers."""

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def __call__(self, source):
        import io

        import numpy as np
        import torch

        if not isinstance(source, ImageSource):
            source = ImageSource(str(source))
        data = source.read()
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            from PIL import Image

            with Image.open(io.BytesIO(data)) as img:
                if not img.mode.startswith("I;16"):  # PIL reads 16-bit TIFF as gray only
                    raise DatasetError(f"{source.path}: a {img.mode} TIFF, which the reference "
                                       "path cannot read as 16 bits (PIL reads 16-bit TIFF as "
                                       "grayscale I;16 only); store 16-bit RGB as PNG")
                array = np.array(img)  # I;16, I;16B: uint16 [H, W]
            planes = torch.from_numpy(array.astype(np.int64)).reshape(array.shape[0], array.shape[1], -1)
            planes = planes.permute(2, 0, 1)
        else:
            from torchvision.io import ImageReadMode, decode_image

            raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            planes = decode_image(raw, mode=ImageReadMode.UNCHANGED).to(torch.int64)
        planes = planes[:3] if planes.shape[0] >= 3 else planes[:1]  # drop alpha
        if self.channels == 3 and planes.shape[0] == 1:
            planes = planes.expand(3, -1, -1)
        elif self.channels == 1 and planes.shape[0] == 3:
            kr, kg, kb = LUMA_WEIGHTS
            planes = (planes[0:1] * kr + planes[1:2] * kg + planes[2:3] * kb + 2**15) // 2**16
        return planes.to(torch.int32).to(torch.uint16).contiguous()


class PerImageStandardize:
    """``normalize.mode: per_image`` on a float [C, H, W] tensor on the [0, 1] scale: minus its
    mean, divided by max(its population std, 1/sqrt(values)) over all pixels and channels
    (TensorFlow's ``per_image_standardization``), in float32 (picklable for workers)."""

    def __call__(self, image):
        import torch

        x = image.to(torch.float32)
        floor = per_image_std_floor(x.numel())
        return (x - x.mean()) / x.std(correction=0).clamp_min(floor)


class ClipChannels:
    """``normalize.mode: percentile``'s clip on a float [C, H, W] tensor on the [0, 1] scale:
    each channel clamped to its [low, high] (picklable for workers)."""

    def __init__(self, low, high) -> None:
        self.low, self.high = list(low), list(high)

    def __call__(self, image):
        import torch

        low = torch.tensor(self.low, dtype=image.dtype).view(-1, 1, 1)
        high = torch.tensor(self.high, dtype=image.dtype).view(-1, 1, 1)
        return torch.clamp(image, low, high)


class LoadArray:
    """``data.format: numpy`` / ``tiff``: a ``.npy`` file or a TIFF → float32 [C, H, W]
    tensor on the [0, 1] scale (x / 255 for uint8, x / 65535 for uint16, float32 as stored),
    read with ``np.load`` or tifffile independently of DALI (picklable for workers)."""

    def __init__(self, layout: str, dtype: str, data_format: str = "numpy") -> None:
        self.layout, self.dtype, self.data_format = layout, dtype, data_format

    def __call__(self, source):
        import numpy as np
        import torch

        path = source.path if isinstance(source, ImageSource) else str(source)
        array = load_array(path, data_format=self.data_format, layout=self.layout).transpose(2, 0, 1)
        scaled = array.astype(np.float64) / array_full_scale(self.dtype)  # exact, then one rounding
        return torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32))


def reference_array_transform(cfg: Config, split: str):
    """torchvision's transform for arrays: float [C, H, W] tensor → normalized tensor, the
    same recipe as :func:`reference_transform` with C-length mean/std."""
    from torchvision.transforms import v2

    norm = resolve_normalization(cfg)
    if split == "train":
        geometry = [
            v2.RandomResizedCrop(cfg.train.size, scale=cfg.train.scale, ratio=cfg.train.ratio,
                                 antialias=True),
            v2.RandomHorizontalFlip(cfg.train.hflip),
        ]
    else:
        geometry = [v2.Resize(cfg.eval.resize_shorter, antialias=True), v2.CenterCrop(cfg.eval.crop)]
    channels = cfg.data.channels
    normalize = (PerImageStandardize() if norm.per_image
                 else v2.Normalize(mean=spread_channels(norm.mean, channels),
                                   std=spread_channels(norm.std, channels)))
    if norm.clipped:  # normalize.mode: percentile
        normalize = v2.Compose([ClipChannels(norm.clip_low, norm.clip_high), normalize])
    return v2.Compose([*geometry, normalize])


class KeepBackground:
    """``normalize.keep_background`` on a float [C, H, W] tensor on the [0, 1] scale: pixels
    equal to the background in every channel (compared in integer levels) keep its value,
    the others go through ``normalize`` (picklable for workers)."""

    def __init__(self, normalize, background, full_scale: float) -> None:
        self.normalize, self.background, self.full_scale = normalize, list(background), full_scale

    def __call__(self, image):
        import torch

        value = torch.tensor(self.background, dtype=torch.float32).view(-1, 1, 1)
        levels = torch.round(image.to(torch.float32) * self.full_scale)
        mask = (levels == torch.round(value * self.full_scale)).all(dim=0, keepdim=True)
        return torch.where(mask, value.to(image.dtype), self.normalize(image))


def reference_transform(cfg: Config, split: str):
    """torchvision's transform for ``split``: PIL image → normalized float CHW tensor."""
    import torch
    from torchvision.transforms import v2

    norm = resolve_normalization(cfg)
    # on PIL images torchvision hands the filter to PIL (BICUBIC: PIL's, a = -0.5), as the
    # presets of its references do; antialias is PIL's always
    mode = {"bilinear": v2.InterpolationMode.BILINEAR, "bicubic": v2.InterpolationMode.BICUBIC}
    if split == "train":
        geometry = [
            v2.RandomResizedCrop(cfg.train.size, scale=cfg.train.scale, ratio=cfg.train.ratio,
                                 interpolation=mode[cfg.train.interpolation], antialias=True),
            v2.RandomHorizontalFlip(cfg.train.hflip),
        ]
    else:
        geometry = [v2.Resize(cfg.eval.resize_shorter, interpolation=mode[cfg.eval.interpolation],
                              antialias=True), v2.CenterCrop(cfg.eval.crop)]
    normalize = (PerImageStandardize() if norm.per_image
                 else v2.Normalize(mean=list(norm.mean), std=list(norm.std)))
    if norm.clipped:
        normalize = v2.Compose([ClipChannels(norm.clip_low, norm.clip_high), normalize])
    if norm.keep_background is not None:
        normalize = KeepBackground(normalize, norm.keep_background, full_scale_of(cfg.data.dtype))
    before, after = reference_augmentations(cfg) if split == "train" else ([], [])
    if cfg.data.dtype == "uint16":
        # 16-bit: to float on the [0, 1] scale (x / 65535) first, then the geometry in float:
        # torchvision 0.29 resizes a uint16 tensor in float and truncates the result (the PIL
        # policies and colour jitter are 8-bit RGB only: config.py refuses them here)
        return v2.Compose([
            v2.ToDtype(torch.float32, scale=True),
            *geometry,
            normalize,
            *after,
        ])
    return v2.Compose([
        *geometry,
        *before,
        v2.PILToTensor(),
        v2.ToDtype(torch.float32, scale=True),
        normalize,
        *after,
    ])


def reference_augmentations(cfg: Config) -> tuple[list, list]:
    """torchvision's per-sample augmentations of the config, where its classification presets
    put them: (on the PIL image after crop and flip: ColorJitter, then the policy; after
    Normalize: RandomErasing). The policies' rotations, shears and translations use bilinear
    with fill 0, as the DALI graph does (DALI's warp has no bicubic; torchvision's presets pass
    the recipe's interpolation, timm picks bilinear or bicubic at random)."""
    from torchvision.transforms import v2

    before: list = []
    cj, aa, re = cfg.train.color_jitter, cfg.train.auto_augment, cfg.train.random_erase
    if any(v > 0 for v in (cj.brightness, cj.contrast, cj.saturation, cj.hue)):
        before.append(v2.ColorJitter(brightness=cj.brightness or None, contrast=cj.contrast or None,
                                     saturation=cj.saturation or None, hue=cj.hue or None))
    bilinear = v2.InterpolationMode.BILINEAR
    if aa.policy == "trivial_augment_wide":
        before.append(v2.TrivialAugmentWide(num_magnitude_bins=aa.num_magnitude_bins,
                                            interpolation=bilinear))
    elif aa.policy == "rand_augment":
        before.append(v2.RandAugment(num_ops=aa.num_ops, magnitude=aa.magnitude,
                                     num_magnitude_bins=aa.num_magnitude_bins, interpolation=bilinear))
    elif aa.policy == "auto_augment_imagenet":
        before.append(v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET, interpolation=bilinear))
    after = []
    if re.probability > 0:
        value = list(re.value) if len(re.value) == 3 else re.value[0]
        after.append(v2.RandomErasing(p=re.probability, scale=re.scale, ratio=re.ratio, value=value))
    return before, after


class _Collate:
    """Stack, then the configured dtype and memory format (picklable for worker processes).

    Images stay [N, C, H, W]-shaped; ``layout == "NHWC"`` stores them channels_last (NHWC
    memory), as ``DaliLoader`` does."""

    def __init__(self, dtype: str, layout: str) -> None:
        self.dtype = dtype
        self.layout = layout

    def __call__(self, batch: list[tuple[Any, int]]):
        import torch

        images = torch.stack([img for img, _ in batch])
        if self.dtype == "float16":
            images = images.half()
        if self.layout == "NHWC":
            images = images.contiguous(memory_format=torch.channels_last)
        labels = torch.tensor([label for _, label in batch], dtype=torch.int64)
        return images, labels


def _unchanged(image):
    return image


class ScheduledSizeImages:
    """``train.size_schedule`` on the reference path: ``dataset[(index, size)]`` is the image
    at ``index`` through the train transform of a config whose ``train.size`` is ``size``
    (:class:`~dalinorm.integration.samplers.SizeScheduledSampler` hands the pairs over); one
    transform per size, built when first needed (picklable for workers)."""

    def __init__(self, images, cfg: Config) -> None:
        self.images = images  # yields untransformed PIL images
        self.classes = images.classes
        self.cfg = cfg
        self._transforms: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]):
        import dataclasses

        index, size = key
        if size not in self._transforms:
            cfg = dataclasses.replace(self.cfg, train=dataclasses.replace(self.cfg.train, size=size))
            self._transforms[size] = reference_transform(cfg, "train")
        image, label = self.images[index]
        return self._transforms[size](image), label


class ListedImages:
    """(image, label) pairs of a listing that is not an ImageFolder (a file list, or a
    webdataset pack read member by member at its recorded offsets)."""

    def __init__(self, listing, transform, load) -> None:
        self.samples = [(listing.source(i), label) for i, label in enumerate(listing.labels)]
        self.classes = list(listing.classes)
        self.transform = transform
        self.load = load

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        return self.transform(self.load(path)), label


def reference_loader(
    cfg: Config,
    split: str = "val",
    *,
    num_workers: int | None = None,
    persistent_workers: bool = True,
    seed: int | None = None,
):
    """A torchvision ``DataLoader`` over ``split`` with the config's recipe and batch size.

    ``num_workers`` defaults to the machine's cores. Train shuffles (seeded from
    ``loader.seed``) and honours ``drop_last``; eval keeps ``ImageFolder`` order.
    """
    import torch
    from torchvision.datasets import ImageFolder

    # the same files as DaliLoader: same errors, and data.on_bad_file: skip honoured
    listing, _ = usable_listing(cfg, split)
    if cfg.data.reads_arrays:
        transform = reference_array_transform(cfg, split)
        load = LoadArray(cfg.data.layout, cfg.data.dtype, cfg.data.format)
    else:
        transform, load = reference_transform(cfg, split), open_image(cfg)
    scheduled = split == "train" and cfg.train.size_schedule is not None
    if scheduled:  # each epoch's transform is applied by ScheduledSizeImages
        transform = _unchanged
    if cfg.data.format == "imagefolder":
        usable = {str(f) for f in listing.files}
        dataset = ImageFolder(str(cfg.split_dir(split)), transform=transform, loader=load,
                              is_valid_file=usable.__contains__)
    else:
        dataset = ListedImages(listing, transform, load)
    workers = (os.cpu_count() or 1) if num_workers is None else num_workers
    training = split == "train"
    seed = cfg.loader.seed if seed is None else seed
    generator = torch.Generator().manual_seed(seed)
    sampler = None
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # each rank its share; call loader.sampler.set_epoch(epoch) to reshuffle per epoch
        sampler = torch.utils.data.DistributedSampler(
            dataset, shuffle=training, seed=seed, drop_last=cfg.loader.drop_last if training else False)
    if training and cfg.loader.repeated_augment > 1:
        # torchvision's RASampler order, the one DaliLoader reads (integration/samplers.py)
        from dalinorm.integration.samplers import RepeatedAugmentationSampler

        distributed = sampler is not None
        sampler = RepeatedAugmentationSampler(
            len(dataset), repetitions=cfg.loader.repeated_augment, seed=seed,
            world_size=torch.distributed.get_world_size() if distributed else 1,
            rank=torch.distributed.get_rank() if distributed else 0)
    if scheduled:
        # each index goes to the dataset with its epoch's size; the order is the one without
        # a schedule (the same RandomSampler a shuffling DataLoader makes)
        from dalinorm.integration.samplers import SizeScheduledSampler

        inner = sampler or torch.utils.data.RandomSampler(dataset, generator=generator)
        sampler = SizeScheduledSampler(inner, cfg.train.size_schedule)
        dataset = ScheduledSizeImages(dataset, cfg)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.loader.batch_size,
        shuffle=training and sampler is None,
        sampler=sampler,
        drop_last=cfg.loader.drop_last if training else False,
        num_workers=workers,
        persistent_workers=persistent_workers and workers > 0,
        collate_fn=_Collate(cfg.output.dtype, cfg.output.layout),
        generator=generator,
        pin_memory=torch.cuda.is_available(),
    )
