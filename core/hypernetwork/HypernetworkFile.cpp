#include "core/hypernetwork/HypernetworkFile.h"

#include "core/Error.h"
#include "core/Logging.h"
#include "core/io/TorchArchive.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QFileInfo>

#include <array>
#include <cmath>
#include <map>
#include <set>

namespace studio {

namespace {

using py::Kind;
using py::Value;
using py::ValuePtr;

constexpr std::array<const char*, 15> kKnownKeys = {
    "step",
    "name",
    "layer_structure",
    "activation_func",
    "is_layer_norm",
    "weight_initialization",
    "sd_checkpoint",
    "sd_checkpoint_name",
    "activate_output",
    "use_dropout",
    "dropout_structure",
    "last_layer_dropout",
    "optional_info",
    "skip_connection",
    "upsample_linear",
};

bool isKnownKey(const QString& key)
{
    for (const char* known : kKnownKeys) {
        if (key == QLatin1String(known)) {
            return true;
        }
    }
    return false;
}

// Typed access to the metadata keys, with the webui's defaults and errors naming the field.
class Fields
{
public:
    Fields(const Value& root, const QString& sourceName) : m_root(root), m_sourceName(sourceName) {}

    bool has(const char* key) const { return value(key) != nullptr; }

    bool boolean(const char* key, bool fallback) const
    {
        const ValuePtr item = value(key);
        if (!item || item->isNone()) {
            return fallback;
        }
        if (item->is(Kind::Int)) {
            return item->toInt() != 0; // Python truthiness, as the webui's `if` tests
        }
        require(*item, Kind::Bool, key, "true or false");
        return item->toBool();
    }

    int64_t integer(const char* key, int64_t fallback) const
    {
        const ValuePtr item = value(key);
        if (!item) {
            return fallback;
        }
        require(*item, Kind::Int, key, "a whole number");
        return item->toInt();
    }

    std::optional<QString> string(const char* key) const
    {
        const ValuePtr item = value(key);
        if (!item || item->isNone()) {
            return std::nullopt;
        }
        require(*item, Kind::String, key, "text or None");
        return item->toStr();
    }

    // A list of numbers, and which of its items were Python ints.
    std::optional<std::vector<double>> numbers(const char* key,
                                               std::vector<bool>& integerItems) const
    {
        const ValuePtr item = value(key);
        if (!item || item->isNone()) {
            return std::nullopt;
        }
        if (!item->is(Kind::List) && !item->is(Kind::Tuple)) {
            fail(key, "a list of numbers", *item);
        }
        std::vector<double> numbers;
        integerItems.clear();
        for (const ValuePtr& number : item->items()) {
            if (!number->is(Kind::Int) && !number->is(Kind::Float)) {
                fail(key, "a list of numbers", *number);
            }
            numbers.push_back(number->toDouble());
            integerItems.push_back(number->is(Kind::Int));
        }
        return numbers;
    }

private:
    ValuePtr value(const char* key) const { return m_root.get(QString::fromLatin1(key)); }

    void require(const Value& item, Kind kind, const char* key, const char* expected) const
    {
        if (!item.is(kind)) {
            fail(key, expected, item);
        }
    }

    [[noreturn]] void fail(const char* key, const char* expected, const Value& found) const
    {
        throw Error(QStringLiteral("%1: field '%2' should be %3, but the file has a %4")
                        .arg(m_sourceName, QString::fromLatin1(key), QString::fromLatin1(expected),
                             found.typeName()));
    }

