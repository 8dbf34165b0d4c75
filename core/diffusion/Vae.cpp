#include "core/diffusion/Vae.h"

#include "core/Error.h"
#include "core/Logging.h"
#include "core/io/TensorSource.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/padding.h>
#include <torch/nn/functional/upsampling.h>

#include <QRegularExpression>
#include <QStringList>

#include <algorithm>
#include <cmath>

namespace studio {

namespace {

constexpr int kGroupNormGroups = 32;
constexpr double kGroupNormEps = 1e-6;
constexpr double kLogvarMin = -30.0;
constexpr double kLogvarMax = 20.0;

torch::nn::GroupNorm makeNorm(int channels)
{
    return torch::nn::GroupNorm(
        torch::nn::GroupNormOptions(kGroupNormGroups, channels).eps(kGroupNormEps).affine(true));
}

torch::nn::Conv2d makeConv(int inChannels, int outChannels, int kernel, int stride = 1)
{
    // ldm pads 3x3 convs by 1 except in Downsample, which pads by hand (stride 2).
    const int padding = (kernel == 3 && stride == 1) ? 1 : 0;
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(inChannels, outChannels, kernel)
                                 .stride(stride)
                                 .padding(padding)
                                 .bias(true));
}

// ldm's nonlinearity() is written as x * sigmoid(x), not F.silu; keep its exact numerics.
at::Tensor swish(const at::Tensor& x)
{
    return x * at::sigmoid(x);
}

// ldm tracks the side of a level as curr_res and adds attention when it is in the list.
bool hasResolution(const std::vector<int>& resolutions, int side)
{
    return std::find(resolutions.begin(), resolutions.end(), side) != resolutions.end();
}

QString shapeText(const std::vector<int64_t>& shape)
{
    QStringList parts;
    for (const int64_t size : shape) {
        parts << QString::number(size);
    }
    return QLatin1Char('[') + parts.join(QStringLiteral(", ")) + QLatin1Char(']');
}

std::vector<int64_t> requiredShape(const io::TensorSource& source, const QString& key, size_t rank)
{
    if (!source.contains(key)) {
        throw Error(QStringLiteral("%1 has no tensor '%2', which VAE config detection needs "
                                   "(is this an ldm AutoencoderKL?)")
                        .arg(source.sourceName(), key));
    }
    std::vector<int64_t> shape = source.shape(key);
    if (shape.size() != rank) {
        throw Error(QStringLiteral("%1: '%2' has shape %3, expected a rank-%4 tensor")
                        .arg(source.sourceName(), key, shapeText(shape))
                        .arg(rank));
    }
    return shape;
}

int countIndexed(const io::TensorSource& source, const QString& pattern)
{
    int count = 0;
    while (source.contains(pattern.arg(count))) {
        ++count;
    }
    return count;
}

// Some converted files store the attention 1x1 convs as 2-D [c, c]; present them as
// [c, c, 1, 1] so that the strict loader accepts them.
class VaeWeightSource : public io::TensorSource
{
public:
    explicit VaeWeightSource(const io::TensorSource& inner) : m_inner(inner) {}

    QString sourceName() const override { return m_inner.sourceName(); }
    QStringList names() const override { return m_inner.names(); }
    bool contains(const QString& name) const override { return m_inner.contains(name); }

    std::vector<int64_t> shape(const QString& name) const override
    {
        std::vector<int64_t> shape = m_inner.shape(name);
        if (isFlatAttentionWeight(name, shape.size())) {
            shape.insert(shape.end(), {1, 1});
        }
        return shape;
    }

    at::Tensor tensor(const QString& name) const override
    {
        const at::Tensor value = m_inner.tensor(name);
        if (isFlatAttentionWeight(name, static_cast<size_t>(value.dim()))) {
            return value.reshape({value.size(0), value.size(1), 1, 1});
        }
        return value;
    }

private:
    static bool isFlatAttentionWeight(const QString& name, size_t rank)
    {
        static const QRegularExpression pattern(
            QStringLiteral("\\.(attn_1|attn\\.\\d+)\\.(q|k|v|proj_out)\\.weight$"));
        return rank == 2 && pattern.match(name).hasMatch();
    }

    const io::TensorSource& m_inner;
};

} // namespace

