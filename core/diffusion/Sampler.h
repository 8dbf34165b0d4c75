#pragma once

// The samplers of previews and `hnstudio generate`, written from the original code
// (spec sd-architecture.md 5.4 and 5.5): ldm's DDIM and k-diffusion's Euler ancestral as the
// webui drives it, both with classifier-free guidance. Text-to-image on top of them, with the
// webui's seeding (one CPU generator per image, seed + i) and its infotext.

#include "core/diffusion/NoiseSchedule.h"
#include "core/diffusion/SamplerKind.h"

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <QString>

#include <functional>
#include <vector>

namespace studio {

class Hypernetwork;
class StableDiffusion;

struct SamplerSettings
{
    SamplerKind kind = SamplerKind::EulerAncestral;
    int steps = 20;
    double cfgScale = 7.0;
    double eta = -1.0; // -1: the sampler's default (DDIM 0, Euler a 1)
};

// Called after every sampler step with (done, total); return false to cancel (the sampler then
// throws studio::Error("cancelled")).
using SamplerProgress = std::function<bool(int, int)>;

// DDIM timesteps of ldm's "uniform" discretisation: range(0, T, T / steps) + 1.
std::vector<int64_t> ddimTimesteps(int steps, int trainingTimesteps = 1000);

// Runs the sampler from `noise` [B, 4, h, w] (unit-variance noise; Euler a scales it by sigma_max)
// with conditioning `cond` and `uncond` ([B, T, C] each, same T; uncond may have batch 1) and
// returns the final latent [B, 4, h, w] (still scaled by the VAE scale factor). `generator`
// draws the ancestral noise (Euler a, DDIM with eta > 0). No gradients; whatever hypernetworks
// the model's UNet runtime holds are applied. When cond and uncond differ in length T they run
// as separate UNet calls, as the webui does; at CFG scale 1 only cond runs, as in ldm.
at::Tensor sampleLatents(StableDiffusion& model, const SamplerSettings& settings,
                         const at::Tensor& noise, const at::Tensor& cond, const at::Tensor& uncond,
                         at::Generator& generator, const SamplerProgress& progress = {});

// The same with one generator per image (the webui's per-image seeds): row i of every fresh
// noise is drawn from generators[i] on that generator's device, then moved to the model's.
at::Tensor sampleLatents(StableDiffusion& model, const SamplerSettings& settings,
                         const at::Tensor& noise, const at::Tensor& cond, const at::Tensor& uncond,
                         std::vector<at::Generator>& generators,
                         const SamplerProgress& progress = {});

struct GenerationRequest
{
    QString prompt;
    QString negativePrompt;
    int64_t seed = 0; // image i uses seed + i, like the webui
    SamplerSettings sampler;
    int width = 512;
    int height = 512;
    int batchSize = 1;
};

struct GeneratedImages
{
    at::Tensor pixels;              // [B, H, W, 3] uint8 on the CPU
    std::vector<QString> infotexts; // webui "parameters" text, one per image
};

// Text to image with whatever hypernetworks are in the model's UNet runtime (named in the
// infotext by `hypernetworks`). Throws studio::Error for sizes that are not multiples of 8 (or
// of the model's latent factor) and when cancelled. Image i starts from at::randn([4, h, w])
// of a CPU generator seeded seed + i, which also draws its ancestral noise; pixels are
// clamp((x + 1) / 2, 0, 1) * 255 truncated, as the webui converts them.
GeneratedImages generateImages(StableDiffusion& model, const GenerationRequest& request,
                               const std::vector<const Hypernetwork*>& hypernetworks = {},
                               const SamplerProgress& progress = {});

// The webui's infotext: "PROMPT\nNegative prompt: NEG\nSteps: 20, Sampler: Euler a, CFG scale:
// 7, Seed: 1, Size: 512x512, Model hash: abcdef1234, Model: name, Hypernet: a, Hypernet strength:
// 1" (Negative line only when there is one). Several hypernetworks are listed in order, comma
// separated and quoted like every webui value holding a comma ("Hypernet: \"a, b\", Hypernet
// strength: \"1, 0.5\""). Batches add "Batch size" and "Batch pos", a non-default eta "Eta".
QString infotext(const GenerationRequest& request, int64_t seed, const QString& modelName,
                 const QString& modelHash, const std::vector<const Hypernetwork*>& hypernetworks);

} // namespace studio
