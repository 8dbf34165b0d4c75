#include "core/data/LatentCache.h"

#include "core/Error.h"
#include "core/data/Dataset.h"
#include "core/diffusion/StableDiffusion.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace studio {

namespace {

// Key of the "once" samples (Dataset.h: streamSeed), distinct from the Trainer's and the
// Dataset's stream keys.
constexpr uint64_t kOnceStream = 0x6f6e6365ULL;

at::Generator cpuGenerator(uint64_t seed)
{
    return at::make_generator<at::CPUGeneratorImpl>(seed);
}

} // namespace

LatentCache::LatentCache(const Dataset& dataset, StableDiffusion& model, LatentSampling sampling,
                         uint64_t seed)
    : m_dataset(dataset), m_model(model), m_sampling(sampling), m_seed(seed),
      m_plain(static_cast<size_t>(dataset.size())), m_flipped(static_cast<size_t>(dataset.size()))
{
}

void LatentCache::encodeAll(const std::function<bool(int, int)>& progress)
{
    // Flipped copies cost a second encoding and as much memory again: only when used.
    const bool withFlips = m_dataset.options().flipProbability > 0.0;
    const int total = m_dataset.size() * (withFlips ? 2 : 1);
    int done = 0;

    for (int index = 0; index < m_dataset.size(); ++index) {
        for (const bool flip : {false, true}) {
            if (flip && !withFlips) {
                continue;
            }
            Entry& entry = (flip ? m_flipped : m_plain)[static_cast<size_t>(index)];
            if (!entry.sample.defined()) {
                entry = encode(index, flip);
            }
            ++done;
            if (progress && !progress(done, total)) {
                throw Error(QStringLiteral("cancelled"));
            }
        }
    }
}

at::Tensor LatentCache::latent(int index, bool flip, uint64_t useKey)
{
    Entry& entry = (flip ? m_flipped : m_plain).at(static_cast<size_t>(index));
    if (!entry.sample.defined()) {
        entry = encode(index, flip);
    }
    if (m_sampling != LatentSampling::Random) {
        return entry.sample;
    }

    // A new sample per use, drawn on the CPU so that every device gives the same one.
    const at::Tensor noise = at::randn(entry.sample.sizes(), cpuGenerator(useKey), at::kFloat);
    return m_model.vae()->scaleLatent(entry.sample + entry.std * noise);
}

int64_t LatentCache::bytes() const
{
    int64_t total = 0;
    for (const std::vector<Entry>* entries : {&m_plain, &m_flipped}) {
        for (const Entry& entry : *entries) {
            total += entry.sample.defined() ? static_cast<int64_t>(entry.sample.nbytes()) : 0;
            total += entry.std.defined() ? static_cast<int64_t>(entry.std.nbytes()) : 0;
        }
    }
    return total;
}

LatentCache::Entry LatentCache::encode(int index, bool flip)
{
    // One image at a time: with no-crop, the images of the dataset differ in size.
    const at::Tensor pixels =
        m_dataset.loadPixels(index, flip).unsqueeze(0).to(m_model.device(), m_model.dtype());
    const VaePosterior encoded = m_model.encodeImages(pixels);

    // Float32 on the CPU whatever the model runs in: the cache outlives the VAE's device use.
    VaePosterior posterior;
    posterior.mean = encoded.mean[0].to(at::kCPU, at::kFloat);
    posterior.logvar = encoded.logvar[0].to(at::kCPU, at::kFloat);

    Entry entry;
    switch (m_sampling) {
    case LatentSampling::Once: {
        const uint64_t flipKey = flip ? 1 : 0;
        const uint64_t seed =
            streamSeed(m_seed, {kOnceStream, static_cast<uint64_t>(index), flipKey});
        entry.sample = m_model.vae()->scaleLatent(posterior.sample(cpuGenerator(seed)));
        break;
    }
    case LatentSampling::Deterministic:
        entry.sample = m_model.vae()->scaleLatent(posterior.mean);
        break;
    case LatentSampling::Random:
        // Unscaled moments; latent() scales each sample, as ldm scales after sampling.
        entry.sample = posterior.mean;
        entry.std = posterior.std();
        break;
    }
    return entry;
}

} // namespace studio
