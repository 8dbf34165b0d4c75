#pragma once

// The Stable Diffusion 1.x / 2.x UNet (ldm openaimodel.UNetModel with SpatialTransformers),
// with the hypernetwork hook on the k and v context of every attention layer.
//
// Submodules are registered under the ldm names, so named_parameters() yields the checkpoint
// keys below `model.diffusion_model.` (spec sd-architecture.md section 1.9).

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <QString>
#include <QVariantMap>

#include <memory>
#include <vector>

namespace studio {

class Hypernetwork;

struct UNetConfig
{
    int inChannels = 4;
    int outChannels = 4;
    int modelChannels = 320;
    std::vector<int> channelMult = {1, 2, 4, 4};
    int numResBlocks = 2;
    std::vector<int> attentionResolutions = {4, 2, 1};
    int numHeads = 8;         // used when numHeadChannels == -1 (SD1)
    int numHeadChannels = -1; // fixed head width (SD2: 64)
    bool legacy = false;
    int transformerDepth = 1;
    int contextDim = 768;
    bool useLinearInTransformer = false; // SD2: proj_in/proj_out are Linear

    // (heads, head width) of a transformer of width `channels` (spec 1.4).
    std::pair<int, int> headsFor(int channels) const;

    // From ldm's `unet_config.params` names (model_channels, channel_mult, num_heads, ...);
    // missing keys keep their defaults. Throws studio::Error naming a key of the wrong type.
    static UNetConfig fromLdmParams(const QVariantMap& params);
};

enum class AttentionKind
{
    Plain,  // softmax(q k^T) v in one piece
    Sliced, // the same, a slice of queries at a time: bounded memory
    Sdpa,   // at::scaled_dot_product_attention where LibTorch has it (2.x), else Plain
};

// State every attention layer of one UNet shares.
struct UNetRuntime
{
    // Applied in order to the k and v context of every attention layer (webui's
    // loaded_hypernetworks). Not owned; the caller keeps them alive while the UNet runs.
    std::vector<const Hypernetwork*> hypernetworks;
    AttentionKind attention = AttentionKind::Plain;
    // Queries per slice for Sliced attention; 0 picks a size that keeps a slice's score
    // matrix near 64 MiB.
    int64_t sliceSize = 0;
    // Recompute each UNet block in the backward pass instead of keeping its activations.
    bool gradientCheckpointing = false;
};

class CrossAttentionImpl : public torch::nn::Module
{
public:
    CrossAttentionImpl(int queryWidth, int contextWidth, int heads, int headWidth,
                       std::shared_ptr<const UNetRuntime> runtime);

    /// x [B, N, queryWidth], context [B, M, contextWidth] or undefined (self-attention)
    /// -> [B, N, queryWidth]
    at::Tensor forward(const at::Tensor& x, const at::Tensor& context);

    torch::nn::Linear to_q{nullptr};
    torch::nn::Linear to_k{nullptr};
    torch::nn::Linear to_v{nullptr};
    torch::nn::ModuleList to_out{nullptr};

private:
    int m_heads;
    int m_headWidth;
    std::shared_ptr<const UNetRuntime> m_runtime;
};
TORCH_MODULE(CrossAttention);

class BasicTransformerBlockImpl : public torch::nn::Module
{
public:
    BasicTransformerBlockImpl(int width, int contextDim, int heads, int headWidth,
                              std::shared_ptr<const UNetRuntime> runtime);

    /// x [B, N, width], context [B, M, contextDim] -> [B, N, width]
    at::Tensor forward(const at::Tensor& x, const at::Tensor& context);

private:
    CrossAttention m_attn1{nullptr};
    CrossAttention m_attn2{nullptr};
    torch::nn::ModuleList m_feedForward{nullptr}; // ff.net: GEGLU, Dropout, Linear
    torch::nn::LayerNorm m_norm1{nullptr};
    torch::nn::LayerNorm m_norm2{nullptr};
    torch::nn::LayerNorm m_norm3{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

class UNetModelImpl : public torch::nn::Module
{
public:
    explicit UNetModelImpl(const UNetConfig& config);

    /// x [B, inChannels, h, w], timesteps [B] (real values), context [B, T, contextDim]
    /// -> [B, outChannels, h, w]. h and w should be multiples of 2^(levels-1); other sizes are
    /// handled as the webui does (the upsampled features are resized to their skip's size).
    at::Tensor forward(const at::Tensor& x, const at::Tensor& timesteps, const at::Tensor& context);

    const UNetConfig& config() const { return m_config; }
    UNetRuntime& runtime() { return *m_runtime; }

private:
    UNetConfig m_config;
    std::shared_ptr<UNetRuntime> m_runtime;
    torch::nn::Sequential m_timeEmbed{nullptr};
    torch::nn::ModuleList m_inputBlocks{nullptr};
    std::shared_ptr<torch::nn::Module> m_middleBlock; // a UNetBlock: keys middle_block.{0,1,2}
    torch::nn::ModuleList m_outputBlocks{nullptr};
    torch::nn::Sequential m_out{nullptr};
};
TORCH_MODULE(UNetModel);

// The sinusoidal timestep embedding of ldm (cos first, then sin), computed in float32.
/// timesteps [B] -> [B, dim]
at::Tensor timestepEmbedding(const at::Tensor& timesteps, int dim);

// softmax(q k^T * scale) v for q [B*H, N, d], k and v [B*H, M, d], computed as `kind` says.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                     AttentionKind kind, int64_t sliceSize);

} // namespace studio
