#pragma once

// The Stable Diffusion VAE: ldm's AutoencoderKL (Encoder, Decoder, quant_conv, post_quant_conv)
// and its DiagonalGaussianDistribution posterior (spec sd-architecture.md section 2).
//
// Submodules are registered under the names of the ldm attributes, so named_parameters() yields
// exactly the checkpoint keys below `first_stage_model.` ("encoder.down.0.block.1.norm1.weight",
// "decoder.up.3.upsample.conv.weight", "quant_conv.bias"). As in ldm, the decoder's `up.{i}`
// index is the level, not the execution order: up.{n-1} runs first.
//
// The modules have no gradient-free mode of their own: wrap encoding for training in a
// torch::NoGradGuard, the VAE is frozen there.

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <QString>

#include <optional>
#include <vector>

namespace studio {

namespace io {
class TensorSource;
} // namespace io

// Where full single-file checkpoints keep the VAE; standalone VAE files use no prefix.
inline constexpr char kVaeCheckpointPrefix[] = "first_stage_model.";

// ldm's `ddconfig` plus `embed_dim` and the latent scale factor. Defaults are SD1/SD2's.
struct VaeConfig
{
    int ch = 128;
    std::vector<int> chMult = {1, 2, 4, 4};
    int numResBlocks = 2;
    int zChannels = 4;
    int embedDim = 4;
    int inChannels = 3;
    int outChannels = 3; // ldm's out_ch
    // Only decides at which levels attention blocks sit: a level of side `resolution >> i`
    // has them when that side is in attnResolutions (none for SD).
    int resolution = 256;
    std::vector<int> attnResolutions;
    // AutoencoderKL requires it (the encoder emits mean and logvar).
    bool doubleZ = true;
    // LatentDiffusion's scale_factor, applied outside the VAE; not stored in the weights.
    double scaleFactor = 0.18215;

    int levelCount() const { return static_cast<int>(chMult.size()); }
    // Image side / latent side: 2^(levels - 1), 8 for SD.
    int downsamplingFactor() const { return 1 << (levelCount() - 1); }
    // ldm tracks the side separately in the encoder (halving from resolution) and the decoder
    // (doubling from resolution / f), which differ when resolution is not a multiple of f.
    bool encoderLevelHasAttention(int level) const;
    bool decoderLevelHasAttention(int level) const;
};

// Throws studio::Error naming the field when `config` cannot describe an AutoencoderKL.
void validateVaeConfig(const VaeConfig& config);

// `first_stage_model.` when `source` holds a full checkpoint's VAE, "" for a standalone VAE
// file. Throws studio::Error when it holds neither (naming the Diffusers layout, which uses
// other key names and is not supported).
QString findVaePrefix(const io::TensorSource& source);

// Reads the config from the key names and shapes under `prefix`: ch, inChannels (conv_in),
// chMult and numResBlocks (encoder.down.*), zChannels (decoder.conv_in), doubleZ
// (encoder.conv_out), embedDim (post_quant_conv), outChannels (decoder.conv_out) and which
// levels hold attention blocks. Not in the weights, so left at the defaults: resolution (the
// detected attention levels are expressed as attnResolutions relative to it), scaleFactor,
// dropout (always 0 here; no effect in eval), resamp_with_conv (assumed true), tanh_out and
// give_pre_end (assumed false). Throws studio::Error naming the key when one is missing.
VaeConfig detectVaeConfig(const io::TensorSource& source, const QString& prefix);

// mean and logvar of the posterior, each [B, embedDim, H/f, W/f].
struct VaePosterior
{
    at::Tensor mean;
    at::Tensor logvar; // clamped to [-30, 20] like ldm's DiagonalGaussianDistribution

    at::Tensor std() const;
    // mean + std * N(0, I), drawn from `generator` (the default generator when not given).
    at::Tensor sample(std::optional<at::Generator> generator = std::nullopt) const;
};

// ldm ResnetBlock without time embedding: GN, swish, 3x3 conv, GN, swish, 3x3 conv, plus the
// input (through a 1x1 `nin_shortcut` when the width changes).
class VaeResnetBlockImpl : public torch::nn::Module
{
public:
    VaeResnetBlockImpl(int inChannels, int outChannels);

    /// x [B, inChannels, H, W] -> [B, outChannels, H, W]
    at::Tensor forward(const at::Tensor& x);

    torch::nn::GroupNorm norm1{nullptr};
    torch::nn::Conv2d conv1{nullptr};
    torch::nn::GroupNorm norm2{nullptr};
    torch::nn::Conv2d conv2{nullptr};
    torch::nn::Conv2d nin_shortcut{nullptr}; // only when the width changes
};

TORCH_MODULE(VaeResnetBlock);

// ldm AttnBlock: single-head self-attention over all spatial positions, scaled by c^-0.5.
class VaeAttnBlockImpl : public torch::nn::Module
{
public:
    explicit VaeAttnBlockImpl(int channels);

    /// x [B, C, H, W] -> [B, C, H, W]
    at::Tensor forward(const at::Tensor& x);

    torch::nn::GroupNorm norm{nullptr};
    torch::nn::Conv2d q{nullptr};
    torch::nn::Conv2d k{nullptr};
    torch::nn::Conv2d v{nullptr};
    torch::nn::Conv2d proj_out{nullptr};
};

TORCH_MODULE(VaeAttnBlock);

// ldm Downsample (with conv): zero-pad right and bottom by 1, then a stride-2 3x3 conv.
class VaeDownsampleImpl : public torch::nn::Module
{
public:
    explicit VaeDownsampleImpl(int channels);

