#include "core/diffusion/UNet.h"

#include "core/Error.h"
#include "core/diffusion/BlockCheckpoint.h"
#include "core/hypernetwork/Hypernetwork.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/dropout.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>

namespace studio {

namespace {

constexpr double kGroupNormEpsilon = 1e-5;
constexpr double kTransformerNormEpsilon = 1e-6;
constexpr int kGroups = 32;

torch::nn::GroupNorm groupNorm(int channels, double epsilon)
{
    return torch::nn::GroupNorm(torch::nn::GroupNormOptions(kGroups, channels).eps(epsilon));
}

torch::nn::Conv2d conv3x3(int in, int out, int stride = 1)
{
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1));
}

torch::nn::Conv2d conv1x1(int in, int out)
{
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1));
}

// ldm ResBlock without scale-shift norm (spec 1.5).
class UNetResBlockImpl : public torch::nn::Module
{
public:
    UNetResBlockImpl(int inChannels, int outChannels, int embedWidth)
    {
        m_in = register_module("in_layers",
                               torch::nn::Sequential(groupNorm(inChannels, kGroupNormEpsilon),
                                                     torch::nn::SiLU(),
                                                     conv3x3(inChannels, outChannels)));
        m_emb = register_module(
            "emb_layers",
            torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(embedWidth, outChannels)));
        m_out = register_module("out_layers",
                                torch::nn::Sequential(groupNorm(outChannels, kGroupNormEpsilon),
                                                      torch::nn::SiLU(), torch::nn::Dropout(0.0),
                                                      conv3x3(outChannels, outChannels)));
        if (inChannels != outChannels) {
            m_skip = register_module("skip_connection", conv1x1(inChannels, outChannels));
        }
    }

    /// x [B, in, h, w], emb [B, E] -> [B, out, h, w]
    at::Tensor forward(const at::Tensor& x, const at::Tensor& emb)
    {
        at::Tensor h = m_in->forward(x);
        h = h + m_emb->forward(emb).unsqueeze(-1).unsqueeze(-1);
        h = m_out->forward(h);
        return (m_skip ? m_skip->forward(x) : x) + h;
    }

private:
    torch::nn::Sequential m_in{nullptr};
    torch::nn::Sequential m_emb{nullptr};
    torch::nn::Sequential m_out{nullptr};
    torch::nn::Conv2d m_skip{nullptr};
};
TORCH_MODULE(UNetResBlock);

// GEGLU: proj to 2 x hidden, value * GELU(gate), value first (spec 1.7).
class GegluImpl : public torch::nn::Module
{
public:
    GegluImpl(int width, int hidden)
    {
        m_proj = register_module("proj", torch::nn::Linear(width, hidden * 2));
    }

    /// x [..., width] -> [..., hidden]
    at::Tensor forward(const at::Tensor& x)
    {
        const std::vector<at::Tensor> halves = m_proj->forward(x).chunk(2, /*dim=*/-1);
        return halves[0] * at::gelu(halves[1]);
    }

private:
    torch::nn::Linear m_proj{nullptr};
};
TORCH_MODULE(Geglu);

class SpatialTransformerImpl : public torch::nn::Module
{
public:
    SpatialTransformerImpl(int channels, const UNetConfig& config,
                           const std::shared_ptr<const UNetRuntime>& runtime)
        : m_linear(config.useLinearInTransformer)
    {
        const auto [heads, headWidth] = config.headsFor(channels);
        const int inner = heads * headWidth;
        m_norm = register_module("norm", groupNorm(channels, kTransformerNormEpsilon));
        if (m_linear) {
            m_projInLinear = register_module("proj_in", torch::nn::Linear(channels, inner));
        } else {
            m_projInConv = register_module("proj_in", conv1x1(channels, inner));
        }
        m_blocks = register_module("transformer_blocks", torch::nn::ModuleList());
        for (int d = 0; d < config.transformerDepth; ++d) {
            m_blocks->push_back(
                BasicTransformerBlock(inner, config.contextDim, heads, headWidth, runtime));
        }
        if (m_linear) {
            m_projOutLinear = register_module("proj_out", torch::nn::Linear(inner, channels));
        } else {
            m_projOutConv = register_module("proj_out", conv1x1(inner, channels));
        }
    }