bool VaeConfig::encoderLevelHasAttention(int level) const
{
    return hasResolution(attnResolutions, resolution >> level);
}

bool VaeConfig::decoderLevelHasAttention(int level) const
{
    const int lowest = resolution >> (levelCount() - 1);
    return hasResolution(attnResolutions, lowest << (levelCount() - 1 - level));
}

void validateVaeConfig(const VaeConfig& config)
{
    auto fail = [](const QString& what) {
        throw Error(QStringLiteral("invalid VAE config: %1").arg(what));
    };
    if (config.chMult.empty() || config.ch <= 0 || config.numResBlocks <= 0) {
        fail(QStringLiteral("ch, ch_mult and num_res_blocks must be positive"));
    }
    for (const int multiplier : config.chMult) {
        if (multiplier <= 0 || (config.ch * multiplier) % kGroupNormGroups != 0) {
            fail(QStringLiteral("every width ch * ch_mult[i] must be a positive multiple of %1 "
                                "(GroupNorm groups); got ch %2")
                     .arg(kGroupNormGroups)
                     .arg(config.ch));
        }
    }
    if (config.zChannels <= 0 || config.embedDim <= 0 || config.inChannels <= 0 ||
        config.outChannels <= 0) {
        fail(QStringLiteral("z_channels, embed_dim, in_channels and out_ch must be positive"));
    }
    if (!config.doubleZ) {
        fail(QStringLiteral("AutoencoderKL needs double_z (the encoder emits mean and logvar)"));
    }
    if (!(config.scaleFactor > 0.0)) {
        fail(QStringLiteral("scale_factor must be positive"));
    }
}

QString findVaePrefix(const io::TensorSource& source)
{
    const QString probe = QStringLiteral("encoder.conv_in.weight");
    for (const QString& prefix : {QString::fromLatin1(kVaeCheckpointPrefix), QString()}) {
        if (source.contains(prefix + probe)) {
            return prefix;
        }
    }
    if (source.contains(QStringLiteral("encoder.down_blocks.0.resnets.0.conv1.weight"))) {
        throw Error(QStringLiteral("%1 is a VAE in the Diffusers layout (encoder.down_blocks.*), "
                                   "which is not supported; use an ldm/webui VAE file")
                        .arg(source.sourceName()));
    }
    throw Error(QStringLiteral("%1 holds no VAE: neither '%2%3' nor '%3' is present")
                    .arg(source.sourceName(), QString::fromLatin1(kVaeCheckpointPrefix), probe));
}

VaeConfig detectVaeConfig(const io::TensorSource& source, const QString& prefix)
{
    VaeConfig config;
    const auto convIn = requiredShape(source, prefix + QStringLiteral("encoder.conv_in.weight"), 4);
    config.ch = static_cast<int>(convIn[0]);
    config.inChannels = static_cast<int>(convIn[1]);

    const QString levelKey = prefix + QStringLiteral("encoder.down.%1.block.0.conv1.weight");
    const int levels = countIndexed(source, levelKey);
    if (levels == 0) {
        requiredShape(source, levelKey.arg(0), 4); // throws, naming the key
    }
    config.chMult.clear();
    config.attnResolutions.clear();
    for (int level = 0; level < levels; ++level) {
        const int width = static_cast<int>(requiredShape(source, levelKey.arg(level), 4)[0]);
        if (width % config.ch != 0) {
            throw Error(QStringLiteral("%1: '%2' has %3 output channels, not a multiple of ch %4")
                            .arg(source.sourceName(), levelKey.arg(level))
                            .arg(width)
                            .arg(config.ch));
        }
        config.chMult.push_back(width / config.ch);
        // Attention placement is stored as a side length; with the default resolution the
        // detected levels map back to themselves.
        const QString attnKey = prefix + QStringLiteral("encoder.down.%1.attn.0.q.weight");
        if (source.contains(attnKey.arg(level))) {
            config.attnResolutions.push_back(config.resolution >> level);
        }
    }
    config.numResBlocks =
        countIndexed(source, prefix + QStringLiteral("encoder.down.0.block.%1.conv1.weight"));

    const auto decoderIn =
        requiredShape(source, prefix + QStringLiteral("decoder.conv_in.weight"), 4);
    config.zChannels = static_cast<int>(decoderIn[1]);
    const auto encoderOut =
        requiredShape(source, prefix + QStringLiteral("encoder.conv_out.weight"), 4);
    config.doubleZ = encoderOut[0] == 2 * config.zChannels;
    const auto postQuant =
        requiredShape(source, prefix + QStringLiteral("post_quant_conv.weight"), 4);
    config.embedDim = static_cast<int>(postQuant[1]);
    const auto decoderOut =
        requiredShape(source, prefix + QStringLiteral("decoder.conv_out.weight"), 4);
    config.outChannels = static_cast<int>(decoderOut[0]);

    withContext(QStringLiteral("%1 (detected)").arg(source.sourceName()),
                [&] { validateVaeConfig(config); });
    return config;
}

