#include "core/hypernetwork/HypernetworkModule.h"

#include "core/hypernetwork/Activation.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/normalization.h>
#include <torch/utils.h>

#include <cmath>

namespace studio {

namespace {

void addActivation(torch::nn::Sequential& sequential, const std::optional<QString>& name)
{
    sequential->push_back(Activation(parseActivation(name.value_or(QStringLiteral("linear")))));
}

void addLayerNorm(torch::nn::Sequential& sequential, int width)
{
    sequential->push_back(torch::nn::LayerNorm(
        torch::nn::LayerNormOptions({width}).eps(1e-5).elementwise_affine(true)));
}

void addDropout(torch::nn::Sequential& sequential, double probability)
{
    if (probability > 0.0) {
        sequential->push_back(torch::nn::Dropout(probability));
    }
}

// Python's F.interpolate(x, size=n, mode="nearest-exact") along the last dimension: source
// index floor((i + 0.5) * in / out), computed in float like PyTorch's kernel.
torch::Tensor nearestExactIndices(int inputWidth, int outputWidth, const torch::Device& device)
{
    const float scale = static_cast<float>(inputWidth) / static_cast<float>(outputWidth);
    std::vector<int64_t> indices(static_cast<size_t>(outputWidth));
    for (int i = 0; i < outputWidth; ++i) {
        const auto source =
            static_cast<int64_t>(std::floor((static_cast<float>(i) + 0.5f) * scale));
        indices[static_cast<size_t>(i)] = std::min<int64_t>(source, inputWidth - 1);
    }
    return torch::tensor(indices, torch::dtype(torch::kLong)).to(device);
}

void initializeLinear(torch::nn::LinearImpl& linear, const HypernetworkConfig& config,
                      at::Generator& generator)
{
    at::Tensor& weight = linear.weight;
    at::Tensor& bias = linear.bias;
    const auto fanIn = static_cast<double>(weight.size(1));
    const auto fanOut = static_cast<double>(weight.size(0));
    // Kaiming with a = 0 has gain sqrt(2) for both 'relu' and 'leaky_relu'.
    const double kaimingGain = std::sqrt(2.0);

    switch (config.weightInit) {
    case WeightInit::Normal:
        weight.normal_(0.0, config.normalStd, generator);
        // The webui draws the bias from Normal(0, 0): zero, but it advances the generator.
        bias.normal_(0.0, 0.0, generator);
        return;
    case WeightInit::XavierUniform: {
        const double bound = std::sqrt(6.0 / (fanIn + fanOut));
        weight.uniform_(-bound, bound, generator);
        break;
    }
    case WeightInit::XavierNormal:
        weight.normal_(0.0, std::sqrt(2.0 / (fanIn + fanOut)), generator);
        break;
    case WeightInit::KaimingUniform: {
        const double bound = kaimingGain * std::sqrt(3.0 / fanIn);
        weight.uniform_(-bound, bound, generator);
        break;
    }
    case WeightInit::KaimingNormal:
        weight.normal_(0.0, kaimingGain / std::sqrt(fanIn), generator);
        break;
    }
    bias.zero_();
}

void initializeLayerNorm(torch::nn::LayerNormImpl& norm, const HypernetworkConfig& config,
                         at::Generator& generator)
{
    // The webui's quirk: LayerNorm gamma ~ N(0, std), not 1, whatever the chosen scheme.
    norm.weight.normal_(0.0, config.normalStd, generator);
    norm.bias.normal_(0.0, 0.0, generator);
}

void initializeSequential(torch::nn::Sequential& sequential, const HypernetworkConfig& config,
                          at::Generator& generator)
{
    for (const std::shared_ptr<torch::nn::Module>& child : sequential->children()) {
        if (auto* linear = child->as<torch::nn::Linear>()) {
            initializeLinear(*linear, config, generator);
        } else if (auto* norm = child->as<torch::nn::LayerNorm>()) {
            initializeLayerNorm(*norm, config, generator);
        }
    }
}

} // namespace

ResBlockImpl::ResBlockImpl(int inputWidth, int outputWidth, const HypernetworkConfig& config,
                           double dropout)
    : m_inputWidth(inputWidth), m_outputWidth(outputWidth)
{
    torch::nn::Sequential stages;
    stages->push_back(torch::nn::Linear(inputWidth, outputWidth));
    if (config.layerNorm) {
        addLayerNorm(stages, outputWidth);
    }
    addDropout(stages, dropout);
    addActivation(stages, config.activation);
    linear = register_module("linear", stages);

    if (config.upsampleLinear && *config.upsampleLinear == QLatin1String("Linear")) {
        upsampleLayer = register_module(
            "upsample_layer",
            torch::nn::Linear(torch::nn::LinearOptions(inputWidth, outputWidth).bias(false)));
    }
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& input)
{
    torch::Tensor shortcut = input;
    if (upsampleLayer) {
        shortcut = upsampleLayer->forward(input);
    } else if (m_inputWidth != m_outputWidth) {
        shortcut = input.index_select(
            -1, nearestExactIndices(m_inputWidth, m_outputWidth, input.device()));
    }
    return shortcut + linear->forward(input);
}

HypernetworkModuleImpl::HypernetworkModuleImpl(int size, const HypernetworkConfig& config)
    : m_size(size), m_residualBlocks(config.skipConnection)
{
    const std::vector<int> widths = config.layerWidths(size);
    const size_t stageCount = widths.size() - 1;
    torch::nn::Sequential stages;

    for (size_t i = 0; i < stageCount; ++i) {
        const double dropout = config.dropoutStructure[i + 1];
        if (m_residualBlocks) {
            stages->push_back(ResBlock(widths[i], widths[i + 1], config, dropout));
            continue;
        }

        stages->push_back(torch::nn::Linear(widths[i], widths[i + 1]));
        const bool isLast = i + 1 == stageCount;
        const bool hasActivation =
            config.activation && *config.activation != QLatin1String("linear");
        if (hasActivation && (!isLast || config.activateOutput)) {
            addActivation(stages, config.activation);
        }
        if (config.layerNorm) {
            addLayerNorm(stages, widths[i + 1]);
        }
        addDropout(stages, dropout);
    }
    linear = register_module("linear", stages);
}

torch::Tensor HypernetworkModuleImpl::forward(const torch::Tensor& context, double strength)
{
    // Training always uses strength 1 (webui PR #6590): the global setting must not leak in.
    const double multiplier = is_training() ? 1.0 : strength;
    if (!m_residualBlocks) {
        return context + linear->forward(context) * multiplier;
    }

    const torch::Tensor blocks = linear->forward(context);
    if (is_training()) {
        return blocks;
    }
    return context + (blocks - context) * multiplier;
}

void HypernetworkModuleImpl::initializeWeights(const HypernetworkConfig& config,
                                               at::Generator& generator)
{
    torch::NoGradGuard noGrad;
    if (!m_residualBlocks) {
        initializeSequential(linear, config, generator);
        return;
    }

    for (const std::shared_ptr<torch::nn::Module>& child : linear->children()) {
        auto* block = child->as<ResBlock>();
        initializeSequential(block->linear, config, generator);
        if (block->upsampleLayer) {
            // Not covered by the extension's init: PyTorch's default Linear init.
            const double bound =
                1.0 / std::sqrt(static_cast<double>(block->upsampleLayer->weight.size(1)));
            block->upsampleLayer->weight.uniform_(-bound, bound, generator);
        }
    }
}

} // namespace studio