    /// x [B, C, h, w], context [B, T, D] -> [B, C, h, w]
    at::Tensor forward(const at::Tensor& x, const at::Tensor& context)
    {
        const int64_t batch = x.size(0);
        const int64_t height = x.size(2);
        const int64_t width = x.size(3);
        at::Tensor h = m_norm->forward(x);
        if (!m_linear) {
            h = m_projInConv->forward(h);
        }
        // [B, C, h, w] -> tokens [B, h*w, C], token n = y * w + x
        h = h.flatten(2).transpose(1, 2);
        if (m_linear) {
            h = m_projInLinear->forward(h);
        }

        for (const auto& block : *m_blocks) {
            h = block->as<BasicTransformerBlock>()->forward(h, context);
        }

        if (m_linear) {
            h = m_projOutLinear->forward(h);
        }
        h = h.transpose(1, 2).reshape({batch, -1, height, width});
        if (!m_linear) {
            h = m_projOutConv->forward(h);
        }
        return h + x;
    }

private:
    bool m_linear;
    torch::nn::GroupNorm m_norm{nullptr};
    torch::nn::Conv2d m_projInConv{nullptr};
    torch::nn::Linear m_projInLinear{nullptr};
    torch::nn::ModuleList m_blocks{nullptr};
    torch::nn::Conv2d m_projOutConv{nullptr};
    torch::nn::Linear m_projOutLinear{nullptr};
};
TORCH_MODULE(SpatialTransformer);

class DownsampleImpl : public torch::nn::Module
{
public:
    explicit DownsampleImpl(int channels)
    {
        m_op = register_module("op", conv3x3(channels, channels, /*stride=*/2));
    }

    /// x [B, C, h, w] -> [B, C, ceil(h/2), ceil(w/2)]
    at::Tensor forward(const at::Tensor& x) { return m_op->forward(x); }

private:
    torch::nn::Conv2d m_op{nullptr};
};
TORCH_MODULE(Downsample);

class UpsampleImpl : public torch::nn::Module
{
public:
    explicit UpsampleImpl(int channels)
    {
        m_conv = register_module("conv", conv3x3(channels, channels));
    }

    /// x [B, C, h, w] -> [B, C, 2h, 2w] (nearest neighbour, then a 3x3 conv)
    at::Tensor forward(const at::Tensor& x)
    {
        namespace F = torch::nn::functional;
        const at::Tensor up = F::interpolate(x, F::InterpolateFuncOptions()
                                                    .scale_factor(std::vector<double>{2.0, 2.0})
                                                    .mode(torch::kNearest));
        return m_conv->forward(up);
    }

private:
    torch::nn::Conv2d m_conv{nullptr};
};
TORCH_MODULE(Upsample);

// One entry of input_blocks / middle_block / output_blocks: layers "0", "1", "2" applied in
// order, each given what it needs (ldm TimestepEmbedSequential).
class UNetBlockImpl : public torch::nn::Module
{
public:
    template <typename Layer> void add(Layer layer)
    {
        register_module(std::to_string(m_layers.size()), layer.ptr());
        m_layers.push_back(layer.ptr());
    }

    /// h [B, C, h, w] -> [B, C', h', w']
    at::Tensor forward(at::Tensor h, const at::Tensor& emb, const at::Tensor& context)
    {
        for (const std::shared_ptr<torch::nn::Module>& layer : m_layers) {
            if (auto* res = layer->as<UNetResBlock>()) {
                h = res->forward(h, emb);
            } else if (auto* transformer = layer->as<SpatialTransformer>()) {
                h = transformer->forward(h, context);
            } else if (auto* down = layer->as<Downsample>()) {
                h = down->forward(h);
            } else if (auto* up = layer->as<Upsample>()) {
                h = up->forward(h);
            } else {
                h = layer->as<torch::nn::Conv2d>()->forward(h);
            }
        }
        return h;
    }

private:
    std::vector<std::shared_ptr<torch::nn::Module>> m_layers;
};
TORCH_MODULE(UNetBlock);

// The webui resizes the upsampled features to their skip's size when they differ, which makes
// sizes that are not multiples of 2^(levels-1) work (sd_hijack_unet.py).
at::Tensor matchSkipSize(const at::Tensor& h, const at::Tensor& skip)
{
    if (h.size(2) == skip.size(2) && h.size(3) == skip.size(3)) {
        return h;
    }
    namespace F = torch::nn::functional;
    return F::interpolate(h, F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{skip.size(2), skip.size(3)})
                                 .mode(torch::kNearest));
}

at::Tensor splitHeads(const at::Tensor& x, int heads)
{
    // [B, N, H*d] -> [B*H, N, d], row b*H + h (spec 1.7)
    const int64_t batch = x.size(0);
    const int64_t tokens = x.size(1);
    return x.reshape({batch, tokens, heads, -1})
        .permute({0, 2, 1, 3})
        .reshape({batch * heads, tokens, -1});
}

