#pragma once

// The optimizer of a training run: one of PyTorch's optimizers over the hypernetwork's
// parameters, with the learning rate set per step by the schedule and the state saved to and
// restored from the webui's `.optim` layout (core/hypernetwork/OptimizerStateFile.h).

#include "core/hypernetwork/OptimizerStateFile.h"
#include "core/train/RunConfig.h"

#include <ATen/core/Tensor.h>

#include <memory>
#include <vector>

namespace torch::optim {
class Optimizer;
}

namespace studio {

class TrainingOptimizer
{
public:
    TrainingOptimizer(const OptimizerSection& options, std::vector<at::Tensor> parameters,
                      double initialLearningRate);
    ~TrainingOptimizer();

    OptimizerKind kind() const { return m_options.kind; }

    void setLearningRate(double learningRate);
    double learningRate() const;

    void zeroGrad();
    void step();

    // The state in PyTorch's state_dict layout, copied to the CPU.
    OptimizerState capture() const;
    // Throws studio::Error when the state belongs to another optimizer or other parameters.
    void restore(const OptimizerState& state);

    // Frees the device memory of the state (kept on the CPU) and brings it back: the
    // extension's "unload optimizer" around previews on CUDA.
    void unloadState();
    void reloadState();

private:
    OptimizerSection m_options;
    std::vector<at::Tensor> m_parameters;
    std::unique_ptr<torch::optim::Optimizer> m_optimizer;
    std::unique_ptr<OptimizerState> m_unloaded;
};

} // namespace studio