at::Tensor VaePosterior::std() const
{
    return at::exp(0.5 * logvar);
}

at::Tensor VaePosterior::sample(std::optional<at::Generator> generator) const
{
    // LibTorch 1.13 takes c10::optional, which does not convert from std::optional.
    const c10::optional<at::Generator> source =
        generator ? c10::optional<at::Generator>(*generator) : c10::nullopt;
    return mean + std() * at::randn(mean.sizes(), source, mean.options());
}

VaeResnetBlockImpl::VaeResnetBlockImpl(int inChannels, int outChannels)
{
    norm1 = register_module("norm1", makeNorm(inChannels));
    conv1 = register_module("conv1", makeConv(inChannels, outChannels, /*kernel=*/3));
    norm2 = register_module("norm2", makeNorm(outChannels));
    conv2 = register_module("conv2", makeConv(outChannels, outChannels, /*kernel=*/3));
    if (inChannels != outChannels) {
        nin_shortcut =
            register_module("nin_shortcut", makeConv(inChannels, outChannels, /*kernel=*/1));
    }
}

at::Tensor VaeResnetBlockImpl::forward(const at::Tensor& x)
{
    at::Tensor h = conv1(swish(norm1(x)));
    // Dropout is 0 in every SD config, so it is left out.
    h = conv2(swish(norm2(h)));

    const at::Tensor shortcut = nin_shortcut ? nin_shortcut(x) : x;
    return shortcut + h;
}

VaeAttnBlockImpl::VaeAttnBlockImpl(int channels)
{
    norm = register_module("norm", makeNorm(channels));
    q = register_module("q", makeConv(channels, channels, /*kernel=*/1));
    k = register_module("k", makeConv(channels, channels, /*kernel=*/1));
    v = register_module("v", makeConv(channels, channels, /*kernel=*/1));
    proj_out = register_module("proj_out", makeConv(channels, channels, /*kernel=*/1));
}

at::Tensor VaeAttnBlockImpl::forward(const at::Tensor& x)
{
    const at::Tensor normed = norm(x);
    const int64_t batch = x.size(0);
    const int64_t channels = x.size(1);
    const int64_t positions = x.size(2) * x.size(3);

    // Same operation order as ldm (bmm, scale, softmax, bmm) to reproduce its rounding.
    const at::Tensor query = q(normed).reshape({batch, channels, positions}).permute({0, 2, 1});
    const at::Tensor key = k(normed).reshape({batch, channels, positions});
    const double scale = std::pow(static_cast<double>(channels), -0.5);
    at::Tensor weights = at::bmm(query, key) * scale; // [B, query, key]
    weights = at::softmax(weights, /*dim=*/2);

    const at::Tensor value = v(normed).reshape({batch, channels, positions});
    const at::Tensor attended = at::bmm(value, weights.permute({0, 2, 1})).reshape(x.sizes());
    return x + proj_out(attended);
}

VaeDownsampleImpl::VaeDownsampleImpl(int channels)
{
    conv = register_module("conv", makeConv(channels, channels, /*kernel=*/3, /*stride=*/2));
}

at::Tensor VaeDownsampleImpl::forward(const at::Tensor& x)
{
    // Asymmetric: pad only right and bottom, unlike the UNet's symmetric padding.
    namespace F = torch::nn::functional;
    const at::Tensor padded =
        F::pad(x, F::PadFuncOptions({0, 1, 0, 1}).mode(torch::kConstant).value(0));
    return conv(padded);
}