at::Tensor mergeHeads(const at::Tensor& x, int heads)
{
    const int64_t batch = x.size(0) / heads;
    const int64_t tokens = x.size(1);
    return x.reshape({batch, heads, tokens, -1}).permute({0, 2, 1, 3}).reshape({batch, tokens, -1});
}

at::Tensor plainAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          double scale)
{
    // ldm order: q k^T first, then the scale, then softmax over the keys.
    const at::Tensor scores = at::bmm(q, k.transpose(1, 2)) * scale;
    return at::bmm(scores.softmax(/*dim=*/-1), v);
}

at::Tensor slicedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           double scale, int64_t sliceSize)
{
    if (sliceSize <= 0) {
        // About 64 MiB of float scores per slice.
        const int64_t budget = int64_t(16) << 20;
        sliceSize = std::max<int64_t>(1, budget / std::max<int64_t>(1, q.size(0) * k.size(1)));
    }
    if (sliceSize >= q.size(1)) {
        return plainAttention(q, k, v, scale);
    }
    std::vector<at::Tensor> parts;
    for (int64_t start = 0; start < q.size(1); start += sliceSize) {
        const at::Tensor slice = q.narrow(1, start, std::min(sliceSize, q.size(1) - start));
        parts.push_back(plainAttention(slice, k, v, scale));
    }
    return at::cat(parts, /*dim=*/1);
}

} // namespace

std::pair<int, int> UNetConfig::headsFor(int channels) const
{
    int heads = numHeads;
    int headWidth = 0;
    if (numHeadChannels == -1) {
        headWidth = channels / numHeads;
    } else {
        heads = channels / numHeadChannels;
        headWidth = numHeadChannels;
    }
    if (legacy) {
        headWidth = channels / heads;
    }
    return {heads, headWidth};
}

namespace {

int intParam(const QVariantMap& params, const char* key, int fallback)
{
    const QVariant value = params.value(QString::fromLatin1(key));
    if (!value.isValid()) {
        return fallback;
    }
    bool ok = false;
    const int result = value.toInt(&ok);
    if (!ok) {
        throw Error(QStringLiteral("unet_config: '%1' should be a whole number, found '%2'")
                        .arg(QString::fromLatin1(key), value.toString()));
    }
    return result;
}

std::vector<int> intListParam(const QVariantMap& params, const char* key,
                              const std::vector<int>& fallback)
{
    const QVariant value = params.value(QString::fromLatin1(key));
    if (!value.isValid()) {
        return fallback;
    }
    std::vector<int> result;
    for (const QVariant& item : value.toList()) {
        bool ok = false;
        result.push_back(item.toInt(&ok));
        if (!ok) {
            throw Error(QStringLiteral("unet_config: '%1' should be a list of whole numbers")
                            .arg(QString::fromLatin1(key)));
        }
    }
    return result;
}

bool boolParam(const QVariantMap& params, const char* key, bool fallback)
{
    const QVariant value = params.value(QString::fromLatin1(key));
    return value.isValid() ? value.toBool() : fallback;
}

} // namespace

UNetConfig UNetConfig::fromLdmParams(const QVariantMap& params)
{
    UNetConfig config;
    config.inChannels = intParam(params, "in_channels", config.inChannels);
    config.outChannels = intParam(params, "out_channels", config.outChannels);
    config.modelChannels = intParam(params, "model_channels", config.modelChannels);
    config.channelMult = intListParam(params, "channel_mult", config.channelMult);
    config.numResBlocks = intParam(params, "num_res_blocks", config.numResBlocks);
    config.attentionResolutions =
        intListParam(params, "attention_resolutions", config.attentionResolutions);
    config.numHeads = intParam(params, "num_heads", -1);
    config.numHeadChannels = intParam(params, "num_head_channels", -1);
    config.legacy = boolParam(params, "legacy", true); // ldm's constructor default
    config.transformerDepth = intParam(params, "transformer_depth", config.transformerDepth);
    config.contextDim = intParam(params, "context_dim", config.contextDim);
    config.useLinearInTransformer =
        boolParam(params, "use_linear_in_transformer", config.useLinearInTransformer);
    if (config.numHeads == -1 && config.numHeadChannels == -1) {
        throw Error(QStringLiteral("unet_config: give num_heads or num_head_channels"));
    }
    return config;
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                     AttentionKind kind, int64_t sliceSize)
{
    switch (kind) {
    case AttentionKind::Sliced:
        return slicedAttention(q, k, v, scale, sliceSize);
    case AttentionKind::Sdpa:
#if TORCH_VERSION_MAJOR >= 2
        return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                                /*is_causal=*/false, scale);
#else
        return plainAttention(q, k, v, scale); // LibTorch 1.x has no fused attention
#endif
    case AttentionKind::Plain:
        break;
    }
    return plainAttention(q, k, v, scale);
}

