// The merge half of HypernetworkTools.h: weighted sums of hypernetworks whose tensors line up
// one to one (spec hypernetworks.md 5.3). Neither the webui nor the extension merges weights,
// so the output is an ordinary webui .pt that either of them loads.

#include "core/hypernetwork/HypernetworkTools.h"

#include "core/Error.h"
#include "core/Logging.h"
#include "core/hypernetwork/HypernetworkFile.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <QDir>
#include <QFileInfo>

#include <algorithm>
#include <cmath>
#include <optional>

namespace studio {

namespace {

// How a file is named in a reason: its file name, or its whole path when both files share one.
std::pair<QString, QString> displayNames(const QString& first, const QString& other)
{
    const QString firstName = QFileInfo(first).fileName();
    const QString otherName = QFileInfo(other).fileName();
    if (firstName == otherName) {
        return {QDir::toNativeSeparators(first), QDir::toNativeSeparators(other)};
    }
    return {firstName, otherName};
}

QString sizesText(const std::vector<int>& sizes)
{
    QStringList items;
    for (int size : sizes) {
        items << QString::number(size);
    }
    return items.join(QStringLiteral(", "));
}

std::vector<int> sortedSizes(std::vector<int> sizes)
{
    std::sort(sizes.begin(), sizes.end());
    return sizes;
}

// "linear" and None both mean no activation layer; "swish" is the webui's name for Hardswish.
QString activationKey(const std::optional<QString>& activation)
{
    const QString name = activation.value_or(QStringLiteral("linear")).toLower();
    return name == QLatin1String("hardswish") ? QStringLiteral("swish") : name;
}

QString activationText(const std::optional<QString>& activation)
{
    return activation ? *activation : QStringLiteral("None");
}

bool hasActivation(const HypernetworkConfig& config)
{
    return activationKey(config.activation) != QLatin1String("linear");
}

// Which stages end in a Dropout layer: they shift the state-dict indices of what follows.
// Only the probabilities differ otherwise, and those matter for training alone.
std::vector<bool> dropoutPositions(const HypernetworkConfig& config)
{
    std::vector<bool> positions;
    for (size_t i = 1; i < config.layerStructure.size() && i < config.dropoutStructure.size();
         ++i) {
        positions.push_back(config.dropoutStructure[i] > 0.0);
    }
    return positions;
}

QString yesNo(bool value)
{
    return value ? QStringLiteral("yes") : QStringLiteral("no");
}

struct Difference
{
    QString field;
    QString otherValue;
    QString firstValue;
};

// The first structural difference of `other` from `first`, in the order the header lists them.
std::optional<Difference> firstDifference(const HypernetworkConfig& first,
                                          const HypernetworkConfig& other)
{
    if (sortedSizes(first.sizes) != sortedSizes(other.sizes)) {
        return Difference{QStringLiteral("sizes"), sizesText(other.sizes), sizesText(first.sizes)};
    }
    if (first.layerStructure != other.layerStructure) {
        return Difference{QStringLiteral("layer structure"), formatNumberList(other.layerStructure),
                          formatNumberList(first.layerStructure)};
    }
    if (activationKey(first.activation) != activationKey(other.activation)) {
        return Difference{QStringLiteral("activation"), activationText(other.activation),
                          activationText(first.activation)};
    }
    if (hasActivation(first) && first.activateOutput != other.activateOutput) {
        return Difference{QStringLiteral("activate output"), yesNo(other.activateOutput),
                          yesNo(first.activateOutput)};
    }
    if (first.layerNorm != other.layerNorm) {
        return Difference{QStringLiteral("layer norm"), yesNo(other.layerNorm),
                          yesNo(first.layerNorm)};
    }
    if (dropoutPositions(first) != dropoutPositions(other)) {
        return Difference{QStringLiteral("dropout structure"),
                          formatNumberList(other.dropoutStructure),
                          formatNumberList(first.dropoutStructure)};
    }
    if (first.skipConnection != other.skipConnection) {
        return Difference{QStringLiteral("residual blocks (skip_connection)"),
                          yesNo(other.skipConnection), yesNo(first.skipConnection)};
    }
    if (first.skipConnection && first.upsampleLinear != other.upsampleLinear) {
        return Difference{QStringLiteral("upsample_linear"), activationText(other.upsampleLinear),
                          activationText(first.upsampleLinear)};
    }
    return std::nullopt;
}

QString pairIncompatibility(const HypernetworkSummary& first, const HypernetworkSummary& other)
{
    const std::optional<Difference> difference = firstDifference(first.config, other.config);
    if (!difference) {
        return QString();
    }
    const auto [firstName, otherName] = displayNames(first.path, other.path);
    return QStringLiteral("'%1' has %2 %3 where '%4' has %5; only hypernetworks of the same "
                          "structure can be merged (stack them instead)")
        .arg(otherName, difference->field, difference->otherValue, firstName,
             difference->firstValue);
}

QString pathText(const QString& path)
{
    return QDir::toNativeSeparators(path);
}

// Every parameter of `hypernetwork`, in the module order of `reference` (files of the same
// structure may list their widths in different orders).
std::vector<at::Tensor> parametersInOrderOf(const Hypernetwork& reference,
                                            const Hypernetwork& hypernetwork)
{
    std::vector<at::Tensor> result;
    for (const ModulePair& pair : reference.modules()) {
        const ModulePair* match = hypernetwork.find(pair.size);
        if (match == nullptr) {
            throw Error(QStringLiteral("hypernetwork '%1' has no module for size %2")
                            .arg(hypernetwork.config().name)
                            .arg(pair.size));
        }
        for (const HypernetworkModule* module : {&match->k, &match->v}) {
            for (const at::Tensor& parameter : (*module)->parameters()) {
                result.push_back(parameter);
            }
        }
    }
    return result;
}

void checkWeights(const std::vector<MergeInput>& inputs)
{
    for (const MergeInput& input : inputs) {
        if (!std::isfinite(input.weight)) {
            throw Error(QStringLiteral("'%1': the merge weight %2 is not a finite number; give "
                                       "a number such as 0.5")
                            .arg(pathText(input.path))
                            .arg(input.weight));
        }
    }
}

// Adds weight * tensors of `hypernetwork` to `sums` (float64, so that many inputs do not
// accumulate float32 rounding), which follow the parameter order of `reference`.
void accumulate(std::vector<at::Tensor>& sums, const Hypernetwork& reference,
                const Hypernetwork& hypernetwork, double weight, const QString& path)
{
    const std::vector<at::Tensor> parameters = parametersInOrderOf(reference, hypernetwork);
    if (parameters.size() != sums.size()) {
        throw Error(QStringLiteral("'%1' has %2 tensors where the first input has %3; the files "
                                   "do not line up")
                        .arg(pathText(path))
                        .arg(parameters.size())
                        .arg(sums.size()));
    }
    for (size_t i = 0; i < sums.size(); ++i) {
        if (parameters[i].sizes() != sums[i].sizes()) {
            throw Error(QStringLiteral("'%1': tensor %2 has shape %3 where the first input has "
                                       "%4; the files do not line up")
                            .arg(pathText(path))
                            .arg(i)
                            .arg(QString::fromStdString(c10::str(parameters[i].sizes())),
                                 QString::fromStdString(c10::str(sums[i].sizes()))));
        }
        sums[i].add_(parameters[i].detach().to(at::kDouble), weight);
    }
}

std::vector<at::Tensor> zerosLike(const std::vector<at::Tensor>& tensors)
{
    std::vector<at::Tensor> zeros;
    for (const at::Tensor& tensor : tensors) {
        zeros.push_back(at::zeros(tensor.sizes(), tensor.options().dtype(at::kDouble)));
    }
    return zeros;
}

} // namespace

QString mergeIncompatibility(const std::vector<HypernetworkSummary>& inputs)
{
    if (inputs.empty()) {
        return QStringLiteral("there is nothing to merge; add the hypernetworks to merge");
    }
    // Each input against the first: the output takes the first's structure and metadata.
    for (size_t i = 1; i < inputs.size(); ++i) {
        const QString reason = pairIncompatibility(inputs.front(), inputs[i]);
        if (!reason.isEmpty()) {
            return reason;
        }
    }
    return QString();
}

HypernetworkSummary mergeHypernetworkFiles(const std::vector<MergeInput>& inputs,
                                           const QString& outputPath, const QString& name)
{
    if (inputs.empty()) {
        throw Error(QStringLiteral("merge into '%1': no input hypernetworks; give at least one "
                                   "file to merge")
                        .arg(pathText(outputPath)));
    }
    if (name.trimmed().isEmpty()) {
        throw Error(QStringLiteral("merge into '%1': the name is empty; give the merged "
                                   "hypernetwork a name")
                        .arg(pathText(outputPath)));
    }
    checkWeights(inputs);

    // The output is the first input's hypernetwork (structure, metadata, unknown keys) with
    // every tensor replaced by the weighted sum. Inputs are loaded one at a time.
    Hypernetwork merged = loadHypernetwork(inputs.front().path);
    const HypernetworkSummary first{inputs.front().path, merged.config(), 0, 0, QString()};
    const std::vector<at::Tensor> own = merged.parameters();
    std::vector<at::Tensor> sums = zerosLike(own);
    accumulate(sums, merged, merged, inputs.front().weight, inputs.front().path);

    for (size_t i = 1; i < inputs.size(); ++i) {
        const Hypernetwork next = loadHypernetwork(inputs[i].path);
        const QString reason =
            mergeIncompatibility({first, {inputs[i].path, next.config(), 0, 0, QString()}});
        if (!reason.isEmpty()) {
            throw Error(reason);
        }
        accumulate(sums, merged, next, inputs[i].weight, inputs[i].path);
    }

    {
        torch::NoGradGuard noGrad;
        for (size_t i = 0; i < own.size(); ++i) {
            at::Tensor parameter = own[i];
            parameter.copy_(sums[i].to(at::kFloat));
        }
    }
    // A new network: its own name, and no training steps of its own to resume from.
    merged.config().name = name.trimmed();
    merged.config().step = 0;
    saveHypernetwork(merged, outputPath);
    qCInfo(lcHypernetwork) << "merged" << inputs.size() << "hypernetworks into" << outputPath;

    return summarizeSavedHypernetwork(merged, outputPath);
}

} // namespace studio
