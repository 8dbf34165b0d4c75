#pragma once

// Everything that defines a hypernetwork's structure and its file metadata, with the webui's
// parsing, defaults and validation (spec hypernetworks.md sections 1 and 2).

#include <QString>
#include <QStringList>

#include <cstdint>
#include <optional>
#include <vector>

namespace studio {

enum class WeightInit
{
    Normal,
    XavierUniform,
    XavierNormal,
    KaimingUniform,
    KaimingNormal,
};

QString weightInitName(WeightInit init);
// Accepts the webui's names ("KaimingNormal"); throws studio::Error listing the choices.
WeightInit parseWeightInit(const QString& name);

struct HypernetworkConfig
{
    QString name;
    // One (k, v) module pair per context width, in file order.
    std::vector<int> sizes = {768, 320, 640, 1280};
    // Width multipliers; must start and end with 1.
    std::vector<double> layerStructure = {1.0, 2.0, 1.0};
    // Activation name as the webui spells it ("relu", "swish" = Hardswish); nullopt is None.
    std::optional<QString> activation = QStringLiteral("linear");
    bool layerNorm = false;
    // Dropout probability after each stage; element i+1 follows Linear i. Same length as
    // layerStructure.
    std::vector<double> dropoutStructure = {0.0, 0.0, 0.0};
    bool useDropout = false;
    bool activateOutput = false;
    WeightInit weightInit = WeightInit::Normal;
    // Normal init std and LayerNorm gamma std (the extension's normal_std).
    double normalStd = 0.01;
    // Seeds every module's initialisation (the extension's generation_seed); not saved.
    std::optional<uint64_t> initSeed;
    // The extension's residual-block layout and its optional learned upsampling.
    bool skipConnection = false;
    std::optional<QString> upsampleLinear;

    // File metadata.
    int64_t step = 0;
    std::optional<QString> sdCheckpoint;
    std::optional<QString> sdCheckpointName;
    std::optional<QString> optionalInfo;

    // Which list items the file wrote as Python ints, so that a loaded file is saved back
    // unchanged: the webui writes layer_structure as floats and an unused dropout_structure as
    // ints ([0, 0, 0]); the extension may mix both ([0, 0.15, 0]). Empty: all floats.
    std::vector<bool> layerStructureIntegerItems;
    std::vector<bool> dropoutStructureIntegerItems = {true, true, true};
    // Whether to write the extension's keys (skip_connection, upsample_linear).
    bool writeExtensionKeys = false;

    // Saved as dropout_structure[-2] != 0, like the webui.
    bool lastLayerDropout() const;
    // int(width * multiplier) for each stage, with Python's truncation.
    std::vector<int> layerWidths(int size) const;
};

// Checks a configuration before modules are built. Messages name the field and the fix.
// `forCreation` adds the checks the webui's create form makes (dropout list length, first and
// last dropout zero) on top of those every loadable file must pass.
void validate(const HypernetworkConfig& config, bool forCreation);

// The name the webui gives a hypernetwork created as `name`: only letters, digits and "._- ",
// trimmed.
QString sanitizeHypernetworkName(const QString& name);

// Parses "1, 2, 1" (comma-separated numbers). `field` names the option in errors.
std::vector<double> parseNumberList(const QString& text, const QString& field);

// Parses "768, 320, 640, 1280".
std::vector<int> parseSizeList(const QString& text, const QString& field);

// The webui's legacy derivation for files without dropout_structure (spec 1.7).
std::vector<double> legacyDropoutStructure(size_t layerCount, bool useDropout,
                                           bool lastLayerDropout);

QString formatNumberList(const std::vector<double>& values);

} // namespace studio
