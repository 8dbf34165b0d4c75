#include "core/train/RunConfig.h"

#include "core/Error.h"
#include "core/hypernetwork/Activation.h"
#include "core/io/AtomicFile.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonParseError>
#include <QLocale>
#include <QRegularExpression>
#include <QStringList>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <tuple>

namespace studio {

namespace {

// --- names of enumerated values ----------------------------------------------------------------

template <typename Enum> struct Named
{
    Enum value;
    const char* name;
};

constexpr std::array<Named<LatentSampling>, 3> kLatentSamplings = {{
    {LatentSampling::Once, "once"},
    {LatentSampling::Deterministic, "deterministic"},
    {LatentSampling::Random, "random"},
}};

constexpr std::array<Named<ClipGradMode>, 3> kClipGradModes = {{
    {ClipGradMode::None, "none"},
    {ClipGradMode::Norm, "norm"},
    {ClipGradMode::Value, "value"},
}};

// Run files spell optimizers in lower case; .optim files need PyTorch's class names.
constexpr std::array<Named<OptimizerKind>, 5> kOptimizerFileNames = {{
    {OptimizerKind::AdamW, "adamw"},
    {OptimizerKind::Adam, "adam"},
    {OptimizerKind::SGD, "sgd"},
    {OptimizerKind::RMSprop, "rmsprop"},
    {OptimizerKind::Adagrad, "adagrad"},
}};

constexpr std::array<Named<OptimizerKind>, 5> kOptimizerClassNames = {{
    {OptimizerKind::AdamW, "AdamW"},
    {OptimizerKind::Adam, "Adam"},
    {OptimizerKind::SGD, "SGD"},
    {OptimizerKind::RMSprop, "RMSprop"},
    {OptimizerKind::Adagrad, "Adagrad"},
}};

constexpr std::array<Named<AttentionChoice>, 3> kAttentionChoices = {{
    {AttentionChoice::Plain, "plain"},
    {AttentionChoice::Sliced, "sliced"},
    {AttentionChoice::Sdpa, "sdpa"},
}};

constexpr std::array<Named<LrScheduleKind>, 3> kScheduleKinds = {{
    {LrScheduleKind::Constant, "constant"},
    {LrScheduleKind::StepString, "step_string"},
    {LrScheduleKind::Cosine, "cosine"},
}};

template <typename Enum, size_t N>
QString nameIn(const std::array<Named<Enum>, N>& table, Enum value)
{
    for (const Named<Enum>& entry : table) {
        if (entry.value == value) {
            return QString::fromLatin1(entry.name);
        }
    }
    return QString::fromLatin1(table.front().name);
}

template <typename Enum, size_t N> QStringList namesIn(const std::array<Named<Enum>, N>& table)
{
    QStringList names;
    for (const Named<Enum>& entry : table) {
        names << QString::fromLatin1(entry.name);
    }
    return names;
}

// Case-insensitive. The error names no field: callers that have one add it.
template <typename Enum, size_t N>
Enum valueIn(const std::array<Named<Enum>, N>& table, const QString& text, const QString& what)
{
    for (const Named<Enum>& entry : table) {
        if (text.trimmed().compare(QLatin1String(entry.name), Qt::CaseInsensitive) == 0) {
            return entry.value;
        }
    }
    throw Error(QStringLiteral("unknown %1 '%2'; choose one of: %3")
                    .arg(what, text, namesIn(table).join(QStringLiteral(", "))));
}

const QStringList kPrecisions = {QStringLiteral("fp32"), QStringLiteral("fp16"),
                                 QStringLiteral("bf16")};

// resources/templates, as Dataset's builtInTemplateNames() lists them. Kept here so that a
// misspelt name fails when the run file is read, not after the model has loaded.
const QStringList kBuiltInTemplates = {
    QStringLiteral("style_filewords"), QStringLiteral("hypernetwork"),      QStringLiteral("style"),
    QStringLiteral("subject"),         QStringLiteral("subject_filewords"), QStringLiteral("none"),
};

// --- keys of each section ----------------------------------------------------------------------

const QStringList kTopKeys = {
    QStringLiteral("version"), QStringLiteral("model"),    QStringLiteral("hypernetwork"),
    QStringLiteral("dataset"), QStringLiteral("training"), QStringLiteral("preview"),
    QStringLiteral("output"),
};
const QStringList kModelKeys = {QStringLiteral("checkpoint"), QStringLiteral("config"),
                                QStringLiteral("tokenizer"), QStringLiteral("clip_skip")};
const QStringList kHypernetworkKeys = {QStringLiteral("name"), QStringLiteral("file"),
                                       QStringLiteral("strength"), QStringLiteral("create")};
const QStringList kCreateKeys = {
    QStringLiteral("sizes"),
    QStringLiteral("layer_structure"),
    QStringLiteral("activation"),
    QStringLiteral("layer_norm"),
    QStringLiteral("dropout_structure"),
    QStringLiteral("activate_output"),
    QStringLiteral("weight_init"),
    QStringLiteral("init_std"),
    QStringLiteral("init_seed"),
};
const QStringList kDatasetKeys = {
    QStringLiteral("folder"),
    QStringLiteral("template"),
    QStringLiteral("filename_word_regex"),
    QStringLiteral("filename_join_string"),
    QStringLiteral("width"),
    QStringLiteral("height"),
    QStringLiteral("no_crop"),
    QStringLiteral("flip_probability"),
    QStringLiteral("shuffle_tags"),
    QStringLiteral("tag_dropout"),
    QStringLiteral("latent_sampling"),
};
const QStringList kTrainingKeys = {
    QStringLiteral("steps"),
    QStringLiteral("batch_size"),
    QStringLiteral("gradient_accumulation"),
    QStringLiteral("seed"),
    QStringLiteral("optimizer"),
    QStringLiteral("learning_rate"),
    QStringLiteral("clip_grad"),
    QStringLiteral("device"),
    QStringLiteral("precision"),
    QStringLiteral("attention"),
    QStringLiteral("gradient_checkpointing"),
    QStringLiteral("unload_optimizer"),
};
const QStringList kOptimizerKeys = {
    QStringLiteral("name"),     QStringLiteral("weight_decay"), QStringLiteral("beta1"),
    QStringLiteral("beta2"),    QStringLiteral("eps"),          QStringLiteral("momentum"),
    QStringLiteral("nesterov"), QStringLiteral("alpha"),        QStringLiteral("amsgrad"),
};
const QStringList kLearningRateKeys = {QStringLiteral("schedule"), QStringLiteral("rate"),
                                       QStringLiteral("string"), QStringLiteral("cosine")};
const QStringList kCosineKeys = {QStringLiteral("cycle_steps"),  QStringLiteral("cycle_mult"),
                                 QStringLiteral("warmup_steps"), QStringLiteral("max_lr"),
                                 QStringLiteral("min_lr"),       QStringLiteral("decay")};
const QStringList kClipGradKeys = {QStringLiteral("mode"), QStringLiteral("value")};
const QStringList kPreviewKeys = {
    QStringLiteral("prompt"),  QStringLiteral("negative_prompt"), QStringLiteral("seed"),
    QStringLiteral("sampler"), QStringLiteral("steps"),           QStringLiteral("cfg_scale"),
    QStringLiteral("width"),   QStringLiteral("height"),
};
const QStringList kOutputKeys = {
    QStringLiteral("folder"),
    QStringLiteral("save_every"),
    QStringLiteral("preview_every"),
    QStringLiteral("save_at_cycle_end"),
    QStringLiteral("preview_at_cycle_end"),
    QStringLiteral("save_optimizer"),
};

// --- errors ------------------------------------------------------------------------------------

[[noreturn]] void fieldError(const QString& field, const QString& message)
{
    throw Error(field + QStringLiteral(": ") + message);
}

QString formatNumber(double value)
{
    return QString::number(value, 'g', QLocale::FloatingPointShortest);
}

QString describe(const QJsonValue& value)
{
    switch (value.type()) {
    case QJsonValue::Null:
        return QStringLiteral("null");
    case QJsonValue::Bool:
        return value.toBool() ? QStringLiteral("true") : QStringLiteral("false");
    case QJsonValue::Double:
        return QStringLiteral("the number ") + formatNumber(value.toDouble());
    case QJsonValue::String:
        return QStringLiteral("the string \"%1\"").arg(value.toString());
    case QJsonValue::Array:
        return QStringLiteral("an array");
    case QJsonValue::Object:
        return QStringLiteral("an object");
    case QJsonValue::Undefined:
        break;
    }
    return QStringLiteral("nothing");
}

// `expected` says what to write, with an example ("a whole number such as 500").
[[noreturn]] void wrongType(const QString& field, const QString& expected, const QJsonValue& value)
{
    QString hint;
    bool isNumber = false;
    value.toString().trimmed().toDouble(&isNumber);
    if (value.isString() && (isNumber || value.toString() == QLatin1String("true") ||
                             value.toString() == QLatin1String("false"))) {
        hint = QStringLiteral(" (write it without quotes)");
    }
    fieldError(field, QStringLiteral("expected %1, got %2%3").arg(expected, describe(value), hint));
}

const QString kText = QStringLiteral("text in double quotes");
const QString kFlag = QStringLiteral("true or false");
const QString kNumber = QStringLiteral("a number such as 0.5");
const QString kWholeNumber = QStringLiteral("a whole number such as 500");
const QString kObject = QStringLiteral("an object { ... }");

int editDistance(const QString& a, const QString& b)
{
    std::vector<int> previous(b.size() + 1);
    std::vector<int> current(b.size() + 1);
    for (int j = 0; j <= b.size(); ++j) {
        previous[j] = j;
    }
    for (int i = 1; i <= a.size(); ++i) {
        current[0] = i;
        for (int j = 1; j <= b.size(); ++j) {
            const int substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
        }
        std::swap(previous, current);
    }
    return previous[b.size()];
}

// The known key a typo most likely meant; empty when none is close enough to guess.
QString closestKey(const QString& key, const QStringList& known)
{
    QString best;
    int bestDistance = std::numeric_limits<int>::max();
    for (const QString& candidate : known) {
        const int distance = editDistance(key.toLower(), candidate);
        if (distance < bestDistance) {
            best = candidate;
            bestDistance = distance;
        }
    }
    const bool close = bestDistance <= 2 && bestDistance < key.size();
    return close ? best : QString();
}

[[noreturn]] void unknownKey(const QString& field, const QString& key, const QStringList& known)
{
    const QString closest = closestKey(key, known);
    if (!closest.isEmpty()) {
        fieldError(field, QStringLiteral("unknown key; did you mean '%1'?").arg(closest));
    }
    fieldError(
        field,
        QStringLiteral("unknown key; the keys here are: %1").arg(known.join(QStringLiteral(", "))));
}

// --- typed, path-aware access to one JSON object -----------------------------------------------

int64_t wholeNumber(const QString& field, const QJsonValue& value)
{
    if (!value.isDouble()) {
        wrongType(field, kWholeNumber, value);
    }
    // toInteger() returns its default when the number is fractional or out of range.
    const qint64 low = value.toInteger(0);
    if (low != value.toInteger(1)) {
        const double number = value.toDouble();
        if (std::trunc(number) != number) {
            wrongType(field, kWholeNumber, value);
        }
        fieldError(
            field,
            QStringLiteral("%1 is too large; use a value below 2^63").arg(formatNumber(number)));
    }
    return low;
}

class JsonSection
{
public:
    // Throws for the first key that is not in `known`.
    JsonSection(const QJsonObject& object, const QString& path, const QStringList& known)
        : m_object(object), m_path(path)
    {
        for (auto it = object.begin(); it != object.end(); ++it) {
            if (!known.contains(it.key())) {
                unknownKey(field(it.key()), it.key(), known);
            }
        }
    }

