#include "core/hypernetwork/HypernetworkConfig.h"

#include "core/Error.h"
#include "core/hypernetwork/Activation.h"

#include <QStringList>

#include <algorithm>
#include <array>
#include <cmath>

namespace studio {

namespace {

constexpr std::array<std::pair<WeightInit, const char*>, 5> kWeightInits = {{
    {WeightInit::Normal, "Normal"},
    {WeightInit::XavierUniform, "XavierUniform"},
    {WeightInit::XavierNormal, "XavierNormal"},
    {WeightInit::KaimingUniform, "KaimingUniform"},
    {WeightInit::KaimingNormal, "KaimingNormal"},
}};

void validateLayerStructure(const std::vector<double>& layers)
{
    if (layers.size() < 2) {
        throw Error(QStringLiteral("layer structure '%1' needs at least two entries, like "
                                   "\"1, 2, 1\"")
                        .arg(formatNumberList(layers)));
    }
    if (layers.front() != 1.0 || layers.back() != 1.0) {
        throw Error(QStringLiteral("layer structure '%1' must start and end with 1 (the module "
                                   "maps a width back to itself), for example \"1, 2, 1\"")
                        .arg(formatNumberList(layers)));
    }
    for (double multiplier : layers) {
        if (!std::isfinite(multiplier) || multiplier <= 0.0 || multiplier > 1024.0) {
            throw Error(QStringLiteral("layer structure '%1' has the multiplier %2; each must be "
                                       "a positive number")
                            .arg(formatNumberList(layers))
                            .arg(multiplier));
        }
    }
}

void validateDropout(const HypernetworkConfig& config, bool forCreation)
{
    const std::vector<double>& dropout = config.dropoutStructure;
    const size_t layerCount = config.layerStructure.size();
    // Loading tolerates a longer list (the webui ignores the rest) but never a shorter one.
    if (dropout.size() < layerCount || (forCreation && dropout.size() != layerCount)) {
        throw Error(QStringLiteral("dropout structure '%1' has %2 entries but layer structure "
                                   "'%3' has %4; give one probability per layer entry, e.g. "
                                   "\"%5\"")
                        .arg(formatNumberList(dropout))
                        .arg(dropout.size())
                        .arg(formatNumberList(config.layerStructure))
                        .arg(layerCount)
                        .arg(formatNumberList(legacyDropoutStructure(layerCount, true, false))));
    }
    for (double probability : dropout) {
        if (!std::isfinite(probability) || probability >= 1.0 ||
            (forCreation && probability < 0.0)) {
            throw Error(QStringLiteral("dropout structure '%1' has the probability %2; each must "
                                       "be 0 or a number in (0, 1)")
                            .arg(formatNumberList(dropout))
                            .arg(probability));
        }
    }
    if (forCreation && !config.skipConnection &&
        (dropout.front() != 0.0 || dropout[layerCount - 1] != 0.0)) {
        throw Error(QStringLiteral("dropout structure '%1' must start and end with 0: the first "
                                   "entry is never used and dropout after the output layer "
                                   "would drop parts of the result")
                        .arg(formatNumberList(dropout)));
    }
}

void validateSizes(const std::vector<int>& sizes)
{
    if (sizes.empty()) {
        throw Error(QStringLiteral("no module sizes: choose at least one of 768, 1024, 320, 640, "
                                   "1280"));
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
        if (sizes[i] <= 0 || sizes[i] > 65536) {
            throw Error(QStringLiteral("module size %1 is not a valid width").arg(sizes[i]));
        }
        if (std::count(sizes.begin(), sizes.end(), sizes[i]) > 1) {
            throw Error(QStringLiteral("module size %1 is listed twice").arg(sizes[i]));
        }
    }
}

} // namespace

QString weightInitName(WeightInit init)
{
    for (const auto& [value, name] : kWeightInits) {
        if (value == init) {
            return QString::fromLatin1(name);
        }
    }
    return QStringLiteral("Normal");
}

WeightInit parseWeightInit(const QString& name)
{
    QStringList choices;
    for (const auto& [value, choice] : kWeightInits) {
        if (name.trimmed().compare(QLatin1String(choice), Qt::CaseInsensitive) == 0) {
            return value;
        }
        choices << QString::fromLatin1(choice);
    }
    throw Error(QStringLiteral("unknown weight initialization '%1'; choose one of: %2")
                    .arg(name, choices.join(QStringLiteral(", "))));
}

bool HypernetworkConfig::lastLayerDropout() const
{
    return dropoutStructure.size() >= 2 && dropoutStructure[dropoutStructure.size() - 2] != 0.0;
}

std::vector<int> HypernetworkConfig::layerWidths(int size) const
{
    std::vector<int> widths;
    for (double multiplier : layerStructure) {
        // Python's int() truncates toward zero: int(320 * 0.004) == 1.
        widths.push_back(static_cast<int>(static_cast<double>(size) * multiplier));
    }
    return widths;
}

void validate(const HypernetworkConfig& config, bool forCreation)
{
    validateSizes(config.sizes);
    validateLayerStructure(config.layerStructure);
    validateDropout(config, forCreation);
    if (config.activation) {
        parseActivation(*config.activation);
    }
    if (!(config.normalStd >= 0.0) || !std::isfinite(config.normalStd)) {
        throw Error(QStringLiteral("normal init std %1 must be a number >= 0, such as 0.01")
                        .arg(config.normalStd));
    }
    for (int size : config.sizes) {
        for (int width : config.layerWidths(size)) {
            if (width < 1) {
                throw Error(QStringLiteral("layer structure '%1' makes a layer of width 0 for "
                                           "module size %2; use larger multipliers")
                                .arg(formatNumberList(config.layerStructure))
                                .arg(size));
            }
        }
    }
}

QString sanitizeHypernetworkName(const QString& name)
{
    QString result;
    for (const QChar c : name) {
        if (c.isLetterOrNumber() || QStringLiteral("._- ").contains(c)) {
            result += c;
        }
    }
    return result.trimmed();
}

std::vector<double> parseNumberList(const QString& text, const QString& field)
{
    std::vector<double> values;
    const QStringList parts = text.split(QLatin1Char(','));
    for (const QString& part : parts) {
        bool ok = false;
        const double value = part.trimmed().toDouble(&ok);
        if (!ok) {
            throw Error(QStringLiteral("%1: '%2' is not a number; write a comma-separated list "
                                       "such as \"1, 2, 1\"")
                            .arg(field, part.trimmed()));
        }
        values.push_back(value);
    }
    return values;
}

std::vector<int> parseSizeList(const QString& text, const QString& field)
{
    std::vector<int> sizes;
    for (const QString& part : text.split(QLatin1Char(','))) {
        bool ok = false;
        const int size = part.trimmed().toInt(&ok);
        if (!ok) {
            throw Error(QStringLiteral("%1: '%2' is not a whole number; write widths such as "
                                       "\"768, 320, 640, 1280\"")
                            .arg(field, part.trimmed()));
        }
        sizes.push_back(size);
    }
    return sizes;
}

std::vector<double> legacyDropoutStructure(size_t layerCount, bool useDropout,
                                           bool lastLayerDropout)
{
    std::vector<double> dropout(layerCount, 0.0);
    if (!useDropout || layerCount < 3) {
        return dropout;
    }
    // [0] + [0.3] * (n - 3) + [0.3 if last_layer_dropout else 0] + [0]
    for (size_t i = 1; i + 2 < layerCount; ++i) {
        dropout[i] = 0.3;
    }
    dropout[layerCount - 2] = lastLayerDropout ? 0.3 : 0.0;
    return dropout;
}

QString formatNumberList(const std::vector<double>& values)
{
    QStringList parts;
    for (double value : values) {
        parts << QString::number(value, 'g', 15);
    }
    return parts.join(QStringLiteral(", "));
}

} // namespace studio
