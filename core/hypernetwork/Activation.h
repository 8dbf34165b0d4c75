#pragma once

// The activation functions a hypernetwork can use: the webui's explicit names plus every class
// of torch.nn.modules.activation that can be built without arguments, each with PyTorch's
// default parameters. "swish" is Hardswish, as in the webui.

#include "core/hypernetwork/ActivationNames.h"

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <QString>
#include <QStringList>

#include <optional>

namespace studio {

enum class ActivationKind
{
    Identity,
    ReLU,
    LeakyReLU,
    ELU,
    Hardswish,
    Tanh,
    Sigmoid,
    GELU,
    SiLU,
    Mish,
    Softsign,
    Softplus,
    ReLU6,
    Hardtanh,
    Hardsigmoid,
    CELU,
    SELU,
    LogSigmoid,
    Tanhshrink,
    Softshrink,
    Hardshrink,
    PReLU,
    RReLU,
    Softmax,
    Softmin,
    LogSoftmax,
    Softmax2d,
};

// The kind for a webui activation name (case-insensitive). Throws studio::Error for unknown
// names and for those the webui lists but cannot use, with the reason.
ActivationKind parseActivation(const QString& name);

class ActivationImpl : public torch::nn::Module
{
public:
    explicit ActivationImpl(ActivationKind kind);

    /// Elementwise (or, for the softmax family, along PyTorch's legacy implicit dimension).
    /// input [..., C] -> output of the same shape.
    torch::Tensor forward(const torch::Tensor& input);

    void pretty_print(std::ostream& stream) const override;

    ActivationKind kind() const { return m_kind; }

private:
    ActivationKind m_kind;
    torch::Tensor m_preluWeight; // PReLU's learned slope, the module's only parameter
};

TORCH_MODULE(Activation);

} // namespace studio
