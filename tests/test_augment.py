"""Batch augmentation: crop + flip, and the SimCLR views against hand computations and
torch's own interpolation."""

import colorsys
import math

import pytest
import torch
import torch.nn.functional as F

from longtail.data import color
from longtail.data.augment import (color_jitter, gaussian_blur, normalize, random_crop_flip, random_grayscale,
                                   resized_crop, resized_crop_boxes, simclr_augment)


def test_crop_matches_padded_window_and_flip():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.uint8).view(2, 1, 5, 5)
    g = torch.Generator().manual_seed(3)
    out = random_crop_flip(x, 2, True, g)
    g = torch.Generator().manual_seed(3)
    dy = torch.randint(0, 5, (2,), generator=g)
    dx = torch.randint(0, 5, (2,), generator=g)
    flip = torch.rand(2, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        ref = padded[i, :, dy[i]:dy[i] + 5, dx[i]:dx[i] + 5]
        if flip[i]:
            ref = ref.flip(-1)
        assert torch.equal(out[i], ref)


def test_no_padding_no_flip_is_identity_and_normalize():
    x = torch.randint(0, 256, (4, 3, 6, 6), dtype=torch.uint8)
    assert torch.equal(random_crop_flip(x, 0, False, torch.Generator()), x)
    y = normalize(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8), (0.5,), (0.25,))
    assert torch.allclose(y, torch.full((1, 1, 2, 2), 2.0))


# ----------------------------------------------------------------------------- SimCLR views


def test_resized_crop_is_interpolate_of_each_crop():
    x = torch.rand(3, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[1, 2, 4, 3], [0, 0, 9, 7], [5, 1, 3, 5]])
    out = resized_crop(x, boxes)
    for k, (i, j, h, w) in enumerate(boxes.tolist()):
        ref = F.interpolate(x[k:k + 1, :, i:i + h, j:j + w], size=(9, 7), mode="bilinear", align_corners=False)
        assert torch.allclose(out[k], ref[0], atol=1e-6)


def test_resized_crop_boxes_fit_and_fall_back_to_the_central_box():
    g = torch.Generator().manual_seed(1)
    boxes = resized_crop_boxes(20000, 32, 32, (0.08, 1.0), (3 / 4, 4 / 3), g)
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    area = (h * w).float() / 1024
    assert area.min() >= 0.07 and area.max() <= 1.0  # the scale bounds, up to rounding the sides
    ratio = w.float() / h.float()
    assert ratio.min() >= 0.7 and ratio.max() <= 1.45
    # a 6 x 10 image cannot hold a square of its whole area: every draw fails, and the fallback
    # is the central 6 x 6 square, as in torchvision
    boxes = resized_crop_boxes(5, 6, 10, (1.0, 1.0), (1.0, 1.0), g)
    assert boxes.tolist() == [[0, 2, 6, 6]] * 5


def test_colour_operations_by_hand():
    x = torch.tensor([0.2, 0.6, 0.9]).view(1, 3, 1, 1).repeat(2, 1, 1, 2)
    assert torch.allclose(color.adjust_brightness(x, torch.tensor([0.5, 2.0]))[:, :, 0, 0],
                          torch.tensor([[0.1, 0.3, 0.45], [0.4, 1.0, 1.0]]))  # clamped at 1
    luma = 0.299 * 0.2 + 0.587 * 0.6 + 0.114 * 0.9
    assert torch.allclose(color.adjust_contrast(x, torch.zeros(2)), torch.full_like(x, luma))
    assert torch.allclose(color.adjust_saturation(x, torch.zeros(2)), torch.full_like(x, luma))
    # contrast 2: twice the distance from the mean grey level
    assert torch.allclose(color.adjust_contrast(x, torch.full((2,), 2.0))[0, :, 0, 0],
                          (2 * torch.tensor([0.2, 0.6, 0.9]) - luma).clamp(0, 1))
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert torch.allclose(color.adjust_hue(red, torch.tensor([1 / 3])), torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1), atol=1e-6)
    grey = torch.rand(2, 1, 4, 4)
    assert torch.equal(color.adjust_hue(grey, torch.tensor([0.3, -0.2])), grey)
    assert torch.equal(color.adjust_saturation(grey, torch.tensor([0.0, 3.0])), grey)


