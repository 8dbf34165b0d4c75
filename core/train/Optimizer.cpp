#include "core/train/Optimizer.h"

#include "core/Error.h"

#include <ATen/ATen.h>
#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>

namespace studio {

namespace {

using detail::stateKey;
using TensorMap = std::map<QString, at::Tensor>;

std::unique_ptr<torch::optim::Optimizer>
makeOptimizer(const OptimizerSection& o, const std::vector<at::Tensor>& parameters, double lr)
{
    switch (o.kind) {
    case OptimizerKind::AdamW:
        return std::make_unique<torch::optim::AdamW>(parameters, torch::optim::AdamWOptions(lr)
                                                                     .betas({o.beta1, o.beta2})
                                                                     .eps(o.eps)
                                                                     .weight_decay(o.weightDecay)
                                                                     .amsgrad(o.amsgrad));
    case OptimizerKind::Adam:
        return std::make_unique<torch::optim::Adam>(parameters, torch::optim::AdamOptions(lr)
                                                                    .betas({o.beta1, o.beta2})
                                                                    .eps(o.eps)
                                                                    .weight_decay(o.weightDecay)
                                                                    .amsgrad(o.amsgrad));
    case OptimizerKind::SGD:
        return std::make_unique<torch::optim::SGD>(parameters, torch::optim::SGDOptions(lr)
                                                                   .momentum(o.momentum)
                                                                   .nesterov(o.nesterov)
                                                                   .weight_decay(o.weightDecay));
    case OptimizerKind::RMSprop:
        return std::make_unique<torch::optim::RMSprop>(parameters,
                                                       torch::optim::RMSpropOptions(lr)
                                                           .alpha(o.alpha)
                                                           .eps(o.eps)
                                                           .momentum(o.momentum)
                                                           .weight_decay(o.weightDecay));
    case OptimizerKind::Adagrad:
        return std::make_unique<torch::optim::Adagrad>(
            parameters, torch::optim::AdagradOptions(lr).eps(o.eps).weight_decay(o.weightDecay));
    }
    throw Error(QStringLiteral("training.optimizer.name: unknown optimizer"));
}

at::Tensor cpuCopy(const at::Tensor& tensor)
{
    return tensor.defined() ? tensor.detach().to(at::kCPU).clone() : at::Tensor();
}

at::Tensor stepTensor(int64_t step)
{
    return at::scalar_tensor(static_cast<double>(step), at::kFloat);
}

// The per-parameter state of the optimizers other than AdamW (which OptimizerStateFile handles
// with the webui's exact layout), under PyTorch's state_dict names.
TensorMap captureEntry(OptimizerKind kind, const torch::optim::OptimizerParamState& state)
{
    TensorMap entry;
    auto put = [&entry](const char* name, const at::Tensor& tensor) {
        if (tensor.defined()) {
            entry[QString::fromLatin1(name)] = cpuCopy(tensor);
        }
    };
    switch (kind) {
    case OptimizerKind::Adam: {
        const auto& s = static_cast<const torch::optim::AdamParamState&>(state);
        entry[QStringLiteral("step")] = stepTensor(s.step());
        put("exp_avg", s.exp_avg());
        put("exp_avg_sq", s.exp_avg_sq());
        put("max_exp_avg_sq", s.max_exp_avg_sq());
        break;
    }
    case OptimizerKind::SGD:
        put("momentum_buffer",
            static_cast<const torch::optim::SGDParamState&>(state).momentum_buffer());
        break;
    case OptimizerKind::RMSprop: {
        const auto& s = static_cast<const torch::optim::RMSpropParamState&>(state);
        entry[QStringLiteral("step")] = stepTensor(s.step());
        put("square_avg", s.square_avg());
        put("momentum_buffer", s.momentum_buffer());
        put("grad_avg", s.grad_avg());
        break;
    }
    case OptimizerKind::Adagrad: {
        const auto& s = static_cast<const torch::optim::AdagradParamState&>(state);
        entry[QStringLiteral("step")] = stepTensor(s.step());
        put("sum", s.sum());
        break;
    }
    case OptimizerKind::AdamW:
        break;
    }
    return entry;
}

at::Tensor required(const TensorMap& entry, const char* name, const at::Tensor& parameter)
{
    const auto found = entry.find(QString::fromLatin1(name));
    if (found == entry.end()) {
        throw Error(QStringLiteral("the saved optimizer state has no '%1'; it belongs to "
                                   "another optimizer")
                        .arg(QString::fromLatin1(name)));
    }
    return found->second.to(parameter.device()).clone();
}

at::Tensor optional(const TensorMap& entry, const char* name, const at::Tensor& parameter)
{
    const auto found = entry.find(QString::fromLatin1(name));
    return found == entry.end() ? at::Tensor() : found->second.to(parameter.device()).clone();
}

int64_t savedStep(const TensorMap& entry)
{
    const auto found = entry.find(QStringLiteral("step"));
    return found == entry.end() ? 0 : static_cast<int64_t>(found->second.item<double>());
}

std::unique_ptr<torch::optim::OptimizerParamState>
restoreEntry(OptimizerKind kind, const TensorMap& entry, const at::Tensor& parameter)
{
    switch (kind) {
    case OptimizerKind::Adam: {
        auto s = std::make_unique<torch::optim::AdamParamState>();
        s->step(savedStep(entry));
        s->exp_avg(required(entry, "exp_avg", parameter));
        s->exp_avg_sq(required(entry, "exp_avg_sq", parameter));
        s->max_exp_avg_sq(optional(entry, "max_exp_avg_sq", parameter));
        return s;
    }
    case OptimizerKind::SGD: {
        auto s = std::make_unique<torch::optim::SGDParamState>();
        s->momentum_buffer(optional(entry, "momentum_buffer", parameter));
        return s;
    }
    case OptimizerKind::RMSprop: {
        auto s = std::make_unique<torch::optim::RMSpropParamState>();
        s->step(savedStep(entry));
        s->square_avg(required(entry, "square_avg", parameter));
        s->momentum_buffer(optional(entry, "momentum_buffer", parameter));
        s->grad_avg(optional(entry, "grad_avg", parameter));
        return s;
    }
    case OptimizerKind::Adagrad: {
        auto s = std::make_unique<torch::optim::AdagradParamState>();
        s->step(savedStep(entry));
        s->sum(required(entry, "sum", parameter));
        return s;
    }
    case OptimizerKind::AdamW:
        break;
    }
    return nullptr;
}

} // namespace

TrainingOptimizer::TrainingOptimizer(const OptimizerSection& options,
                                     std::vector<at::Tensor> parameters, double initialLearningRate)
    : m_options(options), m_parameters(std::move(parameters)),
      m_optimizer(makeOptimizer(options, m_parameters, initialLearningRate))
{
}

TrainingOptimizer::~TrainingOptimizer() = default;

void TrainingOptimizer::setLearningRate(double learningRate)
{
    for (auto& group : m_optimizer->param_groups()) {
        group.options().set_lr(learningRate);
    }
}

double TrainingOptimizer::learningRate() const
{
    return m_optimizer->param_groups().front().options().get_lr();
}

void TrainingOptimizer::zeroGrad()
{
    // set_to_none, like the webui: no zero-filled gradient tensors are kept between steps.
    for (at::Tensor& parameter : m_parameters) {
        parameter.mutable_grad() = at::Tensor();
    }
}

void TrainingOptimizer::step()
{
    m_optimizer->step();
}

OptimizerState TrainingOptimizer::capture() const
{
    if (m_options.kind == OptimizerKind::AdamW) {
        return captureAdamW(static_cast<const torch::optim::AdamW&>(*m_optimizer), m_parameters);
    }
    OptimizerState result;
    result.optimizerName = optimizerName(m_options.kind);
    const auto& states = m_optimizer->state();
    for (size_t i = 0; i < m_parameters.size(); ++i) {
        const auto found = states.find(stateKey(states, m_parameters[i]));
        if (found != states.end()) {
            result.state[static_cast<int64_t>(i)] = captureEntry(m_options.kind, *found->second);
        }
    }
    OptimizerParamGroup group;
    group.setOption(QStringLiteral("lr"), py::Value::real(learningRate()));
    for (size_t i = 0; i < m_parameters.size(); ++i) {
        group.params.push_back(static_cast<int64_t>(i));
    }
    result.paramGroups.push_back(group);
    return result;
}

void TrainingOptimizer::restore(const OptimizerState& state)
{
    if (state.optimizerName != optimizerName(m_options.kind)) {
        throw Error(QStringLiteral("the saved optimizer state is for %1, this run uses %2")
                        .arg(state.optimizerName, optimizerName(m_options.kind)));
    }
    const double lr = learningRate();
    if (m_options.kind == OptimizerKind::AdamW) {
        restoreAdamW(state, static_cast<torch::optim::AdamW&>(*m_optimizer), m_parameters);
        setLearningRate(lr); // the schedule, not the file, decides the rate
        return;
    }

    auto& states = m_optimizer->state();
    for (const auto& [index, entry] : state.state) {
        if (index < 0 || static_cast<size_t>(index) >= m_parameters.size()) {
            throw Error(QStringLiteral("the saved optimizer state names parameter %1; the "
                                       "hypernetwork has %2")
                            .arg(index)
                            .arg(m_parameters.size()));
        }
        const at::Tensor& parameter = m_parameters[static_cast<size_t>(index)];
        states[stateKey(states, parameter)] = restoreEntry(m_options.kind, entry, parameter);
    }
}

void TrainingOptimizer::unloadState()
{
    if (m_unloaded) {
        return;
    }
    m_unloaded = std::make_unique<OptimizerState>(capture());
    m_optimizer->state().clear();
}

void TrainingOptimizer::reloadState()
{
    if (!m_unloaded) {
        return;
    }
    const std::unique_ptr<OptimizerState> state = std::move(m_unloaded);
    restore(*state);
}

} // namespace studio