    const Value& m_root;
    const QString& m_sourceName;
};

HypernetworkConfig readConfig(const Value& root, const QString& sourceName,
                              const QString& defaultName)
{
    const Fields fields(root, sourceName);
    HypernetworkConfig config;

    config.name = fields.string("name").value_or(defaultName);
    config.step = fields.integer("step", 0);
    config.layerStructure = fields.numbers("layer_structure", config.layerStructureIntegerItems)
                                .value_or(std::vector<double>{1.0, 2.0, 1.0});
    if (!fields.has("layer_structure")) {
        config.layerStructureIntegerItems = {true, true, true}; // the webui's default [1, 2, 1]
    }
    config.activation = fields.string("activation_func");
    config.layerNorm = fields.boolean("is_layer_norm", false);
    config.activateOutput = fields.boolean("activate_output", true); // pre-#3698 files
    config.sdCheckpoint = fields.string("sd_checkpoint");
    config.sdCheckpointName = fields.string("sd_checkpoint_name");
    config.optionalInfo = fields.string("optional_info");
    config.skipConnection = fields.boolean("skip_connection", false);
    config.upsampleLinear = fields.string("upsample_linear");
    config.writeExtensionKeys = fields.has("skip_connection") || fields.has("upsample_linear");

    const std::optional<QString> init = fields.string("weight_initialization");
    config.weightInit =
        init ? withContext(sourceName, [&] { return parseWeightInit(*init); }) : WeightInit::Normal;

    // Dropout: the stored structure wins; older files derive it (spec 1.7).
    const std::optional<std::vector<double>> dropout =
        fields.numbers("dropout_structure", config.dropoutStructureIntegerItems);
    const bool anyDropout =
        dropout && std::any_of(dropout->begin(), dropout->end(), [](double p) { return p != 0; });
    config.useDropout = anyDropout || fields.boolean("use_dropout", false);
    if (dropout) {
        config.dropoutStructure = *dropout;
    } else {
        config.dropoutStructure =
            legacyDropoutStructure(config.layerStructure.size(), config.useDropout,
                                   fields.boolean("last_layer_dropout", false));
        config.dropoutStructureIntegerItems.clear();
    }
    return config;
}

QString renameLegacyKey(const QString& key)
{
    // NovelAI-era modules: linear1/linear2 are today's linear.0/linear.1 (fix_old_state_dict).
    if (key.startsWith(QLatin1String("linear1."))) {
        return QStringLiteral("linear.0.") + key.mid(8);
    }
    if (key.startsWith(QLatin1String("linear2."))) {
        return QStringLiteral("linear.1.") + key.mid(8);
    }
    return key;
}

std::map<QString, at::Tensor> readStateDict(const Value& stateDict, const QString& where)
{
    if (!stateDict.is(Kind::Dict)) {
        throw Error(QStringLiteral("%1 should be a state dict, but the file has a %2")
                        .arg(where, stateDict.typeName()));
    }
    std::map<QString, at::Tensor> tensors;
    for (const py::DictEntry& entry : stateDict.entries()) {
        if (!entry.key->is(Kind::String) || !entry.value->is(Kind::Tensor)) {
            throw Error(QStringLiteral("%1 holds a %2 -> %3 entry; a state dict maps names to "
                                       "tensors")
                            .arg(where, entry.key->typeName(), entry.value->typeName()));
        }
        tensors[renameLegacyKey(entry.key->toStr())] = entry.value->toTensor();
    }
    return tensors;
}

QString describeKeys(const std::set<QString>& keys)
{
    QStringList list(keys.begin(), keys.end());
    return list.join(QStringLiteral(", "));
}

void loadStateDict(HypernetworkModule& module, const std::map<QString, at::Tensor>& tensors,
                   const QString& where)
{
    const auto parameters = module->named_parameters(/*recurse=*/true);
    std::set<QString> expected;
    std::set<QString> found;
    for (const auto& item : parameters) {
        expected.insert(QString::fromStdString(item.key()));
    }
    for (const auto& [key, tensor] : tensors) {
        found.insert(key);
    }
    if (expected != found) {
        std::set<QString> missing;
        std::set<QString> unexpected;
        std::set_difference(expected.begin(), expected.end(), found.begin(), found.end(),
                            std::inserter(missing, missing.end()));
        std::set_difference(found.begin(), found.end(), expected.begin(), expected.end(),
                            std::inserter(unexpected, unexpected.end()));
        throw Error(QStringLiteral("%1 does not match the layout its settings describe "
                                   "(layer_structure, activation_func, is_layer_norm, "
                                   "dropout_structure, activate_output): missing [%2], "
                                   "unexpected [%3]")
                        .arg(where, describeKeys(missing), describeKeys(unexpected)));
    }

    torch::NoGradGuard noGrad;
    for (const auto& item : parameters) {
        const QString key = QString::fromStdString(item.key());
        const at::Tensor& source = tensors.at(key);
        if (source.sizes() != item.value().sizes()) {
            throw Error(QStringLiteral("%1: '%2' has shape %3, the layout needs %4")
                            .arg(where, key, QString::fromStdString(c10::str(source.sizes())),
                                 QString::fromStdString(c10::str(item.value().sizes()))));
        }
        item.value().copy_(source.to(at::kFloat));
    }
}

std::pair<ValuePtr, ValuePtr> moduleStateDicts(const Value& entry, const QString& where)
{
    const bool isPair =
        (entry.is(Kind::Tuple) || entry.is(Kind::List)) && entry.items().size() == 2;
    if (!isPair) {
        throw Error(QStringLiteral("%1 should be a pair of state dicts (k, v), but the file has a "
                                   "%2")
                        .arg(where, entry.typeName()));
    }
    return {entry.items()[0], entry.items()[1]};
}

ValuePtr numberList(const std::vector<double>& values, const std::vector<bool>& integerItems)
{
    ValuePtr list = Value::list();
    for (size_t i = 0; i < values.size(); ++i) {
        const bool asInteger =
            i < integerItems.size() && integerItems[i] && std::floor(values[i]) == values[i];
        list->append(asInteger ? Value::integer(static_cast<int64_t>(values[i]))
                               : Value::real(values[i]));
    }
    return list;
}

ValuePtr optionalString(const std::optional<QString>& value)
{
    return value ? Value::string(*value) : Value::none();
}

ValuePtr stateDict(const HypernetworkModule& module)
{
    ValuePtr tensors = Value::orderedDict();
    for (const auto& item : module->named_parameters(/*recurse=*/true)) {
        tensors->set(QString::fromStdString(item.key()),
                     Value::tensor(item.value().detach().to(at::kCPU).contiguous()));
    }

    // nn.Module.state_dict() records each submodule's version in `_metadata`.
    ValuePtr metadata = Value::orderedDict();
    for (const auto& item : module->named_modules()) {
        ValuePtr version = Value::dict();
        version->set(QStringLiteral("version"), Value::integer(1));
        metadata->set(QString::fromStdString(item.key()), version);
    }
    ValuePtr attributes = Value::dict();
    attributes->set(QStringLiteral("_metadata"), metadata);
    tensors->setAttributes(attributes);
    return tensors;
}

} // namespace

Hypernetwork hypernetworkFromPickle(const ValuePtr& root, const QString& sourceName,
                                    const QString& defaultName)
{
    if (!root->is(Kind::Dict)) {
        throw Error(QStringLiteral("%1 is not a hypernetwork: it holds a %2, not a dict")
                        .arg(sourceName, root->typeName()));
    }

    HypernetworkConfig config = readConfig(*root, sourceName, defaultName);
    config.sizes.clear();
    std::vector<py::DictEntry> extraKeys;
    for (const py::DictEntry& entry : root->entries()) {
        if (entry.key->is(Kind::Int)) {
            config.sizes.push_back(static_cast<int>(entry.key->toInt()));
        } else if (!entry.key->is(Kind::String) || !isKnownKey(entry.key->toStr())) {
            extraKeys.push_back(entry);
        }
    }
    if (config.sizes.empty()) {
        throw Error(QStringLiteral("%1 is not a hypernetwork: it has no modules (no int keys)")
                        .arg(sourceName));
    }

    Hypernetwork hypernetwork =
        withContext(sourceName, [&] { return Hypernetwork::build(config); });
    hypernetwork.extraKeys() = extraKeys;
    for (const ModulePair& pair : hypernetwork.modules()) {
        const QString where = QStringLiteral("%1: module %2").arg(sourceName).arg(pair.size);
        const auto [kState, vState] = moduleStateDicts(*root->get(pair.size), where);
        HypernetworkModule k = pair.k;
        HypernetworkModule v = pair.v;
        loadStateDict(k, readStateDict(*kState, where + QStringLiteral(" (k)")),
                      where + QStringLiteral(" (k)"));
        loadStateDict(v, readStateDict(*vState, where + QStringLiteral(" (v)")),
                      where + QStringLiteral(" (v)"));
    }
    hypernetwork.train(false);
    return hypernetwork;
}

Hypernetwork loadHypernetwork(const QString& path)
{
    const ValuePtr root = io::readTorchFile(path);
    const QString sourceName = QStringLiteral("'%1'").arg(QDir::toNativeSeparators(path));
    Hypernetwork hypernetwork =
        hypernetworkFromPickle(root, sourceName, QFileInfo(path).completeBaseName());
    qCDebug(lcHypernetwork) << "loaded hypernetwork" << path << "with"
                            << hypernetwork.parameterCount() << "parameters";
    return hypernetwork;
}

py::ValuePtr hypernetworkToPickle(const Hypernetwork& hypernetwork)
{
    const HypernetworkConfig& config = hypernetwork.config();
    ValuePtr root = Value::dict();
    for (const ModulePair& pair : hypernetwork.modules()) {
        root->set(Value::integer(pair.size), Value::tuple({stateDict(pair.k), stateDict(pair.v)}));
    }

    // The keys in the order the webui's save() writes them.
    root->set(QStringLiteral("step"), Value::integer(config.step));
    root->set(QStringLiteral("name"), Value::string(config.name));
    root->set(QStringLiteral("layer_structure"),
              numberList(config.layerStructure, config.layerStructureIntegerItems));
    root->set(QStringLiteral("activation_func"), optionalString(config.activation));
    root->set(QStringLiteral("is_layer_norm"), Value::boolean(config.layerNorm));
    root->set(QStringLiteral("weight_initialization"),
              Value::string(weightInitName(config.weightInit)));
    root->set(QStringLiteral("sd_checkpoint"), optionalString(config.sdCheckpoint));
    root->set(QStringLiteral("sd_checkpoint_name"), optionalString(config.sdCheckpointName));
    root->set(QStringLiteral("activate_output"), Value::boolean(config.activateOutput));
    root->set(QStringLiteral("use_dropout"), Value::boolean(config.useDropout));
    root->set(QStringLiteral("dropout_structure"),
              numberList(config.dropoutStructure, config.dropoutStructureIntegerItems));
    root->set(QStringLiteral("last_layer_dropout"), Value::boolean(config.lastLayerDropout()));
    root->set(QStringLiteral("optional_info"), optionalString(config.optionalInfo));
    if (config.writeExtensionKeys || config.skipConnection) {
        root->set(QStringLiteral("skip_connection"), Value::boolean(config.skipConnection));
        root->set(QStringLiteral("upsample_linear"), optionalString(config.upsampleLinear));
    }
    for (const py::DictEntry& entry : hypernetwork.extraKeys()) {
        root->set(entry.key, entry.value);
    }
    return root;
}

void saveHypernetwork(const Hypernetwork& hypernetwork, const QString& path)
{
    io::writeTorchFile(path, hypernetworkToPickle(hypernetwork));
    qCInfo(lcHypernetwork) << "saved hypernetwork" << path;
}

namespace {

QString sha256Hex(QIODevice& device, qint64 maxBytes)
{
    QCryptographicHash hash(QCryptographicHash::Sha256);
    qint64 remaining = maxBytes;
    while (remaining > 0 && !device.atEnd()) {
        const QByteArray chunk = device.read(std::min<qint64>(remaining, 1 << 20));
        if (chunk.isEmpty()) {
            break;
        }
        hash.addData(chunk);
        remaining -= chunk.size();
    }
    return QString::fromLatin1(hash.result().toHex());
}

void openOrThrow(QFile& file)
{
    if (!file.open(QIODevice::ReadOnly)) {
        throw Error(QStringLiteral("cannot read '%1': %2")
                        .arg(QDir::toNativeSeparators(file.fileName()), file.errorString()));
    }
}

} // namespace

QString fileShortHash(const QString& path)
{
    QFile file(path);
    openOrThrow(file);
    return sha256Hex(file, std::numeric_limits<qint64>::max()).left(10);
}

QString fileLegacyHash(const QString& path)
{
    QFile file(path);
    openOrThrow(file);
    file.seek(0x100000);
    return sha256Hex(file, 0x10000).left(8);
}

} // namespace studio
