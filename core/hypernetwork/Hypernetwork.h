#pragma once

// A hypernetwork: one (k, v) module pair per context width, applied to the k and v inputs of
// every attention layer whose context has that width (webui apply_single_hypernetwork).
//
// Copies share their modules (LibTorch holders), like tensors share storage.

#include "core/hypernetwork/HypernetworkConfig.h"
#include "core/hypernetwork/HypernetworkModule.h"
#include "core/io/PyValue.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <QString>

#include <utility>
#include <vector>

namespace studio {

struct ModulePair
{
    int size;
    HypernetworkModule k;
    HypernetworkModule v;
};

class Hypernetwork
{
public:
    // A new hypernetwork: validates `config` as the create form does and initialises weights
    // (from config.initSeed when set). Throws studio::Error with the reason.
    static Hypernetwork create(const HypernetworkConfig& config);

    // Modules for `config` with PyTorch's default initialisation, to be overwritten by a file.
    static Hypernetwork build(const HypernetworkConfig& config);

    const HypernetworkConfig& config() const { return m_config; }
    HypernetworkConfig& config() { return m_config; }
    const std::vector<ModulePair>& modules() const { return m_modules; }
    const ModulePair* find(int size) const;

    // Scale of the residual branch at generation time; training always uses 1.
    double strength() const { return m_strength; }
    void setStrength(double strength) { m_strength = strength; }

    /// context [..., W] -> (k context, v context), both [..., W]. Passes the context through
    /// unchanged when there is no module for width W.
    std::pair<at::Tensor, at::Tensor> apply(const at::Tensor& context) const;
    std::pair<at::Tensor, at::Tensor> apply(const at::Tensor& kContext,
                                            const at::Tensor& vContext) const;

    void train(bool on = true);
    bool isTraining() const;
    void to(c10::Device device);

    // In the webui's weights() order: widths in file order, k before v, layer order, weight
    // before bias. This is also the parameter order of the .optim file.
    std::vector<at::Tensor> parameters() const;
    int64_t parameterCount() const;

    // Keys the file had that this program does not interpret; written back unchanged.
    std::vector<py::DictEntry>& extraKeys() { return m_extraKeys; }
    const std::vector<py::DictEntry>& extraKeys() const { return m_extraKeys; }

private:
    explicit Hypernetwork(const HypernetworkConfig& config);

    HypernetworkConfig m_config;
    std::vector<ModulePair> m_modules;
    double m_strength = 1.0;
    std::vector<py::DictEntry> m_extraKeys;
};

// Several hypernetworks in sequence (webui apply_hypernetworks): the k context goes through
// each one's k module in order, the v context through the v modules, each at its own strength.
std::pair<at::Tensor, at::Tensor> applyHypernetworks(const std::vector<const Hypernetwork*>& chain,
                                                     const at::Tensor& context);

} // namespace studio
