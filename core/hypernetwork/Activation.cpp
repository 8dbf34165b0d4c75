#include "core/hypernetwork/Activation.h"

#include "core/Error.h"

#include <ATen/ATen.h>

#include <array>

namespace studio {

namespace {

struct ActivationName
{
    const char* name;
    ActivationKind kind;
    const char* repr; // PyTorch's repr() of the default-constructed module
};

// The webui's explicit entries first, then torch.nn.modules.activation by lowercase class name.
constexpr std::array<ActivationName, 28> kActivations = {{
    {"linear", ActivationKind::Identity, "Identity()"},
    {"relu", ActivationKind::ReLU, "ReLU()"},
    {"leakyrelu", ActivationKind::LeakyReLU, "LeakyReLU(negative_slope=0.01)"},
    {"elu", ActivationKind::ELU, "ELU(alpha=1.0)"},
    {"swish", ActivationKind::Hardswish, "Hardswish()"},
    {"tanh", ActivationKind::Tanh, "Tanh()"},
    {"sigmoid", ActivationKind::Sigmoid, "Sigmoid()"},
    {"celu", ActivationKind::CELU, "CELU(alpha=1.0)"},
    {"gelu", ActivationKind::GELU, "GELU(approximate='none')"},
    {"hardshrink", ActivationKind::Hardshrink, "Hardshrink(0.5)"},
    {"hardsigmoid", ActivationKind::Hardsigmoid, "Hardsigmoid()"},
    {"hardtanh", ActivationKind::Hardtanh, "Hardtanh(min_val=-1.0, max_val=1.0)"},
    {"logsigmoid", ActivationKind::LogSigmoid, "LogSigmoid()"},
    {"logsoftmax", ActivationKind::LogSoftmax, "LogSoftmax(dim=None)"},
    {"mish", ActivationKind::Mish, "Mish()"},
    {"prelu", ActivationKind::PReLU, "PReLU(num_parameters=1)"},
    {"rrelu", ActivationKind::RReLU, "RReLU(lower=0.125, upper=0.3333333333333333)"},
    {"relu6", ActivationKind::ReLU6, "ReLU6()"},
    {"selu", ActivationKind::SELU, "SELU()"},
    {"silu", ActivationKind::SiLU, "SiLU()"},
    {"softmax", ActivationKind::Softmax, "Softmax(dim=None)"},
    {"softmax2d", ActivationKind::Softmax2d, "Softmax2d()"},
    {"softmin", ActivationKind::Softmin, "Softmin(dim=None)"},
    {"softplus", ActivationKind::Softplus, "Softplus(beta=1, threshold=20)"},
    {"softshrink", ActivationKind::Softshrink, "Softshrink(0.5)"},
    {"softsign", ActivationKind::Softsign, "Softsign()"},
    {"tanhshrink", ActivationKind::Tanhshrink, "Tanhshrink()"},
    {"hardswish", ActivationKind::Hardswish, "Hardswish()"}, // not offered, as in the webui
}};

// PyTorch's _get_softmax_dim for modules built without `dim`: 0 for 0-, 1- and 3-D input.
int64_t legacySoftmaxDim(int64_t rank)
{
    return (rank == 0 || rank == 1 || rank == 3) ? 0 : 1;
}

} // namespace

ActivationKind parseActivation(const QString& name)
{
    const QString key = name.trimmed().toLower();
    for (const ActivationName& entry : kActivations) {
        if (key == QLatin1String(entry.name)) {
            return entry.kind;
        }
    }

    if (key == QLatin1String("threshold") || key == QLatin1String("multiheadattention")) {
        throw Error(QStringLiteral("activation '%1' needs arguments the webui never passes, so "
                                   "no hypernetwork can use it; choose another activation")
                        .arg(name));
    }
    if (key == QLatin1String("glu")) {
        throw Error(QStringLiteral("activation 'glu' halves the layer width, so a hypernetwork "
                                   "built with it cannot run; choose another activation"));
    }
    throw Error(QStringLiteral("unknown activation '%1'; choose one of: %2")
                    .arg(name, activationNames().join(QStringLiteral(", "))));
}

QStringList activationNames()
{
    QStringList names;
    for (const ActivationName& entry : kActivations) {
        if (QLatin1String(entry.name) != QLatin1String("hardswish")) {
            names << QString::fromLatin1(entry.name);
        }
    }
    return names;
}

ActivationImpl::ActivationImpl(ActivationKind kind) : m_kind(kind)
{
    if (kind == ActivationKind::PReLU) {
        m_preluWeight = register_parameter("weight", torch::full({1}, 0.25));
    }
}

torch::Tensor ActivationImpl::forward(const torch::Tensor& input)
{
    switch (m_kind) {
    case ActivationKind::Identity:
        return input;
    case ActivationKind::ReLU:
        return at::relu(input);
    case ActivationKind::LeakyReLU:
        return at::leaky_relu(input, 0.01);
    case ActivationKind::ELU:
        return at::elu(input, 1.0);
    case ActivationKind::Hardswish:
        return at::hardswish(input);
    case ActivationKind::Tanh:
        return at::tanh(input);
    case ActivationKind::Sigmoid:
        return at::sigmoid(input);
    case ActivationKind::GELU:
        return at::gelu(input); // exact (erf) form, PyTorch's default
    case ActivationKind::SiLU:
        return at::silu(input);
    case ActivationKind::Mish:
        return at::mish(input);
    case ActivationKind::Softsign:
        return input / (input.abs() + 1);
    case ActivationKind::Softplus:
        return at::softplus(input, /*beta=*/1, /*threshold=*/20);
    case ActivationKind::ReLU6:
        return at::hardtanh(input, 0.0, 6.0);
    case ActivationKind::Hardtanh:
        return at::hardtanh(input, -1.0, 1.0);
    case ActivationKind::Hardsigmoid:
        return at::hardsigmoid(input);
    case ActivationKind::CELU:
        return at::celu(input, 1.0);
    case ActivationKind::SELU:
        return at::selu(input);
    case ActivationKind::LogSigmoid:
        return at::log_sigmoid(input);
    case ActivationKind::Tanhshrink:
        return input - at::tanh(input);
    case ActivationKind::Softshrink:
        return at::softshrink(input, 0.5);
    case ActivationKind::Hardshrink:
        return at::hardshrink(input, 0.5);
    case ActivationKind::PReLU:
        return at::prelu(input, m_preluWeight);
    case ActivationKind::RReLU:
        return at::rrelu(input, 1.0 / 8.0, 1.0 / 3.0, is_training());
    case ActivationKind::Softmax:
        return at::softmax(input, legacySoftmaxDim(input.dim()));
    case ActivationKind::Softmin:
        return at::softmax(-input, legacySoftmaxDim(input.dim()));
    case ActivationKind::LogSoftmax:
        return at::log_softmax(input, legacySoftmaxDim(input.dim()));
    case ActivationKind::Softmax2d:
        return at::softmax(input, /*dim=*/-3);
    }
    return input;
}

void ActivationImpl::pretty_print(std::ostream& stream) const
{
    for (const ActivationName& entry : kActivations) {
        if (entry.kind == m_kind) {
            stream << entry.repr;
            return;
        }
    }
}

} // namespace studio
