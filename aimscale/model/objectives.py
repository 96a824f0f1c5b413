"""Regression targets and the k-means codebook of the discrete-token objective."""

from __future__ import annotations

import torch

PATCH_NORM_EPS = 1e-6


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, K, C·p·p] in raster patch order; values ordered (C, p, p), the layout
    of the patch conv's weights."""
    batch, channels, height, width = images.shape
    p = patch_size
    x = images.reshape(batch, channels, height // p, p, width // p, p)
    x = x.permute(0, 2, 4, 1, 3, 5)  # [B, rows, cols, C, p, p]
    return x.reshape(batch, (height // p) * (width // p), channels * p * p)


def normalize_patches(
    patches: torch.Tensor, eps: float = PATCH_NORM_EPS, unbiased: bool = True
) -> torch.Tensor:
    """Per-patch normalisation: subtract the mean, divide by sqrt(var + eps), statistics over
    all values of the patch (channels pooled).

    The paper does not say which variance; the authors' training library uses the unbiased one
    (divides by n - 1, torch's default), the default here (`model.target_var=unbiased`). The
    population variance (divide by n) scales every target by sqrt(n / (n - 1)) up to eps: at
    patch 14 RGB that is 588/587 on the squared error, ≈ 0.17% on the absolute loss."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True, unbiased=unbiased)
    return (patches - mean) / torch.sqrt(var + eps)


def assign_tokens(vectors: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid (Euclidean) for each vector [..., D] -> [...] (long)."""
    flat = vectors.reshape(-1, vectors.shape[-1]).float()
    # ||x - c||² = ||x||² - 2 x·c + ||c||²; ||x||² does not change the argmin
    scores = flat @ codebook.float().T * 2 - (codebook.float() ** 2).sum(-1)[None]
    return scores.argmax(-1).reshape(vectors.shape[:-1])


def kmeans(
    vectors: torch.Tensor, num_clusters: int, iters: int = 25, seed: int = 0
) -> torch.Tensor:
    """Lloyd's k-means on [N, D] -> centroids [num_clusters, D] (at most `iters` updates).

    k-means++ initialisation from a local generator (the global RNG, which training checkpoints,
    is untouched); an empty cluster is re-seeded with the point farthest from its centroid.
    """
    vectors = vectors.float()
    count = vectors.shape[0]
    if count < num_clusters:
        raise ValueError(
            f"k-means needs at least num_tokens={num_clusters} patches, got {count}; pass more "
            "images to AIM.prepare or lower model.num_tokens"
        )
    centroids = _kmeans_plus_plus(vectors, num_clusters, torch.Generator().manual_seed(seed))
    previous = None
    for _ in range(iters):
        labels = assign_tokens(vectors, centroids)
        if previous is not None and torch.equal(labels, previous):
            break  # converged: another update would not move any centroid
        previous = labels
        sums = torch.zeros_like(centroids).index_add_(0, labels, vectors)
        sizes = torch.bincount(labels, minlength=num_clusters)
        filled = sizes > 0
        centroids[filled] = sums[filled] / sizes[filled, None].float()
        empty = (~filled).nonzero().flatten()
        if len(empty):
            dist = ((vectors - centroids[labels]) ** 2).sum(-1)
            centroids[empty] = vectors[dist.topk(len(empty)).indices]
    return centroids


def _kmeans_plus_plus(
    vectors: torch.Tensor, num_clusters: int, generator: torch.Generator
) -> torch.Tensor:
    """Seeds spread out: each next centroid drawn with probability ∝ squared distance."""
    first = torch.randint(len(vectors), (1,), generator=generator)
    centroids = [vectors[first[0]]]
    dist = ((vectors - centroids[0]) ** 2).sum(-1)
    for _ in range(num_clusters - 1):
        # inverse-CDF draw (torch.multinomial is slow over tens of thousands of categories)
        cdf = dist.double().cumsum(0)
        if cdf[-1] > 0:
            u = torch.rand(1, generator=generator, dtype=torch.float64) * cdf[-1]
            pick = int(torch.searchsorted(cdf, u).clamp(max=len(vectors) - 1)[0])
        else:  # fewer distinct points than clusters: duplicates are harmless
            pick = int(torch.randint(len(vectors), (1,), generator=generator)[0])
        centroids.append(vectors[pick])
        dist = torch.minimum(dist, ((vectors - vectors[pick]) ** 2).sum(-1))
    return torch.stack(centroids)
