#include "core/hypernetwork/OptimizerStateFile.h"

#include "core/Error.h"
#include "core/Logging.h"
#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/TorchArchive.h"

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <QDir>
#include <QFileInfo>

#include <sstream>
#include <type_traits>

namespace studio {

namespace {

using py::Kind;
using py::Value;
using py::ValuePtr;

using detail::stateKey;

[[noreturn]] void failField(const QString& sourceName, const QString& field, const QString& what)
{
    throw Error(QStringLiteral("%1: field '%2' %3").arg(sourceName, field, what));
}

ValuePtr requireEntry(const Value& dict, const QString& key, Kind kind, const QString& sourceName)
{
    const ValuePtr value = dict.get(key);
    if (!value || !value->is(kind)) {
        failField(sourceName, key,
                  value ? QStringLiteral("has the wrong type (%1)").arg(value->typeName())
                        : QStringLiteral("is missing"));
    }
    return value;
}

// torch >= 1.12 stores `step` as a 0-d float tensor; older versions as a number.
at::Tensor stateTensor(const ValuePtr& value)
{
    if (value->is(Kind::Tensor)) {
        return value->toTensor().clone();
    }
    if (value->is(Kind::Int) || value->is(Kind::Float)) {
        return at::scalar_tensor(value->toDouble(), at::kFloat);
    }
    throw Error(QStringLiteral("a state entry is a %1, not a tensor").arg(value->typeName()));
}

std::map<QString, at::Tensor> readParameterState(const Value& entry, const QString& where)
{
    if (!entry.is(Kind::Dict)) {
        throw Error(QStringLiteral("%1 is a %2, not a dict").arg(where, entry.typeName()));
    }
    std::map<QString, at::Tensor> tensors;
    for (const py::DictEntry& item : entry.entries()) {
        if (!item.key->is(Kind::String)) {
            throw Error(QStringLiteral("%1 has a %2 key").arg(where, item.key->typeName()));
        }
        tensors[item.key->toStr()] = withContext(where, [&] { return stateTensor(item.value); });
    }
    return tensors;
}

OptimizerParamGroup readParamGroup(const Value& group, const QString& where)
{
    if (!group.is(Kind::Dict)) {
        throw Error(QStringLiteral("%1 is a %2, not a dict").arg(where, group.typeName()));
    }
    OptimizerParamGroup result;
    for (const py::DictEntry& item : group.entries()) {
        if (!item.key->is(Kind::String)) {
            throw Error(QStringLiteral("%1 has a %2 key").arg(where, item.key->typeName()));
        }
        if (item.key->toStr() != QLatin1String("params")) {
            result.options.emplace_back(item.key->toStr(), item.value);
            continue;
        }
        if (!item.value->is(Kind::List)) {
            throw Error(QStringLiteral("%1: 'params' is not a list").arg(where));
        }
        for (const ValuePtr& index : item.value->items()) {
            if (!index->is(Kind::Int)) {
                throw Error(
                    QStringLiteral("%1: 'params' holds a %2").arg(where, index->typeName()));
            }
            result.params.push_back(index->toInt());
        }
    }
    return result;
}

ValuePtr toPickle(const OptimizerState& state)
{
    ValuePtr parameterStates = Value::dict();
    for (const auto& [index, tensors] : state.state) {
        ValuePtr entry = Value::dict();
        for (const auto& [name, tensor] : tensors) {
            entry->set(name, Value::tensor(tensor));
        }
        parameterStates->set(Value::integer(index), entry);
    }

    ValuePtr groups = Value::list();
    for (const OptimizerParamGroup& group : state.paramGroups) {
        ValuePtr entry = Value::dict();
        for (const auto& [name, value] : group.options) {
            entry->set(name, value);
        }
        ValuePtr params = Value::list();
        for (int64_t index : group.params) {
            params->append(Value::integer(index));
        }
        entry->set(QStringLiteral("params"), params);
        groups->append(entry);
    }

    ValuePtr stateDict = Value::dict();
    stateDict->set(QStringLiteral("state"), parameterStates);
    stateDict->set(QStringLiteral("param_groups"), groups);

    // The key order of the webui's save().
    ValuePtr root = Value::dict();
    root->set(QStringLiteral("hash"), Value::string(state.hash));
    root->set(QStringLiteral("optimizer_name"), Value::string(state.optimizerName));
    root->set(QStringLiteral("optimizer_state_dict"), stateDict);
    return root;
}

double groupNumber(const OptimizerParamGroup& group, const char* name, double fallback)
{
    const ValuePtr value = group.option(QString::fromLatin1(name));
    return value && (value->is(Kind::Int) || value->is(Kind::Float)) ? value->toDouble() : fallback;
}

} // namespace

ValuePtr OptimizerParamGroup::option(const QString& name) const
{
    for (const auto& [key, value] : options) {
        if (key == name) {
            return value;
        }
    }
    return nullptr;
}

void OptimizerParamGroup::setOption(const QString& name, const ValuePtr& value)
{
    for (auto& [key, existing] : options) {
        if (key == name) {
            existing = value;
            return;
        }
    }
    options.emplace_back(name, value);
}

QString optimizerStatePath(const QString& hypernetworkPath)
{
    return hypernetworkPath + QStringLiteral(".optim");
}

OptimizerState readOptimizerState(const QString& path)
{
    const QString sourceName = QStringLiteral("'%1'").arg(QDir::toNativeSeparators(path));
    const ValuePtr root = io::readTorchFile(path);
    if (!root->is(Kind::Dict)) {
        throw Error(QStringLiteral("%1 is not an optimizer state file").arg(sourceName));
    }

    OptimizerState state;
    state.optimizerName =
        requireEntry(*root, QStringLiteral("optimizer_name"), Kind::String, sourceName)->toStr();
    const ValuePtr hash = root->get(QStringLiteral("hash"));
    state.hash = hash && hash->is(Kind::String) ? hash->toStr() : QString();

    const ValuePtr stateDict =
        requireEntry(*root, QStringLiteral("optimizer_state_dict"), Kind::Dict, sourceName);
    const ValuePtr parameterStates =
        requireEntry(*stateDict, QStringLiteral("state"), Kind::Dict, sourceName);
    for (const py::DictEntry& entry : parameterStates->entries()) {
        if (!entry.key->is(Kind::Int)) {
            failField(sourceName, QStringLiteral("state"), QStringLiteral("has a non-int key"));
        }
        const QString where =
            QStringLiteral("%1: state %2").arg(sourceName).arg(entry.key->toInt());
        state.state[entry.key->toInt()] = readParameterState(*entry.value, where);
    }

    const ValuePtr groups =
        requireEntry(*stateDict, QStringLiteral("param_groups"), Kind::List, sourceName);
    for (size_t i = 0; i < groups->items().size(); ++i) {
        const QString where = QStringLiteral("%1: param group %2").arg(sourceName).arg(i);
        state.paramGroups.push_back(readParamGroup(*groups->items()[i], where));
    }
    return state;
}

void writeOptimizerState(const OptimizerState& state, const QString& path)
{
    io::writeTorchFile(path, toPickle(state));
}

void saveOptimizerStateFor(OptimizerState state, const QString& hypernetworkPath)
{
    state.hash = fileShortHash(hypernetworkPath);
    writeOptimizerState(state, optimizerStatePath(hypernetworkPath));
}

std::optional<OptimizerState> loadOptimizerStateFor(const QString& hypernetworkPath,
                                                    QString& reason)
{
    const QString path = optimizerStatePath(hypernetworkPath);
    if (!QFileInfo::exists(path)) {
        reason = QStringLiteral("no saved optimizer state ('%1' does not exist)")
                     .arg(QDir::toNativeSeparators(path));
        return std::nullopt;
    }

    OptimizerState state = readOptimizerState(path);
    const bool matches = state.hash == fileShortHash(hypernetworkPath) ||
                         state.hash == fileLegacyHash(hypernetworkPath);
    if (!matches) {
        reason = QStringLiteral("'%1' belongs to another version of '%2' (hash %3); starting "
                                "with a fresh optimizer state")
                     .arg(QDir::toNativeSeparators(path),
                          QDir::toNativeSeparators(hypernetworkPath), state.hash);
        return std::nullopt;
    }
    return state;
}

OptimizerState captureAdamW(const torch::optim::AdamW& optimizer,
                            const std::vector<at::Tensor>& parameters)
{
    OptimizerState result;
    result.optimizerName = QStringLiteral("AdamW");
    const auto& states = optimizer.state();

    for (size_t i = 0; i < parameters.size(); ++i) {
        const auto found = states.find(stateKey(states, parameters[i]));
        if (found == states.end()) {
            continue; // not stepped yet: PyTorch leaves such parameters out of 'state' too
        }
        const auto& adam = static_cast<const torch::optim::AdamWParamState&>(*found->second);
        std::map<QString, at::Tensor>& entry = result.state[static_cast<int64_t>(i)];
        entry[QStringLiteral("step")] =
            at::scalar_tensor(static_cast<double>(adam.step()), at::kFloat);
        entry[QStringLiteral("exp_avg")] = adam.exp_avg().detach().to(at::kCPU).clone();
        entry[QStringLiteral("exp_avg_sq")] = adam.exp_avg_sq().detach().to(at::kCPU).clone();
        if (adam.max_exp_avg_sq().defined()) {
            entry[QStringLiteral("max_exp_avg_sq")] =
                adam.max_exp_avg_sq().detach().to(at::kCPU).clone();
        }
    }

    const auto& options =
        static_cast<const torch::optim::AdamWOptions&>(optimizer.param_groups().at(0).options());
    OptimizerParamGroup group;
    group.setOption(QStringLiteral("lr"), Value::real(options.lr()));
    group.setOption(QStringLiteral("betas"),
                    Value::tuple({Value::real(std::get<0>(options.betas())),
                                  Value::real(std::get<1>(options.betas()))}));
    group.setOption(QStringLiteral("eps"), Value::real(options.eps()));
    group.setOption(QStringLiteral("weight_decay"), Value::real(options.weight_decay()));
    group.setOption(QStringLiteral("amsgrad"), Value::boolean(options.amsgrad()));
    group.setOption(QStringLiteral("foreach"), Value::none());
    group.setOption(QStringLiteral("maximize"), Value::boolean(false));
    group.setOption(QStringLiteral("capturable"), Value::boolean(false));
    group.setOption(QStringLiteral("differentiable"), Value::boolean(false));
    group.setOption(QStringLiteral("fused"), Value::none());
    for (size_t i = 0; i < parameters.size(); ++i) {
        group.params.push_back(static_cast<int64_t>(i));
    }
    result.paramGroups.push_back(group);
    return result;
}

void restoreAdamW(const OptimizerState& state, torch::optim::AdamW& optimizer,
                  const std::vector<at::Tensor>& parameters)
{
    if (state.paramGroups.size() != 1 ||
        state.paramGroups.front().params.size() != parameters.size()) {
        throw Error(
            QStringLiteral("the saved optimizer state has %1 parameters in %2 groups, the "
                           "hypernetwork has %3 in one; cannot resume from it")
                .arg(state.paramGroups.empty() ? 0 : state.paramGroups.front().params.size())
                .arg(state.paramGroups.size())
                .arg(parameters.size()));
    }

    auto& states = optimizer.state();
    for (const auto& [index, entry] : state.state) {
        if (index < 0 || static_cast<size_t>(index) >= parameters.size() ||
            !entry.count(QStringLiteral("exp_avg")) || !entry.count(QStringLiteral("exp_avg_sq"))) {
            throw Error(QStringLiteral("the saved optimizer state for parameter %1 is not an "
                                       "AdamW state")
                            .arg(index));
        }
        const at::Tensor& parameter = parameters[static_cast<size_t>(index)];
        const at::Tensor& expAvg = entry.at(QStringLiteral("exp_avg"));
        if (expAvg.sizes() != parameter.sizes()) {
            throw Error(QStringLiteral("the saved optimizer state for parameter %1 has shape %2, "
                                       "the parameter has %3; cannot resume from it")
                            .arg(index)
                            .arg(QString::fromStdString(c10::str(expAvg.sizes())))
                            .arg(QString::fromStdString(c10::str(parameter.sizes()))));
        }

        auto adam = std::make_unique<torch::optim::AdamWParamState>();
        const auto step = entry.find(QStringLiteral("step"));
        adam->step(step == entry.end() ? 0 : static_cast<int64_t>(step->second.item<double>()));
        adam->exp_avg(expAvg.to(parameter.device()).clone());
        adam->exp_avg_sq(entry.at(QStringLiteral("exp_avg_sq")).to(parameter.device()).clone());
        const auto maxSq = entry.find(QStringLiteral("max_exp_avg_sq"));
        if (maxSq != entry.end()) {
            adam->max_exp_avg_sq(maxSq->second.to(parameter.device()).clone());
        }
        states[stateKey(states, parameter)] = std::move(adam);
    }

    const OptimizerParamGroup& group = state.paramGroups.front();
    auto& options =
        static_cast<torch::optim::AdamWOptions&>(optimizer.param_groups().at(0).options());
    options.lr(groupNumber(group, "lr", options.lr()));
    options.eps(groupNumber(group, "eps", options.eps()));
    options.weight_decay(groupNumber(group, "weight_decay", options.weight_decay()));
    const ValuePtr betas = group.option(QStringLiteral("betas"));
    if (betas && betas->is(Kind::Tuple) && betas->items().size() == 2) {
        options.betas({betas->items()[0]->toDouble(), betas->items()[1]->toDouble()});
    }
}

} // namespace studio