    /// x [B, C, H, W] -> [B, C, floor(H/2), floor(W/2)]
    at::Tensor forward(const at::Tensor& x);

    torch::nn::Conv2d conv{nullptr};
};

TORCH_MODULE(VaeDownsample);

// ldm Upsample (with conv): nearest x2, then a 3x3 conv.
class VaeUpsampleImpl : public torch::nn::Module
{
public:
    explicit VaeUpsampleImpl(int channels);

    /// x [B, C, H, W] -> [B, C, 2H, 2W]
    at::Tensor forward(const at::Tensor& x);

    torch::nn::Conv2d conv{nullptr};
};

TORCH_MODULE(VaeUpsample);

// One resolution level (`down.{i}` / `up.{i}`): ResnetBlocks, each followed by an AttnBlock when
// the level has attention, then the resampling conv when there is one.
class VaeLevelImpl : public torch::nn::Module
{
public:
    enum class Resample
    {
        None,
        Down,
        Up,
    };

    VaeLevelImpl(int inChannels, int outChannels, int blockCount, bool attention,
                 Resample resample);

    /// x [B, inChannels, H, W] -> [B, outChannels, H', W'] (H' = H, floor(H/2) or 2H)
    at::Tensor forward(const at::Tensor& x);

    torch::nn::ModuleList block{nullptr};
    torch::nn::ModuleList attn{nullptr}; // empty without attention, as in ldm
    VaeDownsample downsample{nullptr};
    VaeUpsample upsample{nullptr};
};

TORCH_MODULE(VaeLevel);

// `mid`: block_1, attn_1, block_2 at the lowest resolution (always with attention).
class VaeMidImpl : public torch::nn::Module
{
public:
    explicit VaeMidImpl(int channels);

    /// x [B, C, H, W] -> [B, C, H, W]
    at::Tensor forward(const at::Tensor& x);

    VaeResnetBlock block_1{nullptr};
    VaeAttnBlock attn_1{nullptr};
    VaeResnetBlock block_2{nullptr};
};

TORCH_MODULE(VaeMid);

class VaeEncoderImpl : public torch::nn::Module
{
public:
    explicit VaeEncoderImpl(const VaeConfig& config);

    /// image [B, inChannels, H, W] -> [B, 2 * zChannels (zChannels without doubleZ), H/f, W/f]
    /// (f = downsamplingFactor; each level floors odd sides)
    at::Tensor forward(const at::Tensor& image);

    torch::nn::Conv2d conv_in{nullptr};
    torch::nn::ModuleList down{nullptr}; // of VaeLevel, index = level
    VaeMid mid{nullptr};
    torch::nn::GroupNorm norm_out{nullptr};
    torch::nn::Conv2d conv_out{nullptr};
};

TORCH_MODULE(VaeEncoder);

class VaeDecoderImpl : public torch::nn::Module
{
public:
    explicit VaeDecoderImpl(const VaeConfig& config);

    /// z [B, zChannels, h, w] -> image [B, outChannels, h*f, w*f], raw (not clamped)
    at::Tensor forward(const at::Tensor& z);

    torch::nn::Conv2d conv_in{nullptr};
    VaeMid mid{nullptr};
    torch::nn::ModuleList up{nullptr}; // of VaeLevel, index = level; runs from the last
    torch::nn::GroupNorm norm_out{nullptr};
    torch::nn::Conv2d conv_out{nullptr};
};

TORCH_MODULE(VaeDecoder);

class AutoencoderKLImpl : public torch::nn::Module
{
public:
    explicit AutoencoderKLImpl(const VaeConfig& config);

    /// image [B, inChannels, H, W] in [-1, 1] -> posterior mean/logvar [B, embedDim, H/f, W/f]
    VaePosterior encode(const at::Tensor& image);

    /// z [B, embedDim, h, w] (unscaled) -> image [B, outChannels, h*f, w*f], raw (not clamped)
    at::Tensor decode(const at::Tensor& z);

    /// posterior sample or mean [B, embedDim, h, w] -> diffusion latent (times scaleFactor)
    at::Tensor scaleLatent(const at::Tensor& z) const;

    /// diffusion latent [B, embedDim, h, w] -> image, like LatentDiffusion.decode_first_stage
    /// (multiplies by 1/scaleFactor, then decodes)
    at::Tensor decodeLatent(const at::Tensor& latent);

    const VaeConfig& config() const { return m_config; }

    VaeEncoder encoder{nullptr};
    VaeDecoder decoder{nullptr};
    torch::nn::Conv2d quant_conv{nullptr};
    torch::nn::Conv2d post_quant_conv{nullptr};

private:
    VaeConfig m_config;
};

TORCH_MODULE(AutoencoderKL);

// Builds the VAE described by the weights under `prefix` (detectVaeConfig; scaleFactor from the
// argument), loads them strictly and returns it in eval mode on the CPU in float32. Attention
// q/k/v/proj_out weights stored as 2-D [c, c] (some converted files) are accepted. Throws
// studio::Error naming the file and key when a tensor is missing or has the wrong shape, or
// when a VAE key under `prefix` (encoder.*, decoder.*, *quant_conv.*) is left unused, which
// means the config is wrong. Other keys under the prefix are ignored.
AutoencoderKL loadVae(const io::TensorSource& source, const QString& prefix,
                      double scaleFactor = VaeConfig().scaleFactor);

// The same with a config given instead of detected.
AutoencoderKL loadVae(const io::TensorSource& source, const QString& prefix,
                      const VaeConfig& config);

} // namespace studio