at::Tensor timestepEmbedding(const at::Tensor& timesteps, int dim)
{
    // In float32 and in ldm's order: exp(-ln(10000) * i / half); args = t * freqs;
    // [cos(args), sin(args)] (spec 1.2).
    const int half = dim / 2;
    const at::TensorOptions options =
        at::TensorOptions().dtype(at::kFloat).device(timesteps.device());
    const at::Tensor freqs = (at::arange(0, half, options) * -std::log(10000.0) / half).exp();
    const at::Tensor args = timesteps.to(at::kFloat).unsqueeze(1) * freqs.unsqueeze(0);
    at::Tensor embedding = at::cat({args.cos(), args.sin()}, /*dim=*/-1);
    if (dim % 2 == 1) {
        embedding = at::cat({embedding, at::zeros_like(embedding.narrow(1, 0, 1))}, /*dim=*/-1);
    }
    return embedding;
}

CrossAttentionImpl::CrossAttentionImpl(int queryWidth, int contextWidth, int heads, int headWidth,
                                       std::shared_ptr<const UNetRuntime> runtime)
    : m_heads(heads), m_headWidth(headWidth), m_runtime(std::move(runtime))
{
    const int inner = heads * headWidth;
    auto noBias = [](int in, int out) {
        return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
    };
    to_q = register_module("to_q", noBias(queryWidth, inner));
    to_k = register_module("to_k", noBias(contextWidth, inner));
    to_v = register_module("to_v", noBias(contextWidth, inner));
    to_out = register_module("to_out", torch::nn::ModuleList(torch::nn::Linear(inner, queryWidth),
                                                             torch::nn::Dropout(0.0)));
}

at::Tensor CrossAttentionImpl::forward(const at::Tensor& x, const at::Tensor& context)
{
    const at::Tensor source = context.defined() ? context : x;

    // The hypernetwork hook (webui attention_CrossAttention_forward): k and v inputs only.
    at::Tensor keyInput = source;
    at::Tensor valueInput = source;
    if (!m_runtime->hypernetworks.empty()) {
        std::tie(keyInput, valueInput) = applyHypernetworks(m_runtime->hypernetworks, source);
    }

    const at::Tensor q = splitHeads(to_q->forward(x), m_heads);
    const at::Tensor k = splitHeads(to_k->forward(keyInput), m_heads);
    const at::Tensor v = splitHeads(to_v->forward(valueInput), m_heads);
    const double scale = 1.0 / std::sqrt(static_cast<double>(m_headWidth));
    const at::Tensor out = attention(q, k, v, scale, m_runtime->attention, m_runtime->sliceSize);
    return to_out[0]->as<torch::nn::Linear>()->forward(mergeHeads(out, m_heads));
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(int width, int contextDim, int heads,
                                                     int headWidth,
                                                     std::shared_ptr<const UNetRuntime> runtime)
{
    m_attn1 = register_module("attn1", CrossAttention(width, width, heads, headWidth, runtime));
    m_feedForward =
        register_module("ff", std::make_shared<torch::nn::Module>())
            ->register_module("net", torch::nn::ModuleList(Geglu(width, width * 4),
                                                           torch::nn::Dropout(0.0),
                                                           torch::nn::Linear(width * 4, width)));
    m_attn2 =
        register_module("attn2", CrossAttention(width, contextDim, heads, headWidth, runtime));
    auto layerNorm = [width] {
        return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(1e-5));
    };
    m_norm1 = register_module("norm1", layerNorm());
    m_norm2 = register_module("norm2", layerNorm());
    m_norm3 = register_module("norm3", layerNorm());
}

at::Tensor BasicTransformerBlockImpl::forward(const at::Tensor& x, const at::Tensor& context)
{
    at::Tensor h = m_attn1->forward(m_norm1->forward(x), at::Tensor()) + x;
    h = m_attn2->forward(m_norm2->forward(h), context) + h;
    const at::Tensor gated = m_feedForward[0]->as<Geglu>()->forward(m_norm3->forward(h));
    return m_feedForward[2]->as<torch::nn::Linear>()->forward(gated) + h;
}