VaeUpsampleImpl::VaeUpsampleImpl(int channels)
{
    conv = register_module("conv", makeConv(channels, channels, /*kernel=*/3));
}

at::Tensor VaeUpsampleImpl::forward(const at::Tensor& x)
{
    namespace F = torch::nn::functional;
    const at::Tensor upsampled = F::interpolate(x, F::InterpolateFuncOptions()
                                                       .scale_factor(std::vector<double>{2.0, 2.0})
                                                       .mode(torch::kNearest));
    return conv(upsampled);
}

VaeLevelImpl::VaeLevelImpl(int inChannels, int outChannels, int blockCount, bool attention,
                           Resample resample)
{
    block = register_module("block", torch::nn::ModuleList());
    attn = register_module("attn", torch::nn::ModuleList());
    int width = inChannels;
    for (int index = 0; index < blockCount; ++index) {
        block->push_back(VaeResnetBlock(width, outChannels));
        width = outChannels;
        if (attention) {
            attn->push_back(VaeAttnBlock(outChannels));
        }
    }

    if (resample == Resample::Down) {
        downsample = register_module("downsample", VaeDownsample(outChannels));
    } else if (resample == Resample::Up) {
        upsample = register_module("upsample", VaeUpsample(outChannels));
    }
}

at::Tensor VaeLevelImpl::forward(const at::Tensor& x)
{
    at::Tensor h = x;
    for (size_t index = 0; index < block->size(); ++index) {
        h = block->at<VaeResnetBlockImpl>(index).forward(h);
        if (!attn->is_empty()) {
            h = attn->at<VaeAttnBlockImpl>(index).forward(h);
        }
    }

    if (downsample) {
        h = downsample(h);
    }
    if (upsample) {
        h = upsample(h);
    }
    return h;
}

VaeMidImpl::VaeMidImpl(int channels)
{
    block_1 = register_module("block_1", VaeResnetBlock(channels, channels));
    attn_1 = register_module("attn_1", VaeAttnBlock(channels));
    block_2 = register_module("block_2", VaeResnetBlock(channels, channels));
}

at::Tensor VaeMidImpl::forward(const at::Tensor& x)
{
    return block_2(attn_1(block_1(x)));
}

VaeEncoderImpl::VaeEncoderImpl(const VaeConfig& config)
{
    validateVaeConfig(config);
    conv_in = register_module("conv_in", makeConv(config.inChannels, config.ch, /*kernel=*/3));

    down = register_module("down", torch::nn::ModuleList());
    const int levels = config.levelCount();
    int width = config.ch;
    for (int level = 0; level < levels; ++level) {
        const int outWidth = config.ch * config.chMult[static_cast<size_t>(level)];
        const auto resample =
            level + 1 < levels ? VaeLevelImpl::Resample::Down : VaeLevelImpl::Resample::None;
        down->push_back(VaeLevel(width, outWidth, config.numResBlocks,
                                 config.encoderLevelHasAttention(level), resample));
        width = outWidth;
    }

    mid = register_module("mid", VaeMid(width));
    norm_out = register_module("norm_out", makeNorm(width));
    const int outChannels = config.doubleZ ? 2 * config.zChannels : config.zChannels;
    conv_out = register_module("conv_out", makeConv(width, outChannels, /*kernel=*/3));
}

at::Tensor VaeEncoderImpl::forward(const at::Tensor& image)
{
    at::Tensor h = conv_in(image);
    for (size_t level = 0; level < down->size(); ++level) {
        h = down->at<VaeLevelImpl>(level).forward(h);
    }

    h = mid(h);
    return conv_out(swish(norm_out(h)));
}

VaeDecoderImpl::VaeDecoderImpl(const VaeConfig& config)
{
    validateVaeConfig(config);
    const int levels = config.levelCount();
    auto widthOf = [&](int level) { return config.ch * config.chMult[static_cast<size_t>(level)]; };
    const int lowestWidth = widthOf(levels - 1);
    conv_in = register_module("conv_in", makeConv(config.zChannels, lowestWidth, /*kernel=*/3));
    mid = register_module("mid", VaeMid(lowestWidth));

    // Built in index order (ldm prepends while going up); each level takes the width of the
    // level above it, which runs before it.
    up = register_module("up", torch::nn::ModuleList());
    for (int level = 0; level < levels; ++level) {
        const int inWidth = level + 1 < levels ? widthOf(level + 1) : lowestWidth;
        const auto resample = level > 0 ? VaeLevelImpl::Resample::Up : VaeLevelImpl::Resample::None;
        up->push_back(VaeLevel(inWidth, widthOf(level), config.numResBlocks + 1,
                               config.decoderLevelHasAttention(level), resample));
    }

    norm_out = register_module("norm_out", makeNorm(widthOf(0)));
    conv_out = register_module("conv_out", makeConv(widthOf(0), config.outChannels, 3));
}

