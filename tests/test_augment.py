import torch

from longtail.data.augment import normalize, random_crop_flip


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
