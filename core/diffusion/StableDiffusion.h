#pragma once

// One loaded Stable Diffusion model: UNet, VAE, text encoder with its tokenizer and the noise
// schedule, read from a single checkpoint (.safetensors / .ckpt) and its ldm YAML. Training,
// previews, `hnstudio generate` and `probe sample` all go through this bundle, so every path
// uses the same loader and the same prompt handling.

#include "core/diffusion/ModelConfig.h"
#include "core/diffusion/NoiseSchedule.h"
#include "core/diffusion/UNet.h"
#include "core/diffusion/Vae.h"
#include "core/text/PromptEncoder.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <QString>
#include <QStringList>

#include <memory>
#include <optional>

namespace studio {

struct StableDiffusionOptions
{
    QString checkpointPath;
    QString configPath;    // empty: the .yaml beside the checkpoint, else detection
    QString tokenizerPath; // empty: ClipTokenizer::locate() next to the checkpoint and beyond
    c10::Device device = c10::kCPU;
    // Weights of the frozen model. fp16 is for CUDA only; the hypernetwork always trains in fp32.
    at::ScalarType dtype = at::kFloat;
    int clipSkip = 0; // 0: the model's own layer (SD1 last, SD2 penultimate)
    bool loadVae = true;
    bool loadTextEncoder = true;
};

class StableDiffusion
{
public:
    // Throws studio::Error naming the file and what is wrong with it.
    static std::unique_ptr<StableDiffusion> load(const StableDiffusionOptions& options);

    const StableDiffusionOptions& options() const { return m_options; }
    const ModelConfig& config() const { return m_config; }
    c10::Device device() const { return m_options.device; }
    at::ScalarType dtype() const { return m_options.dtype; }
    Parameterization parameterization() const;
    const NoiseSchedule& schedule() const { return m_schedule; }

    UNetModel& unet() { return m_unet; }
    AutoencoderKL& vae();
    const PromptEncoder& promptEncoder() const;

    // prompts -> conditioning [B, 77k, C] on the model's device, float32 (no gradients).
    at::Tensor encodePrompts(const QStringList& prompts) const;

    // UNet output in float32 for float32 inputs, whatever the weights' dtype.
    at::Tensor denoise(const at::Tensor& x, const at::Tensor& timesteps, const at::Tensor& context);

    // image [B, 3, H, W] in [-1, 1] -> posterior of the scaled-down latent (unscaled moments).
    VaePosterior encodeImages(const at::Tensor& images);
    // latent (already multiplied by the scale factor) -> image in about [-1, 1], float32.
    at::Tensor decodeLatents(const at::Tensor& latents);

    int latentDownsampling() const;

    // The checkpoint's name (file stem) and webui short hash (first 10 hex digits of the file's
    // SHA-256), written into saved hypernetworks. The hash reads the whole file once, on first use.
    QString checkpointName() const;
    QString checkpointShortHash() const;

private:
    StableDiffusion() = default;

    StableDiffusionOptions m_options;
    ModelConfig m_config;
    NoiseSchedule m_schedule = NoiseSchedule::linear();
    UNetModel m_unet{nullptr};
    AutoencoderKL m_vae{nullptr};
    std::optional<PromptEncoder> m_promptEncoder;
    mutable QString m_shortHash;
};

// "cpu", "cuda", "cuda:1" -> a device; throws studio::Error naming the text when it is not one,
// or when CUDA is asked for and this build or machine has none.
c10::Device parseDevice(const QString& text);

// "fp32" / "fp16" / "bf16" -> dtype; throws studio::Error for anything else.
at::ScalarType parsePrecision(const QString& text);

} // namespace studio
