#include "core/hypernetwork/Hypernetwork.h"

#include "core/Error.h"
#include "core/Logging.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <random>

namespace studio {

Hypernetwork::Hypernetwork(const HypernetworkConfig& config) : m_config(config) {}

Hypernetwork Hypernetwork::build(const HypernetworkConfig& config)
{
    validate(config, /*forCreation=*/false);

    Hypernetwork hypernetwork(config);
    for (int size : config.sizes) {
        hypernetwork.m_modules.push_back(
            {size, HypernetworkModule(size, config), HypernetworkModule(size, config)});
    }
    return hypernetwork;
}

Hypernetwork Hypernetwork::create(const HypernetworkConfig& config)
{
    validate(config, /*forCreation=*/true);
    Hypernetwork hypernetwork = build(config);

    // With a seed, the extension reseeds before each module: k and v start identical and every
    // width draws the same stream. Without one, a single random stream feeds all modules.
    const uint64_t seed = config.initSeed.value_or(std::random_device()());
    at::Generator generator = at::detail::createCPUGenerator(seed);
    for (ModulePair& pair : hypernetwork.m_modules) {
        for (HypernetworkModule* module : {&pair.k, &pair.v}) {
            if (config.initSeed) {
                generator = at::detail::createCPUGenerator(seed);
            }
            (*module)->initializeWeights(config, generator);
        }
    }
    qCDebug(lcHypernetwork) << "created hypernetwork" << config.name << "with"
                            << hypernetwork.parameterCount() << "parameters";
    return hypernetwork;
}

const ModulePair* Hypernetwork::find(int size) const
{
    for (const ModulePair& pair : m_modules) {
        if (pair.size == size) {
            return &pair;
        }
    }
    return nullptr;
}

std::pair<at::Tensor, at::Tensor> Hypernetwork::apply(const at::Tensor& context) const
{
    return apply(context, context);
}

std::pair<at::Tensor, at::Tensor> Hypernetwork::apply(const at::Tensor& kContext,
                                                      const at::Tensor& vContext) const
{
    const ModulePair* pair = find(static_cast<int>(kContext.size(-1)));
    if (!pair) {
        return {kContext, vContext};
    }
    // Holders are shared pointers: copies call the same modules without const restrictions.
    HypernetworkModule k = pair->k;
    HypernetworkModule v = pair->v;
    // The modules stay float32 (they train in it) when the frozen model runs in fp16 or bf16.
    const auto run = [this](HypernetworkModule& module, const at::Tensor& context) {
        if (context.scalar_type() == at::kFloat) {
            return module->forward(context, m_strength);
        }
        return module->forward(context.to(at::kFloat), m_strength).to(context.scalar_type());
    };
    return {run(k, kContext), run(v, vContext)};
}

void Hypernetwork::train(bool on)
{
    for (ModulePair& pair : m_modules) {
        pair.k->train(on);
        pair.v->train(on);
    }
}

bool Hypernetwork::isTraining() const
{
    return !m_modules.empty() && m_modules.front().k->is_training();
}

void Hypernetwork::to(c10::Device device)
{
    for (ModulePair& pair : m_modules) {
        pair.k->to(device);
        pair.v->to(device);
    }
}

std::vector<at::Tensor> Hypernetwork::parameters() const
{
    std::vector<at::Tensor> result;
    for (const ModulePair& pair : m_modules) {
        for (const HypernetworkModule* module : {&pair.k, &pair.v}) {
            for (const at::Tensor& parameter : (*module)->parameters()) {
                result.push_back(parameter);
            }
        }
    }
    return result;
}

int64_t Hypernetwork::parameterCount() const
{
    int64_t count = 0;
    for (const at::Tensor& parameter : parameters()) {
        count += parameter.numel();
    }
    return count;
}

std::pair<at::Tensor, at::Tensor> applyHypernetworks(const std::vector<const Hypernetwork*>& chain,
                                                     const at::Tensor& context)
{
    at::Tensor k = context;
    at::Tensor v = context;
    for (const Hypernetwork* hypernetwork : chain) {
        std::tie(k, v) = hypernetwork->apply(k, v);
    }
    return {k, v};
}

} // namespace studio