    QString field(const QString& key) const
    {
        return m_path.isEmpty() ? key : m_path + QLatin1Char('.') + key;
    }

    bool has(const QString& key) const { return m_object.contains(key); }
    QJsonValue value(const QString& key) const { return m_object.value(key); }

    QString text(const QString& key, const QString& fallback) const
    {
        return read(key, fallback, kText, &QJsonValue::isString,
                    [](const QJsonValue& value) { return value.toString(); });
    }

    bool flag(const QString& key, bool fallback) const
    {
        return read(key, fallback, kFlag, &QJsonValue::isBool,
                    [](const QJsonValue& value) { return value.toBool(); });
    }

    double number(const QString& key, double fallback) const
    {
        return read(key, fallback, kNumber, &QJsonValue::isDouble,
                    [](const QJsonValue& value) { return value.toDouble(); });
    }

    int64_t integer(const QString& key, int64_t fallback) const
    {
        return has(key) ? wholeNumber(field(key), value(key)) : fallback;
    }

    // A whole number that fits an int (counts and sizes).
    int count(const QString& key, int fallback) const
    {
        const int64_t number = integer(key, fallback);
        if (number < std::numeric_limits<int>::min() || number > std::numeric_limits<int>::max()) {
            fieldError(field(key), QStringLiteral("%1 is out of range; use a value between "
                                                  "-2147483648 and 2147483647")
                                       .arg(number));
        }
        return static_cast<int>(number);
    }

    // A missing section is an empty one: every key takes its default.
    JsonSection section(const QString& key, const QStringList& known) const
    {
        const QJsonValue child = value(key);
        if (has(key) && !child.isObject()) {
            wrongType(field(key), kObject, child);
        }
        return JsonSection(child.toObject(), field(key), known);
    }

private:
    template <typename T, typename Convert>
    T read(const QString& key, const T& fallback, const QString& expected,
           bool (QJsonValue::*isType)() const, Convert convert) const
    {
        if (!has(key)) {
            return fallback;
        }
        const QJsonValue item = value(key);
        if (!(item.*isType)()) {
            wrongType(field(key), expected, item);
        }
        return convert(item);
    }

