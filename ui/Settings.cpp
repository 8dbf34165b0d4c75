#include "ui/Settings.h"

#include "core/EngineInfo.h"

#include <QDir>
#include <QRegularExpression>
#include <QSettings>
#include <QStandardPaths>

namespace studio::ui {

namespace {

const QString kDeviceKey = QStringLiteral("engine/device");
const QString kPrecisionKey = QStringLiteral("engine/precision");
const QString kThreadsKey = QStringLiteral("engine/threads");
const QString kTokenizerKey = QStringLiteral("paths/tokenizer");
const QString kOutputKey = QStringLiteral("paths/output");

bool isDeviceName(const QString& device)
{
    static const QRegularExpression pattern(QStringLiteral("^(cpu|cuda:\\d+)$"));
    return pattern.match(device).hasMatch();
}

} // namespace

Settings Settings::load()
{
    const QSettings store;
    const Settings defaults;
    Settings settings;
    settings.device = store.value(kDeviceKey, defaults.device).toString();
    settings.precision = store.value(kPrecisionKey, defaults.precision).toString();
    bool ok = false;
    settings.threads = store.value(kThreadsKey, defaults.threads).toInt(&ok);
    settings.tokenizerPath = store.value(kTokenizerKey, defaults.tokenizerPath).toString();
    settings.outputFolder = store.value(kOutputKey, defaults.outputFolder).toString();

    // A hand-edited or older settings file must not stop the studio from opening.
    if (!isDeviceName(settings.device)) {
        settings.device = defaults.device;
    }
    if (!precisionChoices().contains(settings.precision)) {
        settings.precision = defaults.precision;
    }
    if (!ok || settings.threads < 0) {
        settings.threads = defaults.threads;
    }
    if (settings.outputFolder.trimmed().isEmpty()) {
        settings.outputFolder = defaults.outputFolder;
    }
    return settings;
}

void Settings::save() const
{
    QSettings store;
    store.setValue(kDeviceKey, device);
    store.setValue(kPrecisionKey, precision);
    store.setValue(kThreadsKey, threads);
    store.setValue(kTokenizerKey, tokenizerPath);
    store.setValue(kOutputKey, outputFolder);
    store.sync();
}

QStringList Settings::precisionChoices()
{
    return {QStringLiteral("fp32"), QStringLiteral("fp16"), QStringLiteral("bf16")};
}

QString Settings::defaultOutputFolder()
{
    const QString documents = QStandardPaths::writableLocation(QStandardPaths::DocumentsLocation);
    const QString base = documents.isEmpty() ? QDir::homePath() : documents;
    return QDir(base).filePath(QStringLiteral("Hypernet Studio"));
}

QString Settings::problem() const
{
    if (!isDeviceName(device)) {
        return QStringLiteral("device '%1' is not a device; choose cpu or cuda:N").arg(device);
    }
    if (!precisionChoices().contains(precision)) {
        return QStringLiteral("precision '%1' is unknown; choose one of %2")
            .arg(precision, precisionChoices().join(QStringLiteral(", ")));
    }
    if (precision == QLatin1String("fp16") && device == QLatin1String("cpu")) {
        return QStringLiteral("precision fp16 needs a CUDA device; on the cpu choose fp32 or "
                              "bf16");
    }
    if (threads < 0) {
        return QStringLiteral("threads must be 0 (the default) or more, not %1").arg(threads);
    }
    if (outputFolder.trimmed().isEmpty()) {
        return QStringLiteral("the output folder is empty; choose a folder for new files");
    }
    return {};
}

bool Settings::operator==(const Settings& other) const
{
    return device == other.device && precision == other.precision && threads == other.threads &&
           tokenizerPath == other.tokenizerPath && outputFolder == other.outputFolder;
}

void applyEngineSettings(const Settings& settings)
{
    setCpuThreads(settings.threads);
}

} // namespace studio::ui