at::Tensor VaeDecoderImpl::forward(const at::Tensor& z)
{
    at::Tensor h = mid(conv_in(z));
    for (size_t level = up->size(); level-- > 0;) {
        h = up->at<VaeLevelImpl>(level).forward(h);
    }

    return conv_out(swish(norm_out(h)));
}

AutoencoderKLImpl::AutoencoderKLImpl(const VaeConfig& config) : m_config(config)
{
    validateVaeConfig(config);
    encoder = register_module("encoder", VaeEncoder(config));
    decoder = register_module("decoder", VaeDecoder(config));
    quant_conv = register_module("quant_conv",
                                 makeConv(2 * config.zChannels, 2 * config.embedDim, /*kernel=*/1));
    post_quant_conv = register_module("post_quant_conv",
                                      makeConv(config.embedDim, config.zChannels, /*kernel=*/1));
}

VaePosterior AutoencoderKLImpl::encode(const at::Tensor& image)
{
    if (image.dim() != 4 || image.size(1) != m_config.inChannels) {
        throw Error(QStringLiteral("VAE encode needs an image [B, %1, H, W], got %2")
                        .arg(m_config.inChannels)
                        .arg(shapeText(image.sizes().vec())));
    }

    const at::Tensor moments = quant_conv(encoder(image));
    const std::vector<at::Tensor> halves = at::chunk(moments, /*chunks=*/2, /*dim=*/1);
    return VaePosterior{halves[0], at::clamp(halves[1], kLogvarMin, kLogvarMax)};
}

at::Tensor AutoencoderKLImpl::decode(const at::Tensor& z)
{
    if (z.dim() != 4 || z.size(1) != m_config.embedDim) {
        throw Error(QStringLiteral("VAE decode needs a latent [B, %1, h, w], got %2")
                        .arg(m_config.embedDim)
                        .arg(shapeText(z.sizes().vec())));
    }
    return decoder(post_quant_conv(z));
}

at::Tensor AutoencoderKLImpl::scaleLatent(const at::Tensor& z) const
{
    return z * m_config.scaleFactor;
}

at::Tensor AutoencoderKLImpl::decodeLatent(const at::Tensor& latent)
{
    // ldm multiplies by the reciprocal (rounded to float32), which differs in the last bit
    // from dividing by the scale factor.
    return decode(latent * (1.0 / m_config.scaleFactor));
}

AutoencoderKL loadVae(const io::TensorSource& source, const QString& prefix, double scaleFactor)
{
    VaeConfig config = detectVaeConfig(source, prefix);
    config.scaleFactor = scaleFactor;
    return loadVae(source, prefix, config);
}

AutoencoderKL loadVae(const io::TensorSource& source, const QString& prefix,
                      const VaeConfig& config)
{
    AutoencoderKL vae(config);
    const VaeWeightSource weights(source);
    const QStringList unused = io::loadModuleWeights(*vae, weights, prefix);

    // Leftover VAE weights mean the config built fewer blocks than the file has (e.g. an
    // attention level the config does not know): refuse rather than silently drop them.
    static const QRegularExpression vaePart(
        QStringLiteral("^(encoder|decoder|quant_conv|post_quant_conv)\\."));
    for (const QString& key : unused) {
        if (vaePart.match(key.mid(prefix.size())).hasMatch()) {
            throw Error(QStringLiteral("%1: '%2' is not part of the VAE this config describes "
                                       "(wrong config for this checkpoint?)")
                            .arg(source.sourceName(), key));
        }
    }
    if (!unused.isEmpty()) {
        qCDebug(lcIo) << source.sourceName() << "VAE: ignored" << unused.size() << "keys";
    }

    vae->eval();
    return vae;
}

} // namespace studio