    QJsonObject m_object;
    QString m_path;
};

template <typename Enum, size_t N>
Enum enumField(const JsonSection& json, const QString& key, const std::array<Named<Enum>, N>& table,
               Enum fallback)
{
    if (!json.has(key)) {
        return fallback;
    }
    const QString text = json.text(key, {});
    return withContext(json.field(key),
                       [&] { return valueIn(table, text, QStringLiteral("value")); });
}

// "1, 2, 1" or [1, 2, 1]; an empty string is an empty list.
std::vector<double> numberList(const JsonSection& json, const QString& key,
                               const std::vector<double>& fallback)
{
    if (!json.has(key)) {
        return fallback;
    }
    const QJsonValue value = json.value(key);
    const QString field = json.field(key);
    if (value.isString()) {
        const QString text = value.toString();
        return text.trimmed().isEmpty() ? std::vector<double>{} : parseNumberList(text, field);
    }
    if (!value.isArray()) {
        wrongType(field, QStringLiteral("a list such as \"1, 2, 1\" or [1, 2, 1]"), value);
    }
    std::vector<double> numbers;
    const QJsonArray array = value.toArray();
    for (qsizetype i = 0; i < array.size(); ++i) {
        if (!array.at(i).isDouble()) {
            wrongType(QStringLiteral("%1[%2]").arg(field).arg(i), kNumber, array.at(i));
        }
        numbers.push_back(array.at(i).toDouble());
    }
    return numbers;
}

// [768, 320] or "768, 320".
std::vector<int> sizeList(const JsonSection& json, const QString& key,
                          const std::vector<int>& fallback)
{
    if (!json.has(key)) {
        return fallback;
    }
    const QJsonValue value = json.value(key);
    const QString field = json.field(key);
    if (value.isString()) {
        return parseSizeList(value.toString(), field);
    }
    if (!value.isArray()) {
        wrongType(field, QStringLiteral("a list of widths such as [768, 320, 640, 1280]"), value);
    }
    std::vector<int> sizes;
    const QJsonArray array = value.toArray();
    for (qsizetype i = 0; i < array.size(); ++i) {
        const QString itemField = QStringLiteral("%1[%2]").arg(field).arg(i);
        const int64_t size = wholeNumber(itemField, array.at(i));
        if (size < 1 || size > std::numeric_limits<int>::max()) {
            fieldError(itemField,
                       QStringLiteral("width %1 must be positive, such as 768").arg(size));
        }
        sizes.push_back(static_cast<int>(size));
    }
    return sizes;
}

// --- parsing, one section at a time ------------------------------------------------------------

// Blank stays empty ("not set"), so that a required field written as "  " is reported as
// missing instead of becoming the run file's folder plus two spaces.
QString resolvePath(const QString& path, const QString& baseDir)
{
    if (path.trimmed().isEmpty()) {
        return {};
    }
    if (QDir::isAbsolutePath(path)) {
        return QDir::cleanPath(path);
    }
    return QDir::cleanPath(QDir(baseDir).absoluteFilePath(path));
}

// A built-in template is a bare name ("style_filewords"); anything that looks like a file is a
// path relative to the run file.
bool looksLikeTemplateFile(const QString& value)
{
    return value.contains(QLatin1Char('/')) || value.contains(QLatin1Char('\\')) ||
           value.endsWith(QLatin1String(".txt"), Qt::CaseInsensitive);
}

QString resolveTemplate(const QString& value, const QString& baseDir)
{
    return looksLikeTemplateFile(value) ? resolvePath(value, baseDir) : value;
}

void checkVersion(const JsonSection& root)
{
    const int64_t version = root.integer(QStringLiteral("version"), RunConfig::kVersion);
    if (version > RunConfig::kVersion) {
        fieldError(QStringLiteral("version"),
                   QStringLiteral("this run file has version %1, but this Hypernet Studio reads "
                                  "version %2; update Hypernet Studio to train with it")
                       .arg(version)
                       .arg(RunConfig::kVersion));
    }
    if (version < 1) {
        fieldError(QStringLiteral("version"),
                   QStringLiteral("must be %1, got %2").arg(RunConfig::kVersion).arg(version));
    }
}

ModelSection parseModel(const JsonSection& json, const QString& baseDir)
{
    ModelSection model;
    model.checkpoint = resolvePath(json.text(QStringLiteral("checkpoint"), {}), baseDir);
    model.config = resolvePath(json.text(QStringLiteral("config"), {}), baseDir);
    model.tokenizer = resolvePath(json.text(QStringLiteral("tokenizer"), {}), baseDir);
    model.clipSkip = json.count(QStringLiteral("clip_skip"), model.clipSkip);
    return model;
}

// A string, or null for the webui's None.
std::optional<QString> parseActivationName(const JsonSection& json,
                                           const std::optional<QString>& fallback)
{
    const QString key = QStringLiteral("activation");
    if (json.has(key) && json.value(key).isNull()) {
        return std::nullopt;
    }
    return json.has(key) ? json.text(key, {}) : fallback;
}

std::optional<uint64_t> parseInitSeed(const JsonSection& json)
{
    const QString key = QStringLiteral("init_seed");
    const int64_t seed = json.integer(key, -1);
    if (seed < -1) {
        fieldError(json.field(key), QStringLiteral("must be -1 (seed from training.seed) or a seed "
                                                   ">= 0, got %1")
                                        .arg(seed));
    }
    return seed == -1 ? std::nullopt : std::optional<uint64_t>(static_cast<uint64_t>(seed));
}

// As the webui's create form saves them: an unused dropout list as ints ([0, 0, 0]), a used one
// as floats, the layer structure as floats.
void applyDropoutConvention(HypernetworkConfig& create)
{
    const std::vector<double>& dropout = create.dropoutStructure;
    create.useDropout = std::any_of(dropout.begin(), dropout.end(), [](double p) { return p > 0; });
    create.dropoutStructureIntegerItems.assign(create.useDropout ? 0 : dropout.size(), true);
    create.layerStructureIntegerItems.clear();
}

HypernetworkConfig parseCreate(const JsonSection& json)
{
    HypernetworkConfig create;
    create.sizes = sizeList(json, QStringLiteral("sizes"), create.sizes);
    create.layerStructure =
        numberList(json, QStringLiteral("layer_structure"), create.layerStructure);
    // Absent or empty: no dropout, one zero per layer entry.
    create.dropoutStructure = numberList(json, QStringLiteral("dropout_structure"), {});
    if (create.dropoutStructure.empty()) {
        create.dropoutStructure.assign(create.layerStructure.size(), 0.0);
    }
    create.activation = parseActivationName(json, create.activation);
    create.layerNorm = json.flag(QStringLiteral("layer_norm"), create.layerNorm);
    create.activateOutput = json.flag(QStringLiteral("activate_output"), create.activateOutput);
    const QString init =
        json.text(QStringLiteral("weight_init"), weightInitName(create.weightInit));
    create.weightInit = withContext(json.field(QStringLiteral("weight_init")),
                                    [&] { return parseWeightInit(init); });
    create.normalStd = json.number(QStringLiteral("init_std"), create.normalStd);
    create.initSeed = parseInitSeed(json);
    applyDropoutConvention(create);
    return create;
}

HypernetworkSection parseHypernetwork(const JsonSection& json, const QString& baseDir)
{
    HypernetworkSection hypernetwork;
    hypernetwork.name = json.text(QStringLiteral("name"), {});
    hypernetwork.file = resolvePath(json.text(QStringLiteral("file"), {}), baseDir);
    hypernetwork.strength = json.number(QStringLiteral("strength"), hypernetwork.strength);
    hypernetwork.create = parseCreate(json.section(QStringLiteral("create"), kCreateKeys));
    hypernetwork.create.name = hypernetwork.name;
    return hypernetwork;
}

DatasetSection parseDataset(const JsonSection& json, const QString& baseDir)
{
    DatasetSection dataset;
    dataset.folder = resolvePath(json.text(QStringLiteral("folder"), {}), baseDir);
    dataset.templateFile =
        resolveTemplate(json.text(QStringLiteral("template"), dataset.templateFile), baseDir);
    dataset.filenameWordRegex =
        json.text(QStringLiteral("filename_word_regex"), dataset.filenameWordRegex);
    dataset.filenameJoinString =
        json.text(QStringLiteral("filename_join_string"), dataset.filenameJoinString);
    dataset.width = json.count(QStringLiteral("width"), dataset.width);
    dataset.height = json.count(QStringLiteral("height"), dataset.height);
    dataset.noCrop = json.flag(QStringLiteral("no_crop"), dataset.noCrop);
    dataset.flipProbability =
        json.number(QStringLiteral("flip_probability"), dataset.flipProbability);
    dataset.shuffleTags = json.flag(QStringLiteral("shuffle_tags"), dataset.shuffleTags);
    dataset.tagDropout = json.number(QStringLiteral("tag_dropout"), dataset.tagDropout);
    dataset.latentSampling = enumField(json, QStringLiteral("latent_sampling"), kLatentSamplings,
                                       dataset.latentSampling);
    return dataset;
}

OptimizerSection parseOptimizer(const JsonSection& json)
{
    OptimizerSection optimizer;
    const QString name = json.text(QStringLiteral("name"), optimizerName(optimizer.kind));
    optimizer.kind =
        withContext(json.field(QStringLiteral("name")), [&] { return parseOptimizerKind(name); });
    optimizer.weightDecay =
        json.number(QStringLiteral("weight_decay"), defaultWeightDecay(optimizer.kind));
    optimizer.beta1 = json.number(QStringLiteral("beta1"), optimizer.beta1);
    optimizer.beta2 = json.number(QStringLiteral("beta2"), optimizer.beta2);
    optimizer.eps = json.number(QStringLiteral("eps"), optimizer.eps);
    optimizer.momentum = json.number(QStringLiteral("momentum"), optimizer.momentum);
    optimizer.nesterov = json.flag(QStringLiteral("nesterov"), optimizer.nesterov);
    optimizer.alpha = json.number(QStringLiteral("alpha"), optimizer.alpha);
    optimizer.amsgrad = json.flag(QStringLiteral("amsgrad"), optimizer.amsgrad);
    return optimizer;
}

CosineLrParams parseCosine(const JsonSection& json)
{
    CosineLrParams cosine;
    cosine.firstCycleSteps = json.integer(QStringLiteral("cycle_steps"), cosine.firstCycleSteps);
    cosine.cycleMult = json.number(QStringLiteral("cycle_mult"), cosine.cycleMult);
    cosine.warmupSteps = json.integer(QStringLiteral("warmup_steps"), cosine.warmupSteps);
    cosine.maxLr = json.number(QStringLiteral("max_lr"), cosine.maxLr);
    cosine.minLr = json.number(QStringLiteral("min_lr"), cosine.minLr);
    cosine.gamma = json.number(QStringLiteral("decay"), cosine.gamma);
    return cosine;
}

LrScheduleSpec parseLearningRate(const JsonSection& json)
{
    LrScheduleSpec spec;
    spec.kind = enumField(json, QStringLiteral("schedule"), kScheduleKinds, spec.kind);
    spec.learnRate = json.number(QStringLiteral("rate"), spec.learnRate);
    spec.learnRateString = json.text(QStringLiteral("string"), spec.learnRateString);
    spec.cosine = parseCosine(json.section(QStringLiteral("cosine"), kCosineKeys));
    return spec;
}

uint64_t parseSeed(const JsonSection& json, const QString& key, uint64_t fallback)
{
    const int64_t seed = json.integer(key, static_cast<int64_t>(fallback));
    if (seed < 0) {
        fieldError(json.field(key),
                   QStringLiteral("must be a seed >= 0, got %1; any whole number from 0 "
                                  "to 2^63 - 1 works")
                       .arg(seed));
    }
    return static_cast<uint64_t>(seed);
}

TrainingSection parseTraining(const JsonSection& json)
{
    TrainingSection training;
    training.steps = json.integer(QStringLiteral("steps"), training.steps);
    training.batchSize = json.count(QStringLiteral("batch_size"), training.batchSize);
    training.gradientAccumulation =
        json.count(QStringLiteral("gradient_accumulation"), training.gradientAccumulation);
    training.seed = parseSeed(json, QStringLiteral("seed"), training.seed);
    training.optimizer = parseOptimizer(json.section(QStringLiteral("optimizer"), kOptimizerKeys));
    training.learningRate =
        parseLearningRate(json.section(QStringLiteral("learning_rate"), kLearningRateKeys));
    const JsonSection clip = json.section(QStringLiteral("clip_grad"), kClipGradKeys);
    training.clipGradMode =
        enumField(clip, QStringLiteral("mode"), kClipGradModes, training.clipGradMode);
    training.clipGradValue = clip.number(QStringLiteral("value"), training.clipGradValue);
    training.device = json.text(QStringLiteral("device"), training.device);
    training.precision = json.text(QStringLiteral("precision"), training.precision);
    training.attention =
        enumField(json, QStringLiteral("attention"), kAttentionChoices, training.attention);
    training.gradientCheckpointing =
        json.flag(QStringLiteral("gradient_checkpointing"), training.gradientCheckpointing);
    training.unloadOptimizer =
        json.flag(QStringLiteral("unload_optimizer"), training.unloadOptimizer);
    return training;
}

PreviewSection parsePreview(const JsonSection& json)
{
    PreviewSection preview;
    preview.prompt = json.text(QStringLiteral("prompt"), preview.prompt);
    preview.negativePrompt = json.text(QStringLiteral("negative_prompt"), preview.negativePrompt);
    preview.seed = json.integer(QStringLiteral("seed"), preview.seed);
    const QString sampler = json.text(QStringLiteral("sampler"), samplerName(preview.sampler));
    preview.sampler = withContext(json.field(QStringLiteral("sampler")),
                                  [&] { return parseSamplerKind(sampler); });
    preview.steps = json.count(QStringLiteral("steps"), preview.steps);
    preview.cfgScale = json.number(QStringLiteral("cfg_scale"), preview.cfgScale);
    preview.width = json.count(QStringLiteral("width"), preview.width);
    preview.height = json.count(QStringLiteral("height"), preview.height);
    return preview;
}

OutputSection parseOutput(const JsonSection& json, const QString& baseDir)
{
    OutputSection output;
    output.folder = resolvePath(json.text(QStringLiteral("folder"), {}), baseDir);
    output.saveEvery = json.integer(QStringLiteral("save_every"), output.saveEvery);
    output.previewEvery = json.integer(QStringLiteral("preview_every"), output.previewEvery);
    output.saveAtCycleEnd = json.flag(QStringLiteral("save_at_cycle_end"), output.saveAtCycleEnd);
    output.previewAtCycleEnd =
        json.flag(QStringLiteral("preview_at_cycle_end"), output.previewAtCycleEnd);
    output.saveOptimizer = json.flag(QStringLiteral("save_optimizer"), output.saveOptimizer);
    return output;
}

RunConfig parseRunConfig(const QJsonObject& object, const QString& baseDir)
{
    const JsonSection root(object, {}, kTopKeys);
    checkVersion(root);
    RunConfig config;
    config.model = parseModel(root.section(QStringLiteral("model"), kModelKeys), baseDir);
    config.hypernetwork =
        parseHypernetwork(root.section(QStringLiteral("hypernetwork"), kHypernetworkKeys), baseDir);
    config.dataset = parseDataset(root.section(QStringLiteral("dataset"), kDatasetKeys), baseDir);
    config.training = parseTraining(root.section(QStringLiteral("training"), kTrainingKeys));
    config.preview = parsePreview(root.section(QStringLiteral("preview"), kPreviewKeys));
    config.output = parseOutput(root.section(QStringLiteral("output"), kOutputKeys), baseDir);
    return config;
}

// --- validation --------------------------------------------------------------------------------

void requireText(const QString& value, const QString& field, const QString& meaning)
{
    if (value.trimmed().isEmpty()) {
        fieldError(field, QStringLiteral("is missing or empty; set it to %1").arg(meaning));
    }
}

void requireAtLeast(int64_t value, int64_t minimum, const QString& field, const QString& meaning)
{
    if (value < minimum) {
        fieldError(
            field,
            QStringLiteral("must be %1 or more, got %2 (%3)").arg(minimum).arg(value).arg(meaning));
    }
}

void requireInRange(double value, double low, double high, const QString& field,
                    const QString& meaning)
{
    if (!(value >= low && value <= high)) {
        fieldError(field,
                   QStringLiteral("must lie between %1 and %2, got %3 (%4)")
                       .arg(formatNumber(low), formatNumber(high), formatNumber(value), meaning));
    }
}

// JSON has no infinity or NaN, but configs built in code can hold them.
void requireNonNegative(double value, const QString& field, const QString& meaning)
{
    if (!(value >= 0.0) || !std::isfinite(value)) {
        fieldError(
            field,
            QStringLiteral("must be 0 or more, got %1 (%2)").arg(formatNumber(value), meaning));
    }
}

// Training and preview images: latents are 1/8 of the image, and the UNet needs whole latents.
void requireImageSide(int value, const QString& field, bool zeroAllowed)
{
    if ((zeroAllowed && value == 0) || (value >= 64 && value <= 4096 && value % 8 == 0)) {
        return;
    }
    const int lower = std::max(64, value / 8 * 8);
    const QString zero = zeroAllowed ? QStringLiteral("0 (the training size) or ") : QString();
    fieldError(field, QStringLiteral("must be %1a multiple of 8 from 64 to 4096, got %2; try %3")
                          .arg(zero)
                          .arg(value)
                          .arg(std::min(lower, 4096)));
}

// NAME-STEP.pt must be a plain file name on every system the studio runs on.
void validateFileStem(const QString& name, const QString& field)
{
    const QString forbidden = QStringLiteral("/\\:*?\"<>|");
    for (const QChar ch : name) {
        if (forbidden.contains(ch) || ch.unicode() < 0x20) {
            const QString shown = ch.unicode() < 0x20 ? QStringLiteral("a control character")
                                                      : QStringLiteral("'%1'").arg(ch);
            fieldError(field, QStringLiteral("'%1' contains %2, which a file name cannot hold "
                                             "(files are saved as NAME-STEP.pt); use letters, "
                                             "digits, spaces, '-', '_' or '.'")
                                  .arg(name, shown));
        }
    }
    if (name == QLatin1String(".") || name == QLatin1String("..") || name != name.trimmed()) {
        fieldError(field, QStringLiteral("'%1' is not usable as a file name; use letters, digits, "
                                         "'-', '_' or '.', without spaces at either end")
                              .arg(name));
    }
}

void validateRequired(const RunConfig& config)
{
    requireText(config.model.checkpoint, QStringLiteral("model.checkpoint"),
                QStringLiteral("the Stable Diffusion checkpoint to train on (.safetensors or "
                               ".ckpt)"));
    requireText(config.hypernetwork.name, QStringLiteral("hypernetwork.name"),
                QStringLiteral("the hypernetwork's name; files are saved as NAME-STEP.pt"));
    validateFileStem(config.hypernetwork.name, QStringLiteral("hypernetwork.name"));
    requireText(config.dataset.folder, QStringLiteral("dataset.folder"),
                QStringLiteral("the folder of training images"));
    requireText(config.output.folder, QStringLiteral("output.folder"),
                QStringLiteral("the run folder that receives hypernetworks/, images/ and "
                               "loss.csv"));
}

void validateCreateStage(const HypernetworkConfig& probe, const QString& field)
{
    withContext(field, [&] { validate(probe, true); });
}

// validate() does not know the run file's field names. Each stage checks one more field of
// `create` with the others still at defaults that pass, so a failure belongs to that field.
void validateCreate(const HypernetworkConfig& create)
{
    const QString prefix = QStringLiteral("hypernetwork.create.");
    HypernetworkConfig probe;
    probe.sizes = create.sizes;
    validateCreateStage(probe, prefix + QStringLiteral("sizes"));
    probe.layerStructure = create.layerStructure;
    probe.dropoutStructure.assign(create.layerStructure.size(), 0.0);
    validateCreateStage(probe, prefix + QStringLiteral("layer_structure"));
    probe.dropoutStructure = create.dropoutStructure;
    validateCreateStage(probe, prefix + QStringLiteral("dropout_structure"));
    if (create.activation) {
        withContext(prefix + QStringLiteral("activation"),
                    [&] { parseActivation(*create.activation); });
    }
    if (!(create.normalStd > 0.0) || !std::isfinite(create.normalStd)) {
        fieldError(prefix + QStringLiteral("init_std"),
                   QStringLiteral("must be a number > 0, got %1; the webui uses 0.01")
                       .arg(formatNumber(create.normalStd)));
    }
    // The file stores it as a signed integer with -1 for "none".
    if (create.initSeed && *create.initSeed > uint64_t(std::numeric_limits<int64_t>::max())) {
        fieldError(prefix + QStringLiteral("init_seed"),
                   QStringLiteral("%1 is too large; use -1 or a seed from 0 to 2^63 - 1")
                       .arg(*create.initSeed));
    }
    // Whatever else validate() checks, for the configuration as a whole.
    validateCreateStage(create, QStringLiteral("hypernetwork.create"));
}

void validateHypernetwork(const HypernetworkSection& hypernetwork)
{
    if (!std::isfinite(hypernetwork.strength)) {
        fieldError(QStringLiteral("hypernetwork.strength"),
                   QStringLiteral("must be a finite number such as 1.0"));
    }
    // The create section describes a new hypernetwork; continuing a file ignores it.
    if (hypernetwork.file.isEmpty()) {
        validateCreate(hypernetwork.create);
    }
}

// Whether a template file exists is checked when the dataset loads; a bare name must be one of
// the built-in templates.
void validateTemplate(const QString& value)
{
    const QString field = QStringLiteral("dataset.template");
    const QString names = kBuiltInTemplates.join(QStringLiteral(", "));
    if (value.trimmed().isEmpty()) {
        fieldError(field, QStringLiteral("is empty; write a built-in template (%1) or the path "
                                         "of a template file")
                              .arg(names));
    }
    if (!looksLikeTemplateFile(value) && !kBuiltInTemplates.contains(value)) {
        fieldError(field, QStringLiteral("'%1' is not a built-in template (%2); for a file of "
                                         "your own write its path, such as \"./%1.txt\"")
                              .arg(value, names));
    }
}

void validateDataset(const DatasetSection& dataset)
{
    validateTemplate(dataset.templateFile);
    requireImageSide(dataset.width, QStringLiteral("dataset.width"), false);
    requireImageSide(dataset.height, QStringLiteral("dataset.height"), false);
    requireInRange(dataset.flipProbability, 0.0, 1.0, QStringLiteral("dataset.flip_probability"),
                   QStringLiteral("the chance that an image is mirrored; 0 = never"));
    requireInRange(dataset.tagDropout, 0.0, 1.0, QStringLiteral("dataset.tag_dropout"),
                   QStringLiteral("the chance that a caption tag is left out; 0 = never"));
    const QRegularExpression regex(dataset.filenameWordRegex);
    if (!regex.isValid()) {
        fieldError(QStringLiteral("dataset.filename_word_regex"),
                   QStringLiteral("'%1' is not a valid regular expression: %2 at offset %3")
                       .arg(dataset.filenameWordRegex, regex.errorString())
                       .arg(regex.patternErrorOffset()));
    }
}

void validateOptimizer(const OptimizerSection& optimizer)
{
    const QString prefix = QStringLiteral("training.optimizer.");
    requireNonNegative(optimizer.weightDecay, prefix + QStringLiteral("weight_decay"),
                       QStringLiteral("0.01 is AdamW's default"));
    // torch refuses betas outside [0, 1); 1 itself would never forget a gradient.
    for (const auto& [value, key] :
         {std::pair{optimizer.beta1, "beta1"}, std::pair{optimizer.beta2, "beta2"}}) {
        if (!(value >= 0.0 && value < 1.0)) {
            fieldError(prefix + QLatin1String(key),
                       QStringLiteral("must be >= 0 and < 1, got %1; torch's defaults are 0.9 "
                                      "and 0.999")
                           .arg(formatNumber(value)));
        }
    }
    requireInRange(optimizer.eps, 0.0, 1.0, prefix + QStringLiteral("eps"),
                   QStringLiteral("torch's default is 1e-8"));
    requireNonNegative(optimizer.momentum, prefix + QStringLiteral("momentum"),
                       QStringLiteral("SGD and RMSprop; 0 = none"));
    requireNonNegative(optimizer.alpha, prefix + QStringLiteral("alpha"),
                       QStringLiteral("RMSprop's smoothing, default 0.99"));
    if (optimizer.kind == OptimizerKind::SGD && optimizer.nesterov && optimizer.momentum <= 0.0) {
        fieldError(prefix + QStringLiteral("nesterov"),
                   QStringLiteral("Nesterov momentum needs training.optimizer.momentum > 0 "
                                  "(it is 0); set a momentum such as 0.9 or turn nesterov off"));
    }
}

QString scheduleFieldName(LrSpecField field)
{
    const QString cosine = QStringLiteral("training.learning_rate.cosine.");
    switch (field) {
    case LrSpecField::MaxSteps:
        return QStringLiteral("training.steps");
    case LrSpecField::InitialStep:
        return QStringLiteral("training.learning_rate");
    case LrSpecField::LearnRate:
        return QStringLiteral("training.learning_rate.rate");
    case LrSpecField::LearnRateString:
        return QStringLiteral("training.learning_rate.string");
    case LrSpecField::FirstCycleSteps:
        return cosine + QStringLiteral("cycle_steps");
    case LrSpecField::CycleMult:
        return cosine + QStringLiteral("cycle_mult");
    case LrSpecField::MaxLr:
        return cosine + QStringLiteral("max_lr");
    case LrSpecField::MinLr:
        return cosine + QStringLiteral("min_lr");
    case LrSpecField::WarmupSteps:
        return cosine + QStringLiteral("warmup_steps");
    case LrSpecField::Gamma:
        return cosine + QStringLiteral("decay");
    }
    return QStringLiteral("training.learning_rate");
}

void validateCosineCycle(const CosineLrParams& cosine)
{
    const QString prefix = QStringLiteral("training.learning_rate.cosine.");
    requireAtLeast(cosine.firstCycleSteps, 1, prefix + QStringLiteral("cycle_steps"),
                   QStringLiteral("the first cycle's length in optimizer steps, e.g. 64"));
    requireAtLeast(cosine.warmupSteps, 0, prefix + QStringLiteral("warmup_steps"),
                   QStringLiteral("0 = no warm-up"));
    // Later cycles are never shorter (cycle_mult >= 1), so the first one is the limit.
    if (cosine.warmupSteps >= cosine.firstCycleSteps) {
        fieldError(prefix + QStringLiteral("warmup_steps"),
                   QStringLiteral("must be smaller than cosine.cycle_steps (%1), got %2: the "
                                  "warm-up has to end inside the cycle; shorten the warm-up or "
                                  "lengthen the cycle")
                       .arg(cosine.firstCycleSteps)
                       .arg(cosine.warmupSteps));
    }
    if (!(cosine.cycleMult >= 1.0) || !std::isfinite(cosine.cycleMult)) {
        fieldError(prefix + QStringLiteral("cycle_mult"),
                   QStringLiteral("must be 1 or more, got %1; 1 keeps every cycle as long as "
                                  "the first, 2 doubles each one")
                       .arg(formatNumber(cosine.cycleMult)));
    }
}

void validateCosineRates(const CosineLrParams& cosine)
{
    const QString prefix = QStringLiteral("training.learning_rate.cosine.");
    if (!(cosine.maxLr > 0.0) || !std::isfinite(cosine.maxLr)) {
        fieldError(prefix + QStringLiteral("max_lr"),
                   QStringLiteral("must be > 0, got %1; it is the first cycle's peak rate, "
                                  "e.g. 4e-5")
                       .arg(formatNumber(cosine.maxLr)));
    }
    // The extension's own check: a floor of 1 or more is a typo, not a schedule.
    if (!(cosine.minLr >= 0.0 && cosine.minLr < 1.0)) {
        fieldError(prefix + QStringLiteral("min_lr"),
                   QStringLiteral("must be >= 0 and < 1, got %1; it is the floor the cosine "
                                  "descends to, usually tiny, e.g. 6e-7")
                       .arg(formatNumber(cosine.minLr)));
    }
    if (cosine.minLr > cosine.maxLr) {
        fieldError(prefix + QStringLiteral("min_lr"),
                   QStringLiteral("%1 is above cosine.max_lr (%2); the rate falls from max_lr "
                                  "to min_lr, so lower min_lr or raise max_lr")
                       .arg(formatNumber(cosine.minLr), formatNumber(cosine.maxLr)));
    }
    requireInRange(cosine.gamma, 0.0, 1.0, prefix + QStringLiteral("decay"),
                   QStringLiteral("each cycle's peak is max_lr * decay^cycle; 1 = no decay"));
}

void validateSchedule(const RunConfig& config)
{
    const LrScheduleSpec spec = config.scheduleSpec(0);
    // Checked here first so that messages use the run file's names (cycle_steps, decay).
    if (spec.kind == LrScheduleKind::Cosine) {
        validateCosineCycle(spec.cosine);
        validateCosineRates(spec.cosine);
    }
    if (const std::optional<LrSpecProblem> problem = findLrSpecProblem(spec)) {
        fieldError(scheduleFieldName(problem->field), problem->message);
    }
    // A zero rate trains nothing; the schedule allows it, a run should not.
    if (spec.kind == LrScheduleKind::Constant && !(spec.learnRate > 0.0)) {
        fieldError(QStringLiteral("training.learning_rate.rate"),
                   QStringLiteral("must be > 0, got %1; a typical hypernetwork rate is 1e-5")
                       .arg(formatNumber(spec.learnRate)));
    }
}

void validateDevice(const TrainingSection& training)
{
    static const QRegularExpression device(QStringLiteral("^(cpu|cuda(:[0-9]+)?)$"));
    if (!device.match(training.device).hasMatch()) {
        fieldError(QStringLiteral("training.device"),
                   QStringLiteral("'%1' is not a device; write cpu, cuda or cuda:N (N the GPU "
                                  "index, e.g. cuda:0)")
                       .arg(training.device));
    }
    if (!kPrecisions.contains(training.precision)) {
        fieldError(QStringLiteral("training.precision"),
                   QStringLiteral("unknown precision '%1'; choose one of: %2")
                       .arg(training.precision, kPrecisions.join(QStringLiteral(", "))));
    }
    if (training.precision == QLatin1String("fp16") && training.device == QLatin1String("cpu")) {
        fieldError(QStringLiteral("training.precision"),
                   QStringLiteral("fp16 needs a CUDA device, but training.device is 'cpu' (the "
                                  "CPU lacks half-precision kernels); use fp32 or bf16, or set "
                                  "training.device to cuda"));
    }
}

void validateTraining(const RunConfig& config)
{
    const TrainingSection& training = config.training;
    requireAtLeast(training.steps, 1, QStringLiteral("training.steps"),
                   QStringLiteral("the number of optimizer steps to train"));
    requireAtLeast(training.batchSize, 1, QStringLiteral("training.batch_size"),
                   QStringLiteral("images per micro-batch"));
    requireAtLeast(training.gradientAccumulation, 1,
                   QStringLiteral("training.gradient_accumulation"),
                   QStringLiteral("micro-batches per optimizer step; 1 = none"));
    // Larger seeds would not survive the round trip through the file's integers.
    if (training.seed > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fieldError(
            QStringLiteral("training.seed"),
            QStringLiteral("%1 is too large; use a seed from 0 to 2^63 - 1").arg(training.seed));
    }
    validateOptimizer(training.optimizer);
    validateSchedule(config);
    if (training.clipGradMode != ClipGradMode::None &&
        (!(training.clipGradValue > 0.0) || !std::isfinite(training.clipGradValue))) {
        fieldError(QStringLiteral("training.clip_grad.value"),
                   QStringLiteral("must be > 0 when clipping is on, got %1; the webui's default "
                                  "is 0.1, or set training.clip_grad.mode to none")
                       .arg(formatNumber(training.clipGradValue)));
    }
    validateDevice(training);
}

void validatePreview(const PreviewSection& preview)
{
    requireAtLeast(preview.steps, 1, QStringLiteral("preview.steps"),
                   QStringLiteral("sampler steps per preview image, e.g. 20"));
    requireNonNegative(preview.cfgScale, QStringLiteral("preview.cfg_scale"),
                       QStringLiteral("classifier-free guidance; 7 is usual"));
    requireImageSide(preview.width, QStringLiteral("preview.width"), true);
    requireImageSide(preview.height, QStringLiteral("preview.height"), true);
    requireAtLeast(preview.seed, -1, QStringLiteral("preview.seed"),
                   QStringLiteral("-1 draws a seed from the run's own generator"));
}

void validateOutput(const OutputSection& output)
{
    requireAtLeast(output.saveEvery, 0, QStringLiteral("output.save_every"),
                   QStringLiteral("steps between saves; 0 = only at the end"));
    requireAtLeast(output.previewEvery, 0, QStringLiteral("output.preview_every"),
                   QStringLiteral("steps between previews; 0 = none"));
}

// --- writing -----------------------------------------------------------------------------------

template <typename T> QJsonArray toJsonArray(const std::vector<T>& values)
{
    QJsonArray array;
    for (const T& value : values) {
        array.append(value);
    }
    return array;
}

QJsonObject toJson(const ModelSection& model)
{
    return {{QStringLiteral("checkpoint"), model.checkpoint},
            {QStringLiteral("config"), model.config},
            {QStringLiteral("tokenizer"), model.tokenizer},
            {QStringLiteral("clip_skip"), model.clipSkip}};
}

QJsonObject toJson(const HypernetworkConfig& create)
{
    const QJsonValue activation =
        create.activation ? QJsonValue(*create.activation) : QJsonValue(QJsonValue::Null);
    const qint64 initSeed = create.initSeed ? static_cast<qint64>(*create.initSeed) : -1;
    return {{QStringLiteral("sizes"), toJsonArray(create.sizes)},
            {QStringLiteral("layer_structure"), toJsonArray(create.layerStructure)},
            {QStringLiteral("activation"), activation},
            {QStringLiteral("layer_norm"), create.layerNorm},
            {QStringLiteral("dropout_structure"), toJsonArray(create.dropoutStructure)},
            {QStringLiteral("activate_output"), create.activateOutput},
            {QStringLiteral("weight_init"), weightInitName(create.weightInit)},
            {QStringLiteral("init_std"), create.normalStd},
            {QStringLiteral("init_seed"), initSeed}};
}

QJsonObject toJson(const HypernetworkSection& hypernetwork)
{
    return {{QStringLiteral("name"), hypernetwork.name},
            {QStringLiteral("file"), hypernetwork.file},
            {QStringLiteral("strength"), hypernetwork.strength},
            {QStringLiteral("create"), toJson(hypernetwork.create)}};
}

QJsonObject toJson(const DatasetSection& dataset)
{
    return {{QStringLiteral("folder"), dataset.folder},
            {QStringLiteral("template"), dataset.templateFile},
            {QStringLiteral("filename_word_regex"), dataset.filenameWordRegex},
            {QStringLiteral("filename_join_string"), dataset.filenameJoinString},
            {QStringLiteral("width"), dataset.width},
            {QStringLiteral("height"), dataset.height},
            {QStringLiteral("no_crop"), dataset.noCrop},
            {QStringLiteral("flip_probability"), dataset.flipProbability},
            {QStringLiteral("shuffle_tags"), dataset.shuffleTags},
            {QStringLiteral("tag_dropout"), dataset.tagDropout},
            {QStringLiteral("latent_sampling"), latentSamplingName(dataset.latentSampling)}};
}

QJsonObject toJson(const OptimizerSection& optimizer)
{
    return {{QStringLiteral("name"), nameIn(kOptimizerFileNames, optimizer.kind)},
            {QStringLiteral("weight_decay"), optimizer.weightDecay},
            {QStringLiteral("beta1"), optimizer.beta1},
            {QStringLiteral("beta2"), optimizer.beta2},
            {QStringLiteral("eps"), optimizer.eps},
            {QStringLiteral("momentum"), optimizer.momentum},
            {QStringLiteral("nesterov"), optimizer.nesterov},
            {QStringLiteral("alpha"), optimizer.alpha},
            {QStringLiteral("amsgrad"), optimizer.amsgrad}};
}

QJsonObject toJson(const LrScheduleSpec& spec)
{
    const CosineLrParams& c = spec.cosine;
    const QJsonObject cosine = {{QStringLiteral("cycle_steps"), qint64(c.firstCycleSteps)},
                                {QStringLiteral("cycle_mult"), c.cycleMult},
                                {QStringLiteral("warmup_steps"), qint64(c.warmupSteps)},
                                {QStringLiteral("max_lr"), c.maxLr},
                                {QStringLiteral("min_lr"), c.minLr},
                                {QStringLiteral("decay"), c.gamma}};
    return {{QStringLiteral("schedule"), nameIn(kScheduleKinds, spec.kind)},
            {QStringLiteral("rate"), spec.learnRate},
            {QStringLiteral("string"), spec.learnRateString},
            {QStringLiteral("cosine"), cosine}};
}

QJsonObject toJson(const TrainingSection& training)
{
    const QJsonObject clip = {
        {QStringLiteral("mode"), nameIn(kClipGradModes, training.clipGradMode)},
        {QStringLiteral("value"), training.clipGradValue}};
    return {{QStringLiteral("steps"), qint64(training.steps)},
            {QStringLiteral("batch_size"), training.batchSize},
            {QStringLiteral("gradient_accumulation"), training.gradientAccumulation},
            {QStringLiteral("seed"), static_cast<qint64>(training.seed)},
            {QStringLiteral("optimizer"), toJson(training.optimizer)},
            {QStringLiteral("learning_rate"), toJson(training.learningRate)},
            {QStringLiteral("clip_grad"), clip},
            {QStringLiteral("device"), training.device},
            {QStringLiteral("precision"), training.precision},
            {QStringLiteral("attention"), nameIn(kAttentionChoices, training.attention)},
            {QStringLiteral("gradient_checkpointing"), training.gradientCheckpointing},
            {QStringLiteral("unload_optimizer"), training.unloadOptimizer}};
}

QJsonObject toJson(const PreviewSection& preview)
{
    return {{QStringLiteral("prompt"), preview.prompt},
            {QStringLiteral("negative_prompt"), preview.negativePrompt},
            {QStringLiteral("seed"), qint64(preview.seed)},
            {QStringLiteral("sampler"), samplerName(preview.sampler)},
            {QStringLiteral("steps"), preview.steps},
            {QStringLiteral("cfg_scale"), preview.cfgScale},
            {QStringLiteral("width"), preview.width},
            {QStringLiteral("height"), preview.height}};
}

QJsonObject toJson(const OutputSection& output)
{
    return {{QStringLiteral("folder"), output.folder},
            {QStringLiteral("save_every"), qint64(output.saveEvery)},
            {QStringLiteral("preview_every"), qint64(output.previewEvery)},
            {QStringLiteral("save_at_cycle_end"), output.saveAtCycleEnd},
            {QStringLiteral("preview_at_cycle_end"), output.previewAtCycleEnd},
            {QStringLiteral("save_optimizer"), output.saveOptimizer}};
}

// --- reading files -----------------------------------------------------------------------------

// "3:14" for a byte offset into the file, both 1-based, the column in characters.
QString lineColumn(const QByteArray& bytes, int offset)
{
    const QString before = QString::fromUtf8(bytes.left(offset));
    const qsizetype line = before.count(QLatin1Char('\n')) + 1;
    const qsizetype column = before.size() - (before.lastIndexOf(QLatin1Char('\n')) + 1) + 1;
    return QStringLiteral("%1:%2").arg(line).arg(column);
}

QJsonObject readJsonObject(const QString& path)
{
    QFile file(path);
    if (!file.exists()) {
        throw Error(QStringLiteral("no such run file; check the path"));
    }
    if (!file.open(QIODevice::ReadOnly)) {
        throw Error(QStringLiteral("cannot read the run file: %1").arg(file.errorString()));
    }
    const QByteArray bytes = file.readAll();
    QJsonParseError parseError;
    const QJsonDocument document = QJsonDocument::fromJson(bytes, &parseError);
    if (parseError.error != QJsonParseError::NoError) {
        throw Error(QStringLiteral("not valid JSON at line:column %1: %2; a run file is one JSON "
                                   "object (see docs/run-config.md)")
                        .arg(lineColumn(bytes, parseError.offset), parseError.errorString()));
    }
    if (!document.isObject()) {
        throw Error(QStringLiteral("a run file holds one JSON object ({\"model\": ..., "
                                   "\"training\": ...}), but this one holds %1")
                        .arg(document.isArray() ? QStringLiteral("an array")
                                                : QStringLiteral("no object")));
    }
    return document.object();
}

// --- equality ----------------------------------------------------------------------------------

auto fields(const ModelSection& m)
{
    return std::tie(m.checkpoint, m.config, m.tokenizer, m.clipSkip);
}

// Not compared: name (hypernetwork.name holds it) and useDropout (derived from the dropout
// structure when the file is read), which a run file does not carry on their own.
auto fields(const HypernetworkConfig& c)
{
    return std::tie(c.sizes, c.layerStructure, c.activation, c.layerNorm, c.dropoutStructure,
                    c.activateOutput, c.weightInit, c.normalStd, c.initSeed);
}

auto fields(const HypernetworkSection& h)
{
    return std::tuple_cat(std::tie(h.name, h.file, h.strength), fields(h.create));
}

auto fields(const DatasetSection& d)
{
    return std::tie(d.folder, d.templateFile, d.filenameWordRegex, d.filenameJoinString, d.width,
                    d.height, d.noCrop, d.flipProbability, d.shuffleTags, d.tagDropout,
                    d.latentSampling);
}

auto fields(const OptimizerSection& o)
{
    return std::tie(o.kind, o.weightDecay, o.beta1, o.beta2, o.eps, o.momentum, o.nesterov, o.alpha,
                    o.amsgrad);
}

auto fields(const LrScheduleSpec& s)
{
    const CosineLrParams& c = s.cosine;
    return std::tie(s.kind, s.learnRate, s.learnRateString, c.firstCycleSteps, c.cycleMult, c.maxLr,
                    c.minLr, c.warmupSteps, c.gamma);
}

auto fields(const TrainingSection& t)
{
    return std::tuple_cat(std::tie(t.steps, t.batchSize, t.gradientAccumulation, t.seed,
                                   t.clipGradMode, t.clipGradValue, t.device, t.precision,
                                   t.attention, t.gradientCheckpointing, t.unloadOptimizer),
                          fields(t.optimizer), fields(t.learningRate));
}

auto fields(const PreviewSection& p)
{
    return std::tie(p.prompt, p.negativePrompt, p.seed, p.sampler, p.steps, p.cfgScale, p.width,
                    p.height);
}

auto fields(const OutputSection& o)
{
    return std::tie(o.folder, o.saveEvery, o.previewEvery, o.saveAtCycleEnd, o.previewAtCycleEnd,
                    o.saveOptimizer);
}

} // namespace

LrScheduleSpec RunConfig::scheduleSpec(int64_t initialStep) const
{
    LrScheduleSpec spec = training.learningRate;
    spec.maxSteps = training.steps;
    spec.initialStep = initialStep;
    return spec;
}

bool operator==(const RunConfig& a, const RunConfig& b)
{
    return fields(a.model) == fields(b.model) && fields(a.hypernetwork) == fields(b.hypernetwork) &&
           fields(a.dataset) == fields(b.dataset) && fields(a.training) == fields(b.training) &&
           fields(a.preview) == fields(b.preview) && fields(a.output) == fields(b.output);
}

RunConfig runConfigFromJson(const QJsonObject& json, const QString& sourceName,
                            const QString& baseDir)
{
    const auto parse = [&] {
        RunConfig config = parseRunConfig(json, baseDir);
        validateRunConfig(config);
        return config;
    };
    if (sourceName.isEmpty()) {
        return parse();
    }
    return withContext(QStringLiteral("'%1'").arg(sourceName), parse);
}

RunConfig readRunConfig(const QString& path)
{
    const QString name = QDir::toNativeSeparators(path);
    const QJsonObject json =
        withContext(QStringLiteral("'%1'").arg(name), [&] { return readJsonObject(path); });
    return runConfigFromJson(json, name, QFileInfo(path).absolutePath());
}

QJsonObject runConfigToJson(const RunConfig& config)
{
    return {{QStringLiteral("version"), RunConfig::kVersion},
            {QStringLiteral("model"), toJson(config.model)},
            {QStringLiteral("hypernetwork"), toJson(config.hypernetwork)},
            {QStringLiteral("dataset"), toJson(config.dataset)},
            {QStringLiteral("training"), toJson(config.training)},
            {QStringLiteral("preview"), toJson(config.preview)},
            {QStringLiteral("output"), toJson(config.output)}};
}

void writeRunConfig(const RunConfig& config, const QString& path)
{
    const QJsonDocument document(runConfigToJson(config));
    io::writeFileAtomically(path, document.toJson(QJsonDocument::Indented));
}

void validateRunConfig(const RunConfig& config)
{
    validateRequired(config);
    if (config.model.clipSkip < 0) {
        fieldError(QStringLiteral("model.clip_skip"),
                   QStringLiteral("must be 0 (the model's own layer) or more, got %1")
                       .arg(config.model.clipSkip));
    }
    validateHypernetwork(config.hypernetwork);
    validateDataset(config.dataset);
    validateTraining(config);
    validatePreview(config.preview);
    validateOutput(config.output);
}

QString optimizerName(OptimizerKind kind)
{
    return nameIn(kOptimizerClassNames, kind);
}

QString latentSamplingName(LatentSampling method)
{
    return nameIn(kLatentSamplings, method);
}

OptimizerKind parseOptimizerKind(const QString& name)
{
    return valueIn(kOptimizerFileNames, name, QStringLiteral("optimizer"));
}

LatentSampling parseLatentSampling(const QString& name)
{
    return valueIn(kLatentSamplings, name, QStringLiteral("latent sampling"));
}

double defaultWeightDecay(OptimizerKind kind)
{
    return kind == OptimizerKind::AdamW ? 0.01 : 0.0;
}

} // namespace studio