UNetModelImpl::UNetModelImpl(const UNetConfig& config)
    : m_config(config), m_runtime(std::make_shared<UNetRuntime>())
{
    const int mc = config.modelChannels;
    const int embedWidth = mc * 4;
    const auto levels = static_cast<int>(config.channelMult.size());
    auto hasAttention = [&](int ds) {
        return std::count(config.attentionResolutions.begin(), config.attentionResolutions.end(),
                          ds) > 0;
    };

    m_timeEmbed = register_module(
        "time_embed", torch::nn::Sequential(torch::nn::Linear(mc, embedWidth), torch::nn::SiLU(),
                                            torch::nn::Linear(embedWidth, embedWidth)));

    // Input side (spec 1.3).
    m_inputBlocks = register_module("input_blocks", torch::nn::ModuleList());
    UNetBlock first;
    first->add(conv3x3(config.inChannels, mc));
    m_inputBlocks->push_back(first);
    std::vector<int> skipWidths = {mc};
    int channels = mc;
    int ds = 1;
    for (int level = 0; level < levels; ++level) {
        const int width = mc * config.channelMult[static_cast<size_t>(level)];
        for (int j = 0; j < config.numResBlocks; ++j) {
            UNetBlock block;
            block->add(UNetResBlock(channels, width, embedWidth));
            channels = width;
            if (hasAttention(ds)) {
                block->add(SpatialTransformer(channels, config, m_runtime));
            }
            m_inputBlocks->push_back(block);
            skipWidths.push_back(channels);
        }
        if (level < levels - 1) {
            UNetBlock down;
            down->add(Downsample(channels));
            m_inputBlocks->push_back(down);
            skipWidths.push_back(channels);
            ds *= 2;
        }
    }

    // The middle block always has a transformer.
    UNetBlock middle;
    middle->add(UNetResBlock(channels, channels, embedWidth));
    middle->add(SpatialTransformer(channels, config, m_runtime));
    middle->add(UNetResBlock(channels, channels, embedWidth));
    m_middleBlock = register_module("middle_block", middle);

    // Output side.
    m_outputBlocks = register_module("output_blocks", torch::nn::ModuleList());
    for (int level = levels - 1; level >= 0; --level) {
        const int width = mc * config.channelMult[static_cast<size_t>(level)];
        for (int i = 0; i <= config.numResBlocks; ++i) {
            const int skip = skipWidths.back();
            skipWidths.pop_back();
            UNetBlock block;
            block->add(UNetResBlock(channels + skip, width, embedWidth));
            channels = width;
            if (hasAttention(ds)) {
                block->add(SpatialTransformer(channels, config, m_runtime));
            }
            if (level > 0 && i == config.numResBlocks) {
                block->add(Upsample(channels));
                ds /= 2;
            }
            m_outputBlocks->push_back(block);
        }
    }

    m_out = register_module("out", torch::nn::Sequential(groupNorm(channels, kGroupNormEpsilon),
                                                         torch::nn::SiLU(),
                                                         conv3x3(mc, config.outChannels)));
}

at::Tensor UNetModelImpl::forward(const at::Tensor& x, const at::Tensor& timesteps,
                                  const at::Tensor& context)
{
    const at::Tensor emb =
        m_timeEmbed->forward(timestepEmbedding(timesteps, m_config.modelChannels).to(x.dtype()));

    auto run = [&](const std::shared_ptr<torch::nn::Module>& module, const at::Tensor& h) {
        UNetBlock block(std::dynamic_pointer_cast<UNetBlockImpl>(module));
        if (m_runtime->gradientCheckpointing && at::GradMode::is_enabled()) {
            return checkpointBlock(
                [block](const at::Tensor& input, const at::Tensor& e, const at::Tensor& c) mutable {
                    return block->forward(input, e, c);
                },
                h, emb, context, *block, m_runtime->hypernetworks);
        }
        return block->forward(h, emb, context);
    };

    std::vector<at::Tensor> skips;
    at::Tensor h = x;
    for (const auto& block : *m_inputBlocks) {
        h = run(block, h);
        skips.push_back(h);
    }
    h = run(m_middleBlock, h);
    for (const auto& block : *m_outputBlocks) {
        const at::Tensor skip = skips.back();
        skips.pop_back();
        h = run(block, at::cat({matchSkipSize(h, skip), skip}, /*dim=*/1));
    }
    return m_out->forward(h);
}

} // namespace studio
