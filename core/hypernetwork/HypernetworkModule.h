#pragma once

// One hypernetwork module: the small MLP that rewrites a k or a v context of one width.
//
// Standard layout (webui): a Sequential `linear` of Linear -> activation -> LayerNorm ->
// Dropout stages, output x + F(x) * strength. Residual-block layout (the extension's
// skip_connection): a Sequential `linear` of ResBlocks, output x + strength * (R(x) - x).
// While training, strength is 1 and dropout is active. Submodule names mirror the Python
// classes, so named_parameters() yields exactly the keys of the webui's state dicts.

#include "core/hypernetwork/HypernetworkConfig.h"

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace studio {

// The extension's ResBlock: up(x) + linear(x), where up is nearest-exact resampling of the
// last dimension or, with upsample_linear, a bias-free Linear.
class ResBlockImpl : public torch::nn::Module
{
public:
    ResBlockImpl(int inputWidth, int outputWidth, const HypernetworkConfig& config, double dropout);

    /// input [..., inputWidth] -> output [..., outputWidth]
    torch::Tensor forward(const torch::Tensor& input);

    torch::nn::Sequential linear{nullptr};
    torch::nn::Linear upsampleLayer{nullptr};

private:
    int m_inputWidth;
    int m_outputWidth;
};

TORCH_MODULE(ResBlock);

class HypernetworkModuleImpl : public torch::nn::Module
{
public:
    HypernetworkModuleImpl(int size, const HypernetworkConfig& config);

    /// context [..., size] -> transformed context [..., size]. `strength` scales the residual
    /// branch in eval mode and is ignored (1) while training.
    torch::Tensor forward(const torch::Tensor& context, double strength = 1.0);

    // The webui's init_weights, drawing from `generator`.
    void initializeWeights(const HypernetworkConfig& config, at::Generator& generator);

    int size() const { return m_size; }

    torch::nn::Sequential linear{nullptr};

private:
    int m_size;
    bool m_residualBlocks;
};

TORCH_MODULE(HypernetworkModule);

} // namespace studio
