#pragma once

// The VAE latents of a dataset, encoded once before training (spec hypernetworks.md 3.2).
// "once" keeps one sample per image and flip, "deterministic" keeps the posterior mean and
// "random" keeps the posterior and draws a new sample each time the image is used, from a
// stream the caller keys, so resumed runs draw the same samples.

#include "core/train/RunConfig.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace studio {

class Dataset;
class StableDiffusion;

class LatentCache
{
public:
    // Keeps references to `dataset` and `model`; both must outlive the cache.
    LatentCache(const Dataset& dataset, StableDiffusion& model, LatentSampling sampling,
                uint64_t seed);

    // Encodes every image (and its flipped copy when the dataset's flip probability is above 0)
    // that is not cached yet. `progress(done, total)` is called after each image; returning false
    // stops early and throws studio::Error("cancelled").
    void encodeAll(const std::function<bool(int, int)>& progress = {});

    // The latent of image `index` (flipped or not), [4, h, w], already multiplied by the VAE
    // scale factor, float32 on the CPU. `useKey` seeds the sample for "random" sampling and is
    // ignored otherwise. Encodes on demand when encodeAll() was not called.
    at::Tensor latent(int index, bool flip, uint64_t useKey);

    // Memory the cache holds, in bytes.
    int64_t bytes() const;

private:
    struct Entry
    {
        at::Tensor sample; // once / deterministic: the latent itself; random: the mean
        at::Tensor std;    // random only: the posterior's standard deviation
    };

    Entry encode(int index, bool flip);

    const Dataset& m_dataset;
    StableDiffusion& m_model;
    LatentSampling m_sampling;
    uint64_t m_seed;
    std::vector<Entry> m_plain;
    std::vector<Entry> m_flipped;
};

} // namespace studio
