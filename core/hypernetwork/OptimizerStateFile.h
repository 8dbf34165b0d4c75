#pragma once

// The optimizer side file NAME.pt.optim (spec hypernetworks.md 2.5): a torch.save'd dict with
// `optimizer_name`, `hash` (the .pt's short hash) and `optimizer_state_dict` in PyTorch's
// Optimizer.state_dict() layout: {'state': {index: {...}}, 'param_groups': [{..., 'params'}]}.
// Parameter indices follow Hypernetwork::parameters().
//
// Unlike the webui, which stores the hash of the file the hypernetwork was loaded from, the hash
// written here is that of the .pt beside it, so an intermediate save resumes with its optimizer.

#include "core/io/PyValue.h"

#include <ATen/core/Tensor.h>

#include <QString>

#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <optional>
#include <vector>

namespace torch::optim {
class AdamW;
}

namespace studio {

struct OptimizerParamGroup
{
    // Hyperparameters in PyTorch's names and types (lr, betas, eps, weight_decay, ...).
    std::vector<std::pair<QString, py::ValuePtr>> options;
    std::vector<int64_t> params;

    py::ValuePtr option(const QString& name) const;
    void setOption(const QString& name, const py::ValuePtr& value);
};

struct OptimizerState
{
    QString optimizerName = QStringLiteral("AdamW");
    QString hash;
    // Per parameter index: its state entries ("step", "exp_avg", "exp_avg_sq", ...).
    std::map<int64_t, std::map<QString, at::Tensor>> state;
    std::vector<OptimizerParamGroup> paramGroups;
};

QString optimizerStatePath(const QString& hypernetworkPath);

// Reads and writes the file at `path` (atomic write). Errors name the file and the field.
OptimizerState readOptimizerState(const QString& path);
void writeOptimizerState(const OptimizerState& state, const QString& path);

// Writes `state` beside the hypernetwork file, with the hash of that file as it is on disk.
void saveOptimizerStateFor(OptimizerState state, const QString& hypernetworkPath);

// The state saved beside `hypernetworkPath` if it belongs to that file (its hash matches the
// short hash, or the legacy model hash, of the .pt). Otherwise nullopt and `reason` says why
// training starts with a fresh optimizer.
std::optional<OptimizerState> loadOptimizerStateFor(const QString& hypernetworkPath,
                                                    QString& reason);

// Conversions for LibTorch's AdamW over `parameters` (in Hypernetwork::parameters() order).
OptimizerState captureAdamW(const torch::optim::AdamW& optimizer,
                            const std::vector<at::Tensor>& parameters);
// Throws studio::Error when the state does not fit the parameters (count or shapes).
void restoreAdamW(const OptimizerState& state, torch::optim::AdamW& optimizer,
                  const std::vector<at::Tensor>& parameters);

namespace detail {

// LibTorch keys optimizer state by the parameter's TensorImpl: as a string in 1.x, and possibly
// as the pointer itself elsewhere. Derive the key from the map's own key type.
template <typename StateMap>
typename StateMap::key_type stateKey(const StateMap& /*state*/, const at::Tensor& parameter)
{
    using Key = typename StateMap::key_type;
    if constexpr (std::is_same_v<Key, std::string>) {
        std::ostringstream stream;
        stream << parameter.unsafeGetTensorImpl();
        return stream.str();
    } else {
        return static_cast<Key>(parameter.unsafeGetTensorImpl());
    }
}

} // namespace detail

} // namespace studio
