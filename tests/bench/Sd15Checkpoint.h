#pragma once

// An SD1.5-shaped single-file checkpoint with random weights: the UNet, the VAE and the SD1 text
// encoder under the key names and shapes of the original files (spec sd-architecture.md 1.9, 2,
// 3.2), stored as F16 like the common "fp16" SD1.5 files. Shared by bench_make_sd15_checkpoint
// (the tool) and bench_checkpoint_load (which makes one when it is given no file).
//
// The names come from our own modules' named_parameters(), which mirror the ldm keys; the
// parameter counts are checked against the spec so a drift in the modules shows up here.

#include "core/diffusion/UNet.h"
#include "core/diffusion/Vae.h"
#include "core/io/SafeTensors.h"
#include "core/text/ClipTextEncoder.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/utils.h>

#include <QString>

#include <cstdint>
#include <utility>
#include <vector>

namespace studio::bench {

// Spec sd-architecture.md 1.10, 2 and 3.1.
inline constexpr int64_t kSd15UNetParameters = 859'520'964;
inline constexpr int64_t kSd15VaeParameters = 83'653'863;
inline constexpr int64_t kSd1TextParameters = 123'060'480;
inline constexpr int kClipContextLength = 77;

using NamedTensors = std::vector<std::pair<QString, at::Tensor>>;

struct ComponentSummary
{
    const char* name = "";
    int64_t parameters = 0;
    int64_t expectedParameters = 0;
    int64_t tensors = 0;
    int64_t f16Bytes = 0;

    bool countMatches() const { return parameters == expectedParameters; }
};

struct Sd15CheckpointSummary
{
    std::vector<ComponentSummary> components;
    int64_t tensors = 0;
    int64_t dataBytes = 0; // the tensors' bytes as stored (F16, plus position_ids in I64)

    bool countsMatch() const
    {
        for (const ComponentSummary& component : components) {
            if (!component.countMatches()) {
                return false;
            }
        }
        return true;
    }
};

inline VaeConfig sdVaeConfig()
{
    VaeConfig config;
    config.ch = 128;
    config.chMult = {1, 2, 4, 4};
    config.numResBlocks = 2;
    config.zChannels = 4;
    config.embedDim = 4;
    return config;
}

// Appends F16 copies of `module`'s parameters and buffers under `prefix` and counts them.
// The F16 copies own their memory, so the float32 module can be freed right after.
inline ComponentSummary appendF16(const torch::nn::Module& module, const QString& prefix,
                                  const char* name, int64_t expectedParameters, NamedTensors& out)
{
    ComponentSummary summary;
    summary.name = name;
    summary.expectedParameters = expectedParameters;
    torch::NoGradGuard noGrad;
    auto append = [&](const std::string& key, const at::Tensor& value) {
        at::Tensor half = value.detach().to(at::kHalf).contiguous();
        summary.f16Bytes += static_cast<int64_t>(half.nbytes());
        summary.tensors += 1;
        out.emplace_back(prefix + QString::fromStdString(key), std::move(half));
    };

    for (const auto& item : module.named_parameters(/*recurse=*/true)) {
        summary.parameters += item.value().numel();
        append(item.key(), item.value());
    }
    for (const auto& item : module.named_buffers(/*recurse=*/true)) {
        append(item.key(), item.value());
    }
    return summary;
}

// Builds each component in float32 with LibTorch's default initialisation (seeded), converts
// it to F16 and drops the float32 module before building the next, so the peak stays near the
// largest module (the UNet, 3.4 GB) plus the F16 result (2.1 GB).
inline NamedTensors makeSd15Tensors(uint64_t seed, Sd15CheckpointSummary& summary)
{
    torch::manual_seed(seed);
    NamedTensors tensors;

    {
        const UNetModel unet{UNetConfig{}};
        summary.components.push_back(appendF16(*unet, QStringLiteral("model.diffusion_model."),
                                               "UNet", kSd15UNetParameters, tensors));
    }
    {
        const AutoencoderKL vae{sdVaeConfig()};
        summary.components.push_back(appendF16(*vae, QLatin1String(kVaeCheckpointPrefix), "VAE",
                                               kSd15VaeParameters, tensors));
    }
    {
        const ClipTextEncoder text{ClipTextConfig::sd1()};
        summary.components.push_back(appendF16(*text, QLatin1String(kSd1TextPrefix), "text encoder",
                                               kSd1TextParameters, tensors));
    }

    // Real SD1.5 files carry this int64 buffer, which the loader must skip (spec 6).
    at::Tensor positionIds = at::arange(kClipContextLength, at::kLong).unsqueeze(0);
    summary.components.back().tensors += 1;
    summary.components.back().f16Bytes += static_cast<int64_t>(positionIds.nbytes());
    tensors.emplace_back(QLatin1String(kSd1TextPrefix) + QStringLiteral("embeddings.position_ids"),
                         std::move(positionIds));

    for (const ComponentSummary& component : summary.components) {
        summary.tensors += component.tensors;
        summary.dataBytes += component.f16Bytes;
    }
    return tensors;
}

// Makes the tensors and writes them to `path` (atomically). Throws studio::Error when the file
// cannot be written.
inline Sd15CheckpointSummary writeSd15Checkpoint(const QString& path, uint64_t seed)
{
    Sd15CheckpointSummary summary;
    const NamedTensors tensors = makeSd15Tensors(seed, summary);
    const std::map<QString, QString> metadata{
        {QStringLiteral("format"), QStringLiteral("pt")},
        {QStringLiteral("studio_bench"),
         QStringLiteral("SD1.5-shaped random weights, seed %1").arg(seed)}};
    io::writeSafeTensors(path, tensors, metadata);
    return summary;
}

} // namespace studio::bench