def test_hsv_matches_colorsys_and_round_trips():
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(2))
    hsv = color.rgb_to_hsv(x)
    for b, i, j in [(0, 0, 0), (1, 2, 3), (0, 4, 1)]:
        assert torch.allclose(hsv[b, :, i, j], torch.tensor(colorsys.rgb_to_hsv(*x[b, :, i, j].tolist())), atol=1e-6)
    assert torch.allclose(color.hsv_to_rgb(hsv), x, atol=1e-6)


def test_gaussian_blur_by_hand():
    delta = torch.zeros(1, 1, 5, 5)
    delta[0, 0, 2, 2] = 1
    out = gaussian_blur(delta, 1, torch.tensor([1.0]))
    w0 = 1 / (1 + 2 * math.exp(-0.5))  # the centre weight of the 3-tap kernel at sigma 1
    assert out[0, 0, 2, 2].item() == pytest.approx(w0 * w0, rel=1e-6)
    assert out.sum().item() == pytest.approx(1.0, rel=1e-6)
    flat = torch.full((2, 3, 6, 6), 0.4)
    assert torch.allclose(gaussian_blur(flat, 1, torch.tensor([0.1, 2.0])), flat)  # reflection: no dark border


def test_jitter_and_grey_probabilities_and_identities():
    x = torch.rand(4000, 3, 2, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(color_jitter(x, 2.0, 0.0, torch.Generator()), x)
    assert torch.allclose(color_jitter(x, 0.0, 1.0, torch.Generator()), x, atol=1e-5)
    changed = (color_jitter(x, 1.0, 0.8, torch.Generator().manual_seed(4)) - x).abs().amax((1, 2, 3)) > 1e-4
    assert abs(changed.float().mean().item() - 0.8) < 0.03
    g = random_grayscale(x, 0.2, torch.Generator().manual_seed(5))
    grey = (g[:, 0] == g[:, 1]).all((1, 2)) & (g[:, 1] == g[:, 2]).all((1, 2))
    assert abs(grey.float().mean().item() - 0.2) < 0.03


@pytest.mark.parametrize("channels", [1, 3])
def test_jitter_applies_each_images_operations_in_its_drawn_order(channels):
    """Each image gets its drawn factors in its drawn order, as if jittered alone; on grey images
    only brightness and contrast act (saturation and hue need colour), with the same draws."""
    from longtail.data import color

    x = torch.rand(64, channels, 5, 5, generator=torch.Generator().manual_seed(8))
    out = color_jitter(x, 2.0, 0.8, torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)  # the same draws, in the same order, as color_jitter makes them
    factors = torch.stack([2.6 * torch.rand(64, generator=g, dtype=torch.float64) for _ in range(3)]
                          + [-0.4 + 0.8 * torch.rand(64, generator=g, dtype=torch.float64)], 1)
    order = torch.rand(64, 4, generator=g).argsort(1)
    on = torch.rand(64, generator=g) < 0.8
    ops = (color.adjust_brightness, color.adjust_contrast, color.adjust_saturation, color.adjust_hue)
    for i in range(64):
        want = x[i:i + 1]
        for k in order[i].tolist() if on[i] else []:
            want = ops[k](want, factors[i, k:k + 1])
        assert torch.allclose(out[i:i + 1], want, atol=1e-6), i


def test_simclr_views_are_seeded_in_range_and_keep_channels():
    x = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(6))
    a = simclr_augment(x, 2.0, torch.Generator().manual_seed(7))
    b = simclr_augment(x, 2.0, torch.Generator().manual_seed(7))
    c = simclr_augment(x, 2.0, torch.Generator().manual_seed(8))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1 + 1e-6
    # normalize takes the float view as [0, 1]
    assert torch.allclose(normalize(a, (0.5,), (0.5,)), (a - 0.5) / 0.5)
